"""The mobile apps' Backend-for-Frontend."""

from .app import PRODUCT_SCREEN, ProductScreen, create_app

__all__ = ["PRODUCT_SCREEN", "ProductScreen", "create_app"]
