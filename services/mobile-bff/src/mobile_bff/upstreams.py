"""What the mobile BFF reads of its upstreams, and how each is read, cached and protected.

A phone shows less and pays for every byte: each type declares only the fields a phone
screen shows, which is what trims the upstreams' payloads (msgspec ignores the rest while
decoding). Shared by every screen, so a product read for a tile serves the product screen.
"""

from __future__ import annotations

import msgspec
from bff_core import Batch, BreakerPolicy, CachePolicy, RetryPolicy, Setting, Source

__all__ = [
    "BREAKERS",
    "SERVICE_URL_VARIABLES",
    "TILE_SOURCES",
    "Category",
    "PhonePrice",
    "PhoneRating",
    "PhoneStock",
    "Recommendations",
    "UpstreamProduct",
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


class UpstreamProduct(msgspec.Struct):
    id: str
    name: str
    category: str = ""
    images: list[str] = []


class PhoneStock(msgspec.Struct):
    in_stock: bool
    quantity: int


class PhonePrice(msgspec.Struct):
    currency: str
    amount: int  # minor units
    discount_pct: int = 0


class PhoneRating(msgspec.Struct):
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
#: The upstreams read at most 50 ids per batch request: a phone's page is one request each.
BATCH_SIZE = 50

# What a phone's product tile reads, every item at once through the batch endpoints. The
# names and per-item paths are the product screen's, so the two share their cache entries;
# the reviews' batch answers a summary, so the rating is cached on its own.
TILE_SOURCES = [
    Source(
        "product",
        service="product",
        path="/products/{item}",
        returns=UpstreamProduct,
        critical=True,  # a tile without its product is left out
        cache=PRODUCT_CACHE,
        retry=RETRY_ONCE,
        batch=Batch("/products?ids={ids}", size=BATCH_SIZE, key="id"),
    ),
    Source(
        "inventory",
        service="inventory",
        path="/inventory/{item}",
        returns=PhoneStock,
        cache=STOCK_CACHE,
        retry=RETRY_ONCE,
        batch=Batch("/inventory?ids={ids}", size=BATCH_SIZE, key="product_id"),
    ),
    Source(
        "pricing",
        service="pricing",
        path="/prices/{item}",
        returns=PhonePrice,
        cache=PRICE_CACHE,
        subject_header="x-user-id",
        retry=RETRY_ONCE,
        batch=Batch("/prices?ids={ids}", size=BATCH_SIZE, key="product_id"),
    ),
    Source(
        "rating",
        service="reviews",
        path="/reviews/{item}",
        returns=PhoneRating,
        cache=REVIEWS_CACHE,
        retry=RETRY_ONCE,
        batch=Batch("/reviews?ids={ids}", size=BATCH_SIZE, key="product_id", same_as_item=False),
    ),
]
