"""The web SPA's product page: what it gets, from where, and how it fails.

Four upstreams called concurrently. ``product`` is critical (no product, no page); the others
are optional and reported in ``errors`` when they fail. The web page shows everything, so the
upstreams' objects pass through whole.

Asked for by name only (``fields=...,related``): the product's category and up to eight of
its other products as tiles, a dependent chain (the product names its category, the category
lists the products). It is left out of the default answer because it would add two rounds of
upstream calls to every product page, the benchmark's aggregate among them.
"""

from __future__ import annotations

import bff_upstreams as upstreams
import msgspec
from bff_core import Aggregate, AggregateResult, Items, Param
from bff_core.litestar import aggregate_route
from bff_upstreams import Answer, Category, Inventory, Pricing, Product, Reviews
from msgspec import UNSET, UnsetType

from .tiles import TILE_SOURCES, ProductTile, tiles

__all__ = ["PRODUCT_PAGE", "CategoryName", "ProductPage", "product_page"]

RELATED_PRODUCTS = 8

PRODUCT_PAGE = Aggregate(
    "web_product_page",
    params=[Param("id", max_length=128, description="The product's id")],
    sources=[
        upstreams.product(returns=Product, critical=True),
        upstreams.inventory(returns=Inventory),
        upstreams.pricing(returns=Pricing),
        upstreams.reviews(returns=Reviews),
        upstreams.category("{product.category}", returns=Category, default=False),
        Items(
            "related",
            ids="category.product_ids",
            exclude="id",
            limit=RELATED_PRODUCTS,
            sources=TILE_SOURCES,
            default=False,
        ),
    ],
)


class CategoryName(msgspec.Struct):
    slug: str
    name: str


class ProductPage(Answer):
    """The product page. A part is ``null`` when it failed, absent when not asked for.
    Its ``errors`` and ``stale`` come from :class:`~bff_upstreams.Answer`."""

    product: Product | UnsetType | None = UNSET
    inventory: Inventory | UnsetType | None = UNSET
    pricing: Pricing | UnsetType | None = UNSET
    reviews: Reviews | UnsetType | None = UNSET
    #: with ``fields=...,category``: the product's category
    category: CategoryName | UnsetType | None = UNSET
    #: with ``fields=...,related``: other products of its category
    related: list[ProductTile] | UnsetType | None = UNSET

    @classmethod
    def of(cls, result: AggregateResult) -> ProductPage:
        parts = {name: outcome.value for name, outcome in result.items()}
        if "category" in parts:
            category: Category | None = parts["category"]
            parts["category"] = (
                None if category is None else CategoryName(category.slug, category.name)
            )
        if "related" in parts:
            parts["related"] = tiles(parts["related"])
        return cls.reporting(result, **parts)


product_page = aggregate_route(
    "/api/aggregated/product",
    PRODUCT_PAGE,
    ProductPage.of,
    summary="Everything the web product page shows, in one request",
)
