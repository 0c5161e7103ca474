"""The web SPA's category grid: a category's products, a page at a time, as tiles.

The category (critical: an unknown category is a 404) lists its product ids; each product on
the page is then enriched with its product, stock, price and rating, every item source in one
batch request per page. A product whose price failed keeps the rest and says so.
"""

from __future__ import annotations

import bff_upstreams as upstreams
from bff_core import Aggregate, AggregateResult, Items, ItemsResult, Param
from bff_core.litestar import aggregate_route
from bff_upstreams import Answer, Category
from msgspec import UNSET, UnsetType

from .tiles import TILE_SOURCES, ProductTile, tiles

__all__ = ["CATEGORY_PAGE", "CategoryPage", "category_page"]

CATEGORY_PAGE = Aggregate(
    "web_category_page",
    params=[
        Param("slug", max_length=64, description="The category, e.g. `audio`"),
        Param(
            "limit",
            required=False,
            default="24",
            minimum=1,
            maximum=48,
            description="Products per page",
        ),
        Param(
            "offset",
            required=False,
            default="0",
            minimum=0,
            maximum=10_000,
            description="Products to skip",
        ),
    ],
    sources=[
        upstreams.category(returns=Category, critical=True),
        Items(
            "items",
            ids="category.product_ids",
            limit="limit",
            offset="offset",
            sources=TILE_SOURCES,
            critical=True,
        ),
    ],
)


class CategoryPage(Answer):
    """A page of a category. A part is ``null`` when it failed, absent when not asked for.
    Its ``errors`` and ``stale`` come from :class:`~bff_upstreams.Answer`."""

    slug: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    #: how many products the whole category has
    total: int | UnsetType = UNSET
    items: list[ProductTile] | UnsetType | None = UNSET

    @classmethod
    def of(cls, result: AggregateResult) -> CategoryPage:
        page = cls.reporting(result)
        category: Category | None = result.value("category")
        if category is not None:
            page.slug, page.name = category.slug, category.name
            page.total = len(category.product_ids)
        if "items" in result:
            items: ItemsResult | None = result.value("items")
            page.items = tiles(items)
        return page


category_page = aggregate_route(
    "/api/aggregated/category",
    CATEGORY_PAGE,
    CategoryPage.of,
    summary="A page of a category's products, each with its price, stock and rating",
)
