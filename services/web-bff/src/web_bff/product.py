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

import msgspec
from bff_core import (
    Aggregate,
    AggregateResult,
    Items,
    Param,
    PartError,
    Source,
    StalePart,
    part_errors,
    stale_parts,
)
from bff_core.litestar import aggregate_route
from msgspec import UNSET, UnsetType

from .tiles import ProductTile, tiles
from .upstreams import (
    CATEGORY_CACHE,
    PRICE_CACHE,
    PRODUCT_CACHE,
    PRODUCT_HEDGE_AFTER,
    RETRY_ONCE,
    REVIEWS_CACHE,
    STOCK_CACHE,
    TILE_SOURCES,
    Category,
    Inventory,
    Pricing,
    Product,
    Reviews,
)

__all__ = ["PRODUCT_PAGE", "CategoryName", "ProductPage", "product_page"]

RELATED_PRODUCTS = 8

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
        Source(
            "category",
            service="category",
            path="/categories/{product.category}",
            returns=Category,
            cache=CATEGORY_CACHE,
            retry=RETRY_ONCE,
            default=False,
        ),
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


class ProductPage(msgspec.Struct):
    """The product page. A part is ``null`` when it failed, absent when not asked for."""

    product: Product | UnsetType | None = UNSET
    inventory: Inventory | UnsetType | None = UNSET
    pricing: Pricing | UnsetType | None = UNSET
    reviews: Reviews | UnsetType | None = UNSET
    #: with ``fields=...,category``: the product's category
    category: CategoryName | UnsetType | None = UNSET
    #: with ``fields=...,related``: other products of its category
    related: list[ProductTile] | UnsetType | None = UNSET
    errors: list[PartError] | UnsetType = UNSET
    #: parts served from the cache past their freshness, and how old they are
    stale: list[StalePart] | UnsetType = UNSET

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
        return cls(**parts, errors=part_errors(result) or UNSET, stale=stale_parts(result) or UNSET)


product_page = aggregate_route(
    "/api/aggregated/product",
    PRODUCT_PAGE,
    ProductPage.of,
    summary="Everything the web product page shows, in one request",
)
