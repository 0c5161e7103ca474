"""A product as a phone's list shows it: name, one image, price, in stock or not, rating."""

from __future__ import annotations

import msgspec
from bff_core import Item, ItemsResult
from bff_upstreams import tile_sources
from msgspec import UNSET, UnsetType

from .product import PhonePrice, PhoneRating, PhoneStock, UpstreamProduct

__all__ = ["TILE_SOURCES", "PhoneTile", "tiles"]

#: A tile's item sources, each part decoded into the product screen's trimmed type.
TILE_SOURCES = tile_sources(
    product=UpstreamProduct, inventory=PhoneStock, pricing=PhonePrice, rating=PhoneRating
)


class PhoneTile(msgspec.Struct):
    """One product of a phone's list. A part is ``null`` when it failed, and ``failed`` says so."""

    id: str
    name: str
    image: str | None
    price: PhonePrice | None
    in_stock: bool | None
    rating: float | None  # the average; the count is for the product screen
    failed: list[str] | UnsetType = UNSET

    @classmethod
    def of(cls, item: Item) -> PhoneTile:
        product: UpstreamProduct = item.values["product"]
        stock: PhoneStock | None = item.values["inventory"]
        rating: PhoneRating | None = item.values["rating"]
        return cls(
            id=product.id,
            name=product.name,
            image=product.images[0] if product.images else None,
            price=item.values["pricing"],
            in_stock=None if stock is None else stock.in_stock,
            rating=None if rating is None else rating.average,
            failed=item.failed or UNSET,
        )


def tiles(items: ItemsResult | None) -> list[PhoneTile] | None:
    """A list part's tiles (``None`` when the list failed)."""
    return None if items is None else [PhoneTile.of(item) for item in items]
