"""``X-Content-Type-Options: nosniff`` on every answer: browsers must not guess another type
than the one declared. (The edge's own replies carry it already.)"""

from __future__ import annotations

from collections.abc import Sequence

from ._exchange import Exchange
from ._filter import NOSNIFF, Filter

__all__ = ["Nosniff"]

_NAME = NOSNIFF[0]


class Nosniff(Filter):
    """Adds ``nosniff`` to the route's answers that do not say it already."""

    __slots__ = ()

    def on_response(
        self,
        exchange: Exchange,
        answered: Sequence[tuple[bytes, bytes]],
        headers: list[tuple[bytes, bytes]],
    ) -> bool:
        for name, _ in answered:  # the edge's own headers never say it
            if name.lower() == _NAME:
                return False
        headers.append(NOSNIFF)
        return False
