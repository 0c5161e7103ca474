"""The web SPA's Backend-for-Frontend."""

from .app import (
    CATEGORY_PAGE,
    HOME_PAGE,
    PRODUCT_PAGE,
    CategoryPage,
    HomePage,
    ProductPage,
    create_app,
)

__all__ = [
    "CATEGORY_PAGE",
    "HOME_PAGE",
    "PRODUCT_PAGE",
    "CategoryPage",
    "HomePage",
    "ProductPage",
    "create_app",
]
