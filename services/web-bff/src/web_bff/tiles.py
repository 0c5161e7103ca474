"""A product as a list shows it (category grid, home page, related products): what it reads,
and the tile it becomes."""

from __future__ import annotations

import msgspec
from bff_core import Item, ItemsResult
from bff_upstreams import Inventory, Pricing, Product, Rating, tile_sources
from msgspec import UNSET, UnsetType

__all__ = ["TILE_SOURCES", "Price", "ProductTile", "Stock", "TileRating", "tiles"]

#: A tile's item sources: the upstreams' whole objects, which its view then trims.
TILE_SOURCES = tile_sources(product=Product, inventory=Inventory, pricing=Pricing, rating=Rating)


class Price(msgspec.Struct):
    currency: str
    amount: int  # minor units
    discount_pct: int


class Stock(msgspec.Struct):
    in_stock: bool
    quantity: int


class TileRating(msgspec.Struct):
    average: float
    count: int


class ProductTile(msgspec.Struct):
    """One product of a list. A part is ``null`` when it failed, and ``failed`` names it."""

    id: str
    name: str
    image: str | None  # the first image
    price: Price | None
    stock: Stock | None
    rating: TileRating | None
    #: the parts that failed for this product (see the answer's ``errors``)
    failed: list[str] | UnsetType = UNSET

    @classmethod
    def of(cls, item: Item) -> ProductTile:
        product: Product = item.values["product"]
        pricing: Pricing | None = item.values["pricing"]
        inventory: Inventory | None = item.values["inventory"]
        rating: Rating | None = item.values["rating"]
        return cls(
            id=product.id,
            name=product.name,
            image=product.images[0] if product.images else None,
            price=None
            if pricing is None
            else Price(pricing.currency, pricing.amount, pricing.discount_pct),
            stock=None if inventory is None else Stock(inventory.in_stock, inventory.quantity),
            rating=None if rating is None else TileRating(rating.average, rating.count),
            failed=item.failed or UNSET,
        )


def tiles(items: ItemsResult | None) -> list[ProductTile] | None:
    """A list part's tiles (``None`` when the list failed)."""
    return None if items is None else [ProductTile.of(item) for item in items]
