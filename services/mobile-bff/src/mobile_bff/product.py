"""The phone's product screen: what it gets, from where, and how it fails.

The same four upstreams and failure rules as the web page, but a phone shows less and pays for
every byte: no long description, one image, stock as yes/no and a count, the price, the rating
and its count. Each type below declares only the fields a phone shows, which is what trims the
upstreams' payloads (msgspec ignores the rest while decoding); the lists' tiles read the same
types, so a product read for a tile serves this screen.
"""

from __future__ import annotations

import bff_upstreams as upstreams
import msgspec
from bff_core import Aggregate, AggregateResult, Param
from bff_core.litestar import aggregate_route
from bff_upstreams import Answer
from msgspec import UNSET, UnsetType

__all__ = [
    "PRODUCT_SCREEN",
    "PhonePrice",
    "PhoneProduct",
    "PhoneRating",
    "PhoneStock",
    "ProductScreen",
    "UpstreamProduct",
    "product_screen",
]


# What a phone reads of each upstream.
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
        upstreams.product(returns=UpstreamProduct, critical=True),
        upstreams.inventory(returns=PhoneStock),
        upstreams.pricing(returns=PhonePrice),
        upstreams.reviews(returns=PhoneRating),
    ],
)


class ProductScreen(Answer):
    """The phone's product screen. A part is ``null`` when it failed, absent when not asked for.
    Its ``errors`` and ``stale`` come from :class:`~bff_upstreams.Answer`."""

    product: PhoneProduct | UnsetType | None = UNSET
    inventory: PhoneStock | UnsetType | None = UNSET
    pricing: PhonePrice | UnsetType | None = UNSET
    reviews: PhoneRating | UnsetType | None = UNSET

    @classmethod
    def of(cls, result: AggregateResult) -> ProductScreen:
        parts = {name: outcome.value for name, outcome in result.items()}
        if parts.get("product") is not None:
            parts["product"] = PhoneProduct.of(parts["product"])
        return cls.reporting(result, **parts)


product_screen = aggregate_route(
    "/api/aggregated/product",
    PRODUCT_SCREEN,
    ProductScreen.of,
    summary="What the phone's product screen shows, in one small answer",
)
