"""The mobile BFF: its screens, and the application that serves them.

Each screen is one file: a declaration (what it reads, from where, how it fails) and a view
(what the phone gets):

- ``product.py``: ``GET /api/aggregated/product``, the product screen;
- ``category.py``: ``GET /api/aggregated/category``, a page of a category's products;
- ``home.py``: ``GET /api/aggregated/home``, the user's recommendations.

``product.py`` also holds what a phone reads of each upstream (the trimmed types the other
screens share); ``tiles.py`` is a product in a list. What the web BFF knows too, how each
upstream is read, cached and protected, is the workspace's ``bff_upstreams``.
"""

from __future__ import annotations

from collections.abc import Mapping

from bff_core import GatewaySettings
from bff_core.litestar import create_gateway_app
from bff_upstreams import BREAKERS, SERVICE_URL_VARIABLES
from litestar import Litestar

from .category import CATEGORY_SCREEN, CategoryScreen, category_screen
from .home import HOME_SCREEN, HomeScreen, home_screen
from .product import PRODUCT_SCREEN, PhonePrice, PhoneProduct, ProductScreen, product_screen

__all__ = [
    "CATEGORY_SCREEN",
    "HOME_SCREEN",
    "PRODUCT_SCREEN",
    "SERVICE_URL_VARIABLES",
    "CategoryScreen",
    "HomeScreen",
    "PhonePrice",
    "PhoneProduct",
    "ProductScreen",
    "category_screen",
    "create_app",
    "home_screen",
    "product_screen",
]


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    """The mobile BFF application, configured from the environment."""
    return create_gateway_app(
        name="mobile-bff",
        title="Mobile BFF",
        version="0.1.0",
        description="Backend-for-Frontend of the mobile apps: trimmed payloads.",
        settings=GatewaySettings.from_env(SERVICE_URL_VARIABLES, environ),
        aggregates=[PRODUCT_SCREEN, CATEGORY_SCREEN, HOME_SCREEN],
        breakers=BREAKERS,
        route_handlers=[product_screen, category_screen, home_screen],
    )
