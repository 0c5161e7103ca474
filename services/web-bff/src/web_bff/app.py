"""The web BFF: its screens, and the application that serves them.

Each screen is one file: a declaration (what it reads, from where, how it fails) and a view
(what the SPA gets):

- ``product.py``: ``GET /api/aggregated/product``, the product page;
- ``category.py``: ``GET /api/aggregated/category``, a page of a category's products;
- ``home.py``: ``GET /api/aggregated/home``, the user's recommendations;
- ``cart.py``: ``GET /api/aggregated/cart``, the user's cart, and ``PUT /api/cart/items/{id}``;
- ``orders.py``: ``POST /api/orders``, placing an order of the cart;
- ``reviews.py``: ``POST /api/products/{id}/reviews``, the review form.

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

from .cart import CART_LINE, CART_PAGE, CartPage, cart_page, set_cart_line
from .category import CATEGORY_PAGE, CategoryPage, category_page
from .home import HOME_PAGE, HomePage, home_page
from .orders import PLACE_ORDER, place_order
from .product import PRODUCT_PAGE, ProductPage, product_page
from .reviews import WRITE_REVIEW, write_review

__all__ = [
    "CART_LINE",
    "CART_PAGE",
    "CATEGORY_PAGE",
    "HOME_PAGE",
    "PLACE_ORDER",
    "PRODUCT_PAGE",
    "SERVICE_URL_VARIABLES",
    "WRITE_REVIEW",
    "CartPage",
    "CategoryPage",
    "HomePage",
    "ProductPage",
    "cart_page",
    "category_page",
    "create_app",
    "home_page",
    "place_order",
    "product_page",
    "set_cart_line",
    "write_review",
]


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    """The web BFF application, configured from the environment."""
    return create_gateway_app(
        name="web-bff",
        title="Web BFF",
        version="0.1.0",
        description="Backend-for-Frontend of the web SPA: whole upstream objects.",
        settings=GatewaySettings.from_env(SERVICE_URL_VARIABLES, environ),
        aggregates=[PRODUCT_PAGE, CATEGORY_PAGE, HOME_PAGE, CART_PAGE],
        mutations=[CART_LINE, PLACE_ORDER, WRITE_REVIEW],
        breakers=BREAKERS,
        route_handlers=[
            product_page,
            category_page,
            home_page,
            cart_page,
            set_cart_line,
            place_order,
            write_review,
        ],
    )
