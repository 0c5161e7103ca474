"""The phone's category list: a category's products, a small page at a time.

The web grid's declaration, trimmed: a smaller page (12 by default, at most 24) and smaller
tiles (one image, the price, in stock or not, the average rating).
"""

from __future__ import annotations

import bff_upstreams as upstreams
from bff_core import Aggregate, AggregateResult, Items, Param
from bff_core.litestar import aggregate_route
from bff_upstreams import Answer, Category
from msgspec import UNSET, UnsetType

from .tiles import TILE_SOURCES, PhoneTile, tiles

__all__ = ["CATEGORY_SCREEN", "CategoryScreen", "category_screen"]

CATEGORY_SCREEN = Aggregate(
    "mobile_category_screen",
    params=[
        Param("slug", max_length=64, description="The category, e.g. `audio`"),
        Param(
            "limit",
            required=False,
            default="12",
            minimum=1,
            maximum=24,
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


class CategoryScreen(Answer):
    """A page of a category. A part is ``null`` when it failed, absent when not asked for.
    Its ``errors`` and ``stale`` come from :class:`~bff_upstreams.Answer`."""

    name: str | UnsetType = UNSET
    total: int | UnsetType = UNSET
    items: list[PhoneTile] | UnsetType | None = UNSET

    @classmethod
    def of(cls, result: AggregateResult) -> CategoryScreen:
        screen = cls.reporting(result)
        category: Category | None = result.value("category")
        if category is not None:
            screen.name, screen.total = category.name, len(category.product_ids)
        if "items" in result:
            screen.items = tiles(result.value("items"))
        return screen


category_screen = aggregate_route(
    "/api/aggregated/category",
    CATEGORY_SCREEN,
    CategoryScreen.of,
    summary="A small page of a category's products, for a phone",
)
