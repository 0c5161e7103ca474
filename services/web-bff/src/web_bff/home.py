"""The web SPA's home page: the signed-in user's recommendations, as tiles.

The recommendations service answers per user (``{user}``: the verified caller's subject, or
``anonymous``, for whom it answers the best sellers); its answers are cached per user, like
the prices, which are the user's own too. The tiles are the category grid's.
"""

from __future__ import annotations

from typing import Literal

import bff_upstreams as upstreams
from bff_core import Aggregate, AggregateResult, Items, Param
from bff_core.litestar import aggregate_route
from bff_upstreams import Answer, Recommendations
from msgspec import UNSET, UnsetType

from .tiles import TILE_SOURCES, ProductTile, tiles

__all__ = ["HOME_PAGE", "HomePage", "home_page"]

HOME_PAGE = Aggregate(
    "web_home_page",
    params=[
        Param(
            "limit",
            required=False,
            default="24",
            minimum=1,
            maximum=48,
            description="Products to show",
        )
    ],
    sources=[
        upstreams.recommendations(returns=Recommendations, critical=True),
        Items("items", ids="recommendations.product_ids", limit="limit", sources=TILE_SOURCES),
    ],
)


class HomePage(Answer):
    """The home page. A part is ``null`` when it failed, absent when not asked for.
    Its ``errors`` and ``stale`` come from :class:`~bff_upstreams.Answer`."""

    #: ``personal`` for a signed-in user, ``best_sellers`` for everyone else
    picks: Literal["personal", "best_sellers"] | UnsetType = UNSET
    items: list[ProductTile] | UnsetType | None = UNSET

    @classmethod
    def of(cls, result: AggregateResult) -> HomePage:
        page = cls.reporting(result)
        picks: Recommendations | None = result.value("recommendations")
        if picks is not None:
            page.picks = "best_sellers" if picks.user == "anonymous" else "personal"
        if "items" in result:
            page.items = tiles(result.value("items"))
        return page


home_page = aggregate_route(
    "/api/aggregated/home",
    HOME_PAGE,
    HomePage.of,
    summary="The signed-in user's recommendations (best sellers for anyone else), as tiles",
)
