"""The mobile apps' Backend-for-Frontend."""

from .app import (
    CART_SCREEN,
    CATEGORY_SCREEN,
    HOME_SCREEN,
    PRODUCT_SCREEN,
    CartScreen,
    CategoryScreen,
    HomeScreen,
    ProductScreen,
    create_app,
)

__all__ = [
    "CART_SCREEN",
    "CATEGORY_SCREEN",
    "HOME_SCREEN",
    "PRODUCT_SCREEN",
    "CartScreen",
    "CategoryScreen",
    "HomeScreen",
    "ProductScreen",
    "create_app",
]
