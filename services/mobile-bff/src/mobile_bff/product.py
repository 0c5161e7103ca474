"""The phone's product screen: what it gets, from where, and how it fails.

The same four upstreams and failure rules as the web page, but a phone shows less and pays for
every byte: no long description, one image, stock as yes/no and a count, the price, the rating
and its count.
"""

from __future__ import annotations

import msgspec
from bff_core import (
    Aggregate,
    AggregateResult,
    Param,
    PartError,
    Source,
    StalePart,
    part_errors,
    stale_parts,
)
from bff_core.litestar import aggregate_route
from msgspec import UNSET, UnsetType

from .upstreams import (
    PRICE_CACHE,
    PRODUCT_CACHE,
    PRODUCT_HEDGE_AFTER,
    RETRY_ONCE,
    REVIEWS_CACHE,
    STOCK_CACHE,
    PhonePrice,
    PhoneRating,
    PhoneStock,
    UpstreamProduct,
)

__all__ = ["PRODUCT_SCREEN", "PhoneProduct", "ProductScreen", "product_screen"]


class PhoneProduct(msgspec.Struct):
    id: str
    name: str
    image: str | None  # the first image only

    @classmethod
    def of(cls, product: UpstreamProduct) -> PhoneProduct:
        return cls(
            id=product.id, name=product.name, image=product.images[0] if product.images else None
        )


PRODUCT_SCREEN = Aggregate(
    "mobile_product_screen",
    params=[Param("id", max_length=128, description="The product's id")],
    sources=[
        Source(
            "product",
            service="product",
            path="/products/{id}",
            returns=UpstreamProduct,
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
