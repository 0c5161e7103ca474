"""What the web BFF's upstreams answer, and how each is read, cached and protected.

Shared by every screen: the product page, the category grid and the home page read the same
upstream objects, so each item's part is one cache entry whichever screen read it first.
"""

from __future__ import annotations

from typing import Any

import msgspec
from bff_core import Batch, BreakerPolicy, CachePolicy, RetryPolicy, Setting, Source

__all__ = [
    "BREAKERS",
    "SERVICE_URL_VARIABLES",
    "TILE_SOURCES",
    "Category",
    "Inventory",
    "Pricing",
    "Product",
    "Rating",
    "Recommendations",
    "Review",
    "Reviews",
    "Warehouse",
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
}


# What the upstreams answer (fields they add later are ignored).
class Product(msgspec.Struct):
    id: str
    name: str
    description: str
    category: str
    images: list[str]
    attributes: dict[str, Any]


class Warehouse(msgspec.Struct):
    id: str
    qty: int


class Inventory(msgspec.Struct):
    product_id: str
    in_stock: bool
    quantity: int
    warehouses: list[Warehouse]


class Pricing(msgspec.Struct):
    product_id: str
    currency: str
    amount: int
    discount_pct: int


class Review(msgspec.Struct):
    author: str
    stars: int
    text: str


class Reviews(msgspec.Struct):
    product_id: str
    average: float
    count: int
    top: list[Review]


class Rating(msgspec.Struct):
    """A product's reviews summed up (the reviews service's batch answer)."""

    product_id: str
    average: float
    count: int


class Category(msgspec.Struct):
    slug: str
    name: str
    product_ids: list[str]


class Recommendations(msgspec.Struct):
    user: str
    product_ids: list[str]


# How long each part may be served from the cache: fresh, then stale while a refresh runs,
# then stale while its upstream fails. The upstreams' Cache-Control can only shorten these.
PRODUCT_CACHE = CachePolicy(ttl=60, stale_while_revalidate=300, stale_if_error=3600)
STOCK_CACHE = CachePolicy(ttl=5, stale_while_revalidate=30, stale_if_error=300)
# Prices may be personal (a member's discount): the signed-in caller's subject goes to the
# pricing service (x-user-id), and its prices are cached per user; anonymous ones are shared.
PRICE_CACHE = CachePolicy(ttl=30, stale_while_revalidate=60, stale_if_error=600, per_user=True)
REVIEWS_CACHE = CachePolicy(ttl=120, stale_while_revalidate=600, stale_if_error=3600)
CATEGORY_CACHE = CachePolicy(ttl=300, stale_while_revalidate=600, stale_if_error=3600)
# Recommendations are the user's own ({user} in the path): kept per user.
RECOMMENDATIONS_CACHE = CachePolicy(
    ttl=60, stale_while_revalidate=120, stale_if_error=600, per_user=True
)

# When an upstream is failing, stop calling it: after 5 timeouts, connection failures or 5xx
# answers in a row its breaker opens for 10 s (404s are answers, not failures). Every part is
# retried once after a connection failure or a 5xx, within the deadline and a 10 % budget; a
# product answer later than 100 ms (several times its usual latency) gets a second request.
BREAKERS = BreakerPolicy(failures=5, reset_timeout=10, counts={"timeout", "unavailable", "5xx"})
RETRY_ONCE = RetryPolicy(attempts=2, on={"unavailable", "5xx"})
PRODUCT_HEDGE_AFTER = 0.1
#: The upstreams read at most 50 ids per batch request; a page is at most 48 items, so every
#: item source costs one request per page.
BATCH_SIZE = 50

# What a product tile (a grid's item) reads, every item at once through the batch endpoints.
# The names and per-item paths are the product page's: a tile and a product page share their
# cache entries. The reviews' batch answers a summary, so the rating is cached on its own.
TILE_SOURCES = [
    Source(
        "product",
        service="product",
        path="/products/{item}",
        returns=Product,
        critical=True,  # a tile without its product is left out
        cache=PRODUCT_CACHE,
        retry=RETRY_ONCE,
        batch=Batch("/products?ids={ids}", size=BATCH_SIZE, key="id"),
    ),
    Source(
        "inventory",
        service="inventory",
        path="/inventory/{item}",
        returns=Inventory,
        cache=STOCK_CACHE,
        retry=RETRY_ONCE,
        batch=Batch("/inventory?ids={ids}", size=BATCH_SIZE, key="product_id"),
    ),
    Source(
        "pricing",
        service="pricing",
        path="/prices/{item}",
        returns=Pricing,
        cache=PRICE_CACHE,
        subject_header="x-user-id",
        retry=RETRY_ONCE,
        batch=Batch("/prices?ids={ids}", size=BATCH_SIZE, key="product_id"),
    ),
    Source(
        "rating",
        service="reviews",
        path="/reviews/{item}",
        returns=Rating,
        cache=REVIEWS_CACHE,
        retry=RETRY_ONCE,
        batch=Batch("/reviews?ids={ids}", size=BATCH_SIZE, key="product_id", same_as_item=False),
    ),
]
