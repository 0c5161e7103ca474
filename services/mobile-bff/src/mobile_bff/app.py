"""The phone's product screen: what it gets, from where, and how it fails.

The same four upstreams and failure rules as the web page, but a phone shows less and pays for
every byte: no long description, one image, stock as yes/no and a count, the price, the rating
and its count. Declaring only those fields is what trims the upstreams' payloads (msgspec
ignores the rest while decoding).
"""

from __future__ import annotations

from collections.abc import Mapping

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

__all__ = ["PRODUCT_SCREEN", "SERVICE_URL_VARIABLES", "ProductScreen", "create_app"]

SERVICE_URL_VARIABLES = {
    "product": "PRODUCT_SERVICE_URL",
    "inventory": "INVENTORY_SERVICE_URL",
    "pricing": "PRICING_SERVICE_URL",
    "reviews": "REVIEWS_SERVICE_URL",
}


class _UpstreamProduct(msgspec.Struct):
    id: str
    name: str
    images: list[str] = []


class PhoneProduct(msgspec.Struct):
    id: str
    name: str
    image: str | None  # the first image only

    @classmethod
    def of(cls, product: _UpstreamProduct) -> PhoneProduct:
        return cls(
            id=product.id, name=product.name, image=product.images[0] if product.images else None
        )


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

PRODUCT_SCREEN = Aggregate(
    "mobile_product_screen",
    params=[Param("id", max_length=128, description="The product's id")],
    sources=[
        Source(
            "product",
            service="product",
            path="/products/{id}",
            returns=_UpstreamProduct,
            critical=True,
            cache=PRODUCT_CACHE,
            retry=RETRY_ONCE,
            hedge_after=PRODUCT_HEDGE_AFTER,
        ),
        Source(
            "inventory",
            service="inventory",
            path="/inventory/{id}",
            returns=PhoneStock,
            cache=STOCK_CACHE,
            retry=RETRY_ONCE,
        ),
        Source(
            "pricing",
            service="pricing",
            path="/prices/{id}",
            returns=PhonePrice,
            cache=PRICE_CACHE,
            subject_header="x-user-id",
            retry=RETRY_ONCE,
        ),
        Source(
            "reviews",
            service="reviews",
            path="/reviews/{id}",
            returns=PhoneRating,
            cache=REVIEWS_CACHE,
            retry=RETRY_ONCE,
        ),
    ],
)


class ProductScreen(msgspec.Struct):
    """The phone's product screen. A part is ``null`` when it failed, absent when not asked for."""

    product: PhoneProduct | UnsetType | None = UNSET
    inventory: PhoneStock | UnsetType | None = UNSET
    pricing: PhonePrice | UnsetType | None = UNSET
    reviews: PhoneRating | UnsetType | None = UNSET
    errors: list[PartError] | UnsetType = UNSET
    #: parts served from the cache past their freshness, and how old they are
    stale: list[StalePart] | UnsetType = UNSET

    @classmethod
    def of(cls, result: AggregateResult) -> ProductScreen:
        parts = {name: outcome.value for name, outcome in result.items()}
        if parts.get("product") is not None:
            parts["product"] = PhoneProduct.of(parts["product"])
        return cls(**parts, errors=part_errors(result) or UNSET, stale=stale_parts(result) or UNSET)


product_screen = aggregate_route(
    "/api/aggregated/product",
    PRODUCT_SCREEN,
    ProductScreen.of,
    summary="What the phone's product screen shows, in one small answer",
)


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    """The mobile BFF application, configured from the environment."""
    return create_gateway_app(
        name="mobile-bff",
        title="Mobile BFF",
        version="0.1.0",
        description="Backend-for-Frontend of the mobile apps: trimmed payloads.",
        settings=GatewaySettings.from_env(SERVICE_URL_VARIABLES, environ),
        aggregates=[PRODUCT_SCREEN],
        breakers=BREAKERS,
        route_handlers=[product_screen],
    )
