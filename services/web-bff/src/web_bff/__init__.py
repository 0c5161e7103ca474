"""The web SPA's Backend-for-Frontend."""

from .app import PRODUCT_PAGE, ProductPage, create_app

__all__ = ["PRODUCT_PAGE", "ProductPage", "create_app"]
