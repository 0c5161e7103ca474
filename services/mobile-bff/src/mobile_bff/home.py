"""The phone's home screen: the signed-in user's recommendations (best sellers for anyone
else), as the category list's tiles, a phone's page at a time."""

from __future__ import annotations

from typing import Literal

import bff_upstreams as upstreams
from bff_core import Aggregate, AggregateResult, Items, Param
from bff_core.litestar import aggregate_route
from bff_upstreams import Answer, Recommendations
from msgspec import UNSET, UnsetType

from .tiles import TILE_SOURCES, PhoneTile, tiles

__all__ = ["HOME_SCREEN", "HomeScreen", "home_screen"]

HOME_SCREEN = Aggregate(
    "mobile_home_screen",
    params=[
        Param(
            "limit",
            required=False,
            default="12",
            minimum=1,
            maximum=24,
            description="Products to show",
        )
    ],
    sources=[
        upstreams.recommendations(returns=Recommendations, critical=True),
        Items("items", ids="recommendations.product_ids", limit="limit", sources=TILE_SOURCES),
    ],
)


class HomeScreen(Answer):
    """The phone's home screen. A part is ``null`` when it failed, absent when not asked for.
    Its ``errors`` and ``stale`` come from :class:`~bff_upstreams.Answer`."""

    picks: Literal["personal", "best_sellers"] | UnsetType = UNSET
    items: list[PhoneTile] | UnsetType | None = UNSET

    @classmethod
    def of(cls, result: AggregateResult) -> HomeScreen:
        screen = cls.reporting(result)
        picks: Recommendations | None = result.value("recommendations")
        if picks is not None:
            screen.picks = "best_sellers" if picks.user == "anonymous" else "personal"
        if "items" in result:
            screen.items = tiles(result.value("items"))
        return screen


home_screen = aggregate_route(
    "/api/aggregated/home",
    HOME_SCREEN,
    HomeScreen.of,
    summary="The user's recommendations for the phone's home screen",
)
