"""The mobile BFF: its screens, and the application that serves them.

Each screen is one file: a declaration (what it reads, from where, how it fails) and a view
(what the phone gets):

- ``product.py``: ``GET /api/aggregated/product``, the product screen;
- ``category.py``: ``GET /api/aggregated/category``, a page of a category's products;
- ``home.py``: ``GET /api/aggregated/home``, the user's recommendations;
- ``cart.py``: ``GET /api/aggregated/cart``, the user's cart, and ``PUT /api/cart/items/{id}``;
- ``orders.py``: ``POST /api/orders``, placing an order of the cart;
- ``reviews.py``: ``POST /api/products/{id}/reviews``, the review form.

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

from .cart import CART_LINE, CART_SCREEN, CartScreen, cart_screen, set_cart_line
from .category import CATEGORY_SCREEN, CategoryScreen, category_screen
from .home import HOME_SCREEN, HomeScreen, home_screen
from .orders import PLACE_ORDER, PhoneOrder, place_order
from .product import PRODUCT_SCREEN, PhonePrice, PhoneProduct, ProductScreen, product_screen
from .reviews import WRITE_REVIEW, write_review

__all__ = [
    "CART_LINE",
    "CART_SCREEN",
    "CATEGORY_SCREEN",
    "HOME_SCREEN",
    "PLACE_ORDER",
    "PRODUCT_SCREEN",
    "SERVICE_URL_VARIABLES",
    "WRITE_REVIEW",
    "CartScreen",
    "CategoryScreen",
    "HomeScreen",
    "PhoneOrder",
    "PhonePrice",
    "PhoneProduct",
    "ProductScreen",
    "cart_screen",
    "category_screen",
    "create_app",
    "home_screen",
    "place_order",
    "product_screen",
    "set_cart_line",
    "write_review",
]


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    """The mobile BFF application, configured from the environment."""
    return create_gateway_app(
        name="mobile-bff",
        title="Mobile BFF",
        version="0.1.0",
        description="Backend-for-Frontend of the mobile apps: trimmed payloads.",
        settings=GatewaySettings.from_env(SERVICE_URL_VARIABLES, environ),
        aggregates=[PRODUCT_SCREEN, CATEGORY_SCREEN, HOME_SCREEN, CART_SCREEN],
        mutations=[CART_LINE, PLACE_ORDER, WRITE_REVIEW],
        breakers=BREAKERS,
        route_handlers=[
            product_screen,
            category_screen,
            home_screen,
            cart_screen,
            set_cart_line,
            place_order,
            write_review,
        ],
    )
