"""The upstream services: the variable that configures each, and the reads both BFFs make.

Each read is a :class:`~bff_core.Source` with its service's path, cache, retry, hedge and
batch endpoint filled in. A screen says the rest: what the answer is decoded into (``returns``:
the service's whole object, or a client's trimmed Struct) and whether the screen can do
without it (``critical``). The names and paths are the same on every screen, so a part is one
cache entry whichever screen read it first: a product read for a tile serves a product page.
"""

from __future__ import annotations

from typing import Any

from bff_core import Batch, Setting, Source

from ._objects import Cart, Category, Inventory, Pricing, Product, Rating, Recommendations, Reviews
from ._policies import (
    BATCH_SIZE,
    CATEGORY_CACHE,
    PRICE_CACHE,
    PRODUCT_CACHE,
    PRODUCT_HEDGE_AFTER,
    RECOMMENDATIONS_CACHE,
    RETRY_ONCE,
    REVIEWS_CACHE,
    STOCK_CACHE,
)

__all__ = [
    "SERVICE_URL_VARIABLES",
    "cart",
    "category",
    "inventory",
    "pricing",
    "product",
    "recommendations",
    "reviews",
    "tile_sources",
]

#: Each upstream service's base URL, by the environment variable that sets it (the rows of
#: the documentation's configuration table: docs/reference/configuration.md).
SERVICE_URL_VARIABLES = {
    "product": Setting.url("PRODUCT_SERVICE_URL", "base URL of the product service"),
    "inventory": Setting.url("INVENTORY_SERVICE_URL", "base URL of the inventory service"),
    "pricing": Setting.url("PRICING_SERVICE_URL", "base URL of the pricing service"),
    "reviews": Setting.url("REVIEWS_SERVICE_URL", "base URL of the reviews service"),
    "category": Setting.url(
        "CATEGORY_SERVICE_URL", "base URL of the category service (the category screen)"
    ),
    "recommendations": Setting.url(
        "RECOMMENDATIONS_SERVICE_URL",
        "base URL of the recommendations service (the home screen)",
    ),
    "cart": Setting.url("CART_SERVICE_URL", "base URL of the cart service (the write path)"),
    "orders": Setting.url("ORDERS_SERVICE_URL", "base URL of the orders service (the write path)"),
}


#: The services' batch reads (at most 50 ids each). A product page's parts declare them too:
#: the pages that in-flight requests want at the same moment are read together
#: (``BFF_BATCH``); each element is exactly what the single read answers.
PRODUCTS_BATCH = Batch("/products?ids={ids}", size=BATCH_SIZE, key="id")
INVENTORY_BATCH = Batch("/inventory?ids={ids}", size=BATCH_SIZE, key="product_id")
PRICES_BATCH = Batch("/prices?ids={ids}", size=BATCH_SIZE, key="product_id")
REVIEWS_BATCH = Batch("/reviews?ids={ids}", size=BATCH_SIZE, key="product_id")


def product(*, returns: type[Any] = Product, critical: bool = False) -> Source:
    """``product``: ``GET /products/{id}``, hedged when it is slow (it is what a page waits for);
    read in batches across requests (``/products?ids=``)."""
    return Source(
        "product",
        service="product",
        path="/products/{id}",
        returns=returns,
        critical=critical,
        cache=PRODUCT_CACHE,
        retry=RETRY_ONCE,
        hedge_after=PRODUCT_HEDGE_AFTER,
        batch=PRODUCTS_BATCH,
    )


def inventory(*, returns: type[Any] = Inventory, critical: bool = False) -> Source:
    """``inventory``: ``GET /inventory/{id}``, in batches across requests."""
    return Source(
        "inventory",
        service="inventory",
        path="/inventory/{id}",
        returns=returns,
        critical=critical,
        cache=STOCK_CACHE,
        retry=RETRY_ONCE,
        batch=INVENTORY_BATCH,
    )


