"""The web BFF: its screens, and the application that serves them.

Each screen is one file: a declaration (what it reads, from where, how it fails) and a view
(what the SPA gets):

- ``product.py``: ``GET /api/aggregated/product``, the product page;
- ``category.py``: ``GET /api/aggregated/category``, a page of a category's products;
- ``home.py``: ``GET /api/aggregated/home``, the user's recommendations.

``tiles.py`` is a product in a list (the grid, the home page, related products). What the
mobile BFF knows too, the upstreams' objects and how each is read, cached and protected, is
the workspace's ``bff_upstreams``.
"""

from __future__ import annotations

from collections.abc import Mapping

from bff_core import GatewaySettings
from bff_core.litestar import create_gateway_app
from bff_upstreams import BREAKERS, SERVICE_URL_VARIABLES
from litestar import Litestar

from .category import CATEGORY_PAGE, CategoryPage, category_page
from .home import HOME_PAGE, HomePage, home_page
from .product import PRODUCT_PAGE, ProductPage, product_page

__all__ = [
    "CATEGORY_PAGE",
    "HOME_PAGE",
    "PRODUCT_PAGE",
    "SERVICE_URL_VARIABLES",
    "CategoryPage",
    "HomePage",
    "ProductPage",
    "category_page",
    "create_app",
    "home_page",
    "product_page",
]


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    """The web BFF application, configured from the environment."""
    return create_gateway_app(
        name="web-bff",
        title="Web BFF",
        version="0.1.0",
        description="Backend-for-Frontend of the web SPA: whole upstream objects.",
        settings=GatewaySettings.from_env(SERVICE_URL_VARIABLES, environ),
        aggregates=[PRODUCT_PAGE, CATEGORY_PAGE, HOME_PAGE],
        breakers=BREAKERS,
        route_handlers=[product_page, category_page, home_page],
    )
