"""The web SPA's product page: what it gets, from where, and how it fails.

One aggregate, four upstreams called concurrently. ``product`` is critical (no product, no
page); the others are optional and reported in ``errors`` when they fail. The web page shows
everything, so the upstreams' objects pass through whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from bff_core import (
    Aggregate,
    AggregateResult,
    BreakerPolicy,
    CachePolicy,
    GatewaySettings,
    Param,
    PartError,
    RetryPolicy,
    Source,
    StalePart,
    part_errors,
    stale_parts,
)
from bff_core.litestar import aggregate_route, create_gateway_app
from litestar import Litestar
from msgspec import UNSET, UnsetType

__all__ = ["PRODUCT_PAGE", "SERVICE_URL_VARIABLES", "ProductPage", "create_app"]

SERVICE_URL_VARIABLES = {
    "product": "PRODUCT_SERVICE_URL",
    "inventory": "INVENTORY_SERVICE_URL",
    "pricing": "PRICING_SERVICE_URL",
    "reviews": "REVIEWS_SERVICE_URL",
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


# How long each part may be served from the cache: fresh, then stale while a refresh runs,
# then stale while its upstream fails. The upstreams' Cache-Control can only shorten these.
PRODUCT_CACHE = CachePolicy(ttl=60, stale_while_revalidate=300, stale_if_error=3600)
STOCK_CACHE = CachePolicy(ttl=5, stale_while_revalidate=30, stale_if_error=300)
# Prices may be personal (a member's discount): the signed-in caller's subject goes to the
# pricing service (x-user-id), and its prices are cached per user; anonymous ones are shared.
PRICE_CACHE = CachePolicy(ttl=30, stale_while_revalidate=60, stale_if_error=600, per_user=True)
REVIEWS_CACHE = CachePolicy(ttl=120, stale_while_revalidate=600, stale_if_error=3600)

# When an upstream is failing, stop calling it: after 5 timeouts, connection failures or 5xx
# answers in a row its breaker opens for 10 s (404s are answers, not failures). Every part is
# retried once after a connection failure or a 5xx, within the deadline and a 10 % budget; a
# product answer later than 100 ms (several times its usual latency) gets a second request.
BREAKERS = BreakerPolicy(failures=5, reset_timeout=10, counts={"timeout", "unavailable", "5xx"})
RETRY_ONCE = RetryPolicy(attempts=2, on={"unavailable", "5xx"})
PRODUCT_HEDGE_AFTER = 0.1

PRODUCT_PAGE = Aggregate(
    "web_product_page",
    params=[Param("id", max_length=128, description="The product's id")],
    sources=[
        Source(
            "product",
            service="product",
            path="/products/{id}",
            returns=Product,
            critical=True,
            cache=PRODUCT_CACHE,
            retry=RETRY_ONCE,
            hedge_after=PRODUCT_HEDGE_AFTER,
        ),
        Source(
            "inventory",
            service="inventory",
            path="/inventory/{id}",
            returns=Inventory,
            cache=STOCK_CACHE,
            retry=RETRY_ONCE,
        ),
        Source(
            "pricing",
            service="pricing",
            path="/prices/{id}",
            returns=Pricing,
            cache=PRICE_CACHE,
            subject_header="x-user-id",
            retry=RETRY_ONCE,
        ),
        Source(
            "reviews",
            service="reviews",
            path="/reviews/{id}",
            returns=Reviews,
            cache=REVIEWS_CACHE,
            retry=RETRY_ONCE,
        ),
    ],
)


class ProductPage(msgspec.Struct):
    """The product page. A part is ``null`` when it failed, absent when not asked for."""

    product: Product | UnsetType | None = UNSET
    inventory: Inventory | UnsetType | None = UNSET
    pricing: Pricing | UnsetType | None = UNSET
    reviews: Reviews | UnsetType | None = UNSET
    errors: list[PartError] | UnsetType = UNSET
    #: parts served from the cache past their freshness, and how old they are
    stale: list[StalePart] | UnsetType = UNSET

    @classmethod
    def of(cls, result: AggregateResult) -> ProductPage:
        parts = {name: outcome.value for name, outcome in result.items()}
        return cls(**parts, errors=part_errors(result) or UNSET, stale=stale_parts(result) or UNSET)


product_page = aggregate_route(
    "/api/aggregated/product",
    PRODUCT_PAGE,
    ProductPage.of,
    summary="Everything the web product page shows, in one request",
)


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    """The web BFF application, configured from the environment."""
    return create_gateway_app(
        name="web-bff",
        title="Web BFF",
        version="0.1.0",
        description="Backend-for-Frontend of the web SPA: whole upstream objects.",
        settings=GatewaySettings.from_env(SERVICE_URL_VARIABLES, environ),
        aggregates=[PRODUCT_PAGE],
        breakers=BREAKERS,
        route_handlers=[product_page],
    )
