"""The web SPA's Backend-for-Frontend."""

from .app import (
    CART_PAGE,
    CATEGORY_PAGE,
    HOME_PAGE,
    PRODUCT_PAGE,
    CartPage,
    CategoryPage,
    HomePage,
    ProductPage,
    create_app,
)

__all__ = [
    "CART_PAGE",
    "CATEGORY_PAGE",
    "HOME_PAGE",
    "PRODUCT_PAGE",
    "CartPage",
    "CategoryPage",
    "HomePage",
    "ProductPage",
    "create_app",
]
