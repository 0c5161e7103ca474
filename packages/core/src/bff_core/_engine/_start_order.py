"""The order in which the parts that can start together are started: slowest first.

Parts that start together are concurrent on the network, but not in the event loop: each
runs its own Python (the request's URL and headers, the breaker, the cache lookup, handing
the request to the client) before the next one's request leaves. On one core that is 30 to
60 µs per part, so with four parts the last one's request leaves about 0.1 ms after the
first's. The answer waits for the slowest part, so the slowest part should leave first; then
the others' start-up overlaps its wait instead of adding to it
(``docs/decisions/0013-slowest-first.md`` has the measurements).

"Slowest" is learnt, per part, from how long the part took recently (an exponentially
weighted mean of its durations, whatever its outcome: a part that times out is slow; one
cut off with its run counts as long as it ran, unless it is known to take longer). Until
a part has been seen it counts as instant, and ties keep the declaration's order (the sort is
stable). The order is worked out again on every run until each part has been seen, then every
:data:`REORDER_EVERY` runs of the same plan, so a run pays one dictionary lookup for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = ["REORDER_EVERY", "StartOrder"]

#: Runs of one plan between two sorts of its parts.
REORDER_EVERY = 64

#: The weight of a new duration in a part's recent mean (about the last 10 runs count).
_WEIGHT = 0.1

#: More entries than any deployment declares: beyond it, the tables start again (a table
#: keyed by object identity must not grow with objects that came and went).
_MAX_ENTRIES = 4096

_Part = TypeVar("_Part")


class _Order:
    """A plan's parts (the very tuple), the order to start them in, and until when."""

    __slots__ = ("countdown", "order", "parts")

    def __init__(self, parts: Sequence[Any], order: list[Any], settled: bool) -> None:
        self.parts = parts
        self.order = order
        # Sorted before every part had been seen: sort again on the next run.
        self.countdown = REORDER_EVERY if settled else 1


class StartOrder:
    """Remembers how long each part took and orders the parts of a plan slowest first.

    Parts and plans are keyed by identity (declarations are immutable, and comparing them by
    value would cost more than the sort saves); each entry keeps its object, so an identity
    is not taken for another object's after the first is gone.
    """

    __slots__ = ("_orders", "_recent")

    def __init__(self) -> None:
        self._recent: dict[int, tuple[object, float]] = {}
        self._orders: dict[int, _Order] = {}

    def observe(self, part: object, duration: float) -> None:
        """``part`` took ``duration`` seconds (to an answer, a failure or its timeout)."""
        key = id(part)
        entry = self._recent.get(key)
        if entry is None or entry[0] is not part:
            if len(self._recent) >= _MAX_ENTRIES:
                self._recent.clear()
            self._recent[key] = (part, duration)
        else:
            self._recent[key] = (part, entry[1] + (duration - entry[1]) * _WEIGHT)

    def observe_at_least(self, part: object, duration: float) -> None:
        """``part`` was cut off after ``duration`` seconds: that counts as its duration, unless
        it is known to take longer (how long it would have taken is unknown)."""
        recent = self.recent(part)
        if recent is None or duration > recent:
            self.observe(part, duration)

    def recent(self, part: object) -> float | None:
        """The part's recent mean duration in seconds, ``None`` before it was seen."""
        entry = self._recent.get(id(part))
        return entry[1] if entry is not None and entry[0] is part else None

    def of(self, parts: Sequence[_Part]) -> Sequence[_Part]:
        """``parts`` in the order to start them: slowest recently first, else as declared."""
        if len(parts) < 2:
            return parts
        known = self._orders.get(id(parts))
        if known is not None and known.parts is parts:
            known.countdown -= 1
            if known.countdown > 0:
                order: list[_Part] = known.order
                return order
        recent = [self.recent(part) for part in parts]
        ranked = sorted(range(len(parts)), key=lambda i: -(recent[i] or 0.0))
        order = [parts[i] for i in ranked]
        if len(self._orders) >= _MAX_ENTRIES:
            self._orders.clear()
        self._orders[id(parts)] = _Order(parts, order, None not in recent)
        return order
