"""The mobile apps' Backend-for-Frontend."""

from .app import (
    CATEGORY_SCREEN,
    HOME_SCREEN,
    PRODUCT_SCREEN,
    CategoryScreen,
    HomeScreen,
    ProductScreen,
    create_app,
)

__all__ = [
    "CATEGORY_SCREEN",
    "HOME_SCREEN",
    "PRODUCT_SCREEN",
    "CategoryScreen",
    "HomeScreen",
    "ProductScreen",
    "create_app",
]