def pricing(*, returns: type[Any] = Pricing, critical: bool = False) -> Source:
    """``pricing``: ``GET /prices/{id}``, the caller's own prices (x-user-id), in batches
    across requests of the same caller."""
    return Source(
        "pricing",
        service="pricing",
        path="/prices/{id}",
        returns=returns,
        critical=critical,
        cache=PRICE_CACHE,
        subject_header="x-user-id",
        retry=RETRY_ONCE,
        batch=PRICES_BATCH,
    )


def reviews(*, returns: type[Any] = Reviews, critical: bool = False) -> Source:
    """``reviews``: ``GET /reviews/{id}``, in batches across requests (the batch answers the
    same objects, ``top`` included)."""
    return Source(
        "reviews",
        service="reviews",
        path="/reviews/{id}",
        returns=returns,
        critical=critical,
        cache=REVIEWS_CACHE,
        retry=RETRY_ONCE,
        batch=REVIEWS_BATCH,
    )


def category(
    slug: str = "{slug}",
    *,
    returns: type[Any] = Category,
    critical: bool = False,
    default: bool = True,
) -> Source:
    """``category``: ``GET /categories/{slug}``, its slug a request parameter by default or
    another part's field (``"{product.category}"``); ``default=False``: only when asked for."""
    return Source(
        "category",
        service="category",
        path="/categories/" + slug,
        returns=returns,
        critical=critical,
        cache=CATEGORY_CACHE,
        retry=RETRY_ONCE,
        default=default,
    )


def recommendations(*, returns: type[Any] = Recommendations, critical: bool = False) -> Source:
    """``recommendations``: ``GET /recommendations/{user}``, the caller's own (the best
    sellers for ``anonymous``)."""
    return Source(
        "recommendations",
        service="recommendations",
        path="/recommendations/{user}",
        returns=returns,
        critical=critical,
        cache=RECOMMENDATIONS_CACHE,
        retry=RETRY_ONCE,
    )


def cart(*, returns: type[Any] = Cart) -> Source:
    """``cart``: ``GET /carts/{user}``, the caller's own cart; critical (no cart, no screen).

    Never cached, not even per user: a cart changes with every write, and the screen after a
    write must show it (a cached copy could also only ever be one user's own, but one stale
    line is already a wrong cart).
    """
    return Source(
        "cart",
        service="cart",
        path="/carts/{user}",
        returns=returns,
        critical=True,
        retry=RETRY_ONCE,
    )


def tile_sources(
    *,
    product: type[Any] = Product,
    inventory: type[Any] = Inventory,
    pricing: type[Any] = Pricing,
    rating: type[Any] = Rating,
) -> list[Source]:
    """What a product in a list (a tile) reads: the item sources of an :class:`~bff_core.Items`,
    each type what that part is decoded into.

    Every item at once, through the batch endpoints. The names and per-item paths are the
    product page's, so a tile and a product page share their cache entries; the reviews' batch
    answers a summary (``rating``), so the rating is cached on its own. A tile without its
    product is left out of the list.
    """
    return [
        Source(
            "product",
            service="product",
            path="/products/{item}",
            returns=product,
            critical=True,
            cache=PRODUCT_CACHE,
            retry=RETRY_ONCE,
            batch=PRODUCTS_BATCH,
        ),
        Source(
            "inventory",
            service="inventory",
            path="/inventory/{item}",
            returns=inventory,
            cache=STOCK_CACHE,
            retry=RETRY_ONCE,
            batch=INVENTORY_BATCH,
        ),
        Source(
            "pricing",
            service="pricing",
            path="/prices/{item}",
            returns=pricing,
            cache=PRICE_CACHE,
            subject_header="x-user-id",
            retry=RETRY_ONCE,
            batch=PRICES_BATCH,
        ),
        Source(
            "rating",
            service="reviews",
            path="/reviews/{item}",
            returns=rating,
            cache=REVIEWS_CACHE,
            retry=RETRY_ONCE,
            batch=Batch(
                "/reviews?ids={ids}", size=BATCH_SIZE, key="product_id", same_as_item=False
            ),
        ),
    ]
