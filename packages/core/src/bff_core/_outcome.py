"""What happened to each part of an aggregation: the engine's report."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Mapping, Sequence, ValuesView
from typing import Any, Literal, TypeAlias, overload

__all__ = [
    "AggregateResult",
    "CacheResult",
    "FailureReason",
    "Item",
    "ItemFailure",
    "ItemsResult",
    "PartOutcome",
]

FailureReason: TypeAlias = Literal[
    "timeout",  # no answer within the part's timeout or the aggregation's deadline
    "unavailable",  # could not connect, connection refused or lost
    "upstream_status",  # the upstream answered with a non-2xx status (see ``upstream_status``)
    "invalid_response",  # not the JSON the source declares (or too large)
    "circuit_open",  # the upstream's circuit breaker is open; nothing was sent
    "dependency_failed",  # a source this one depends on failed, so it could not be built
]

#: Where a cached source's value came from: fresh from the cache, stale from the cache, from
#: the upstream after a lookup, or from the upstream without one (the policy does not share it).
CacheResult: TypeAlias = Literal["hit", "stale", "miss", "bypassed"]

FAILURE_REASONS: tuple[FailureReason, ...] = (
    "timeout",
    "unavailable",
    "upstream_status",
    "invalid_response",
    "circuit_open",
    "dependency_failed",
)


class PartOutcome:
    """The outcome of one part: ok with a value, or failed with exactly one reason."""

    __slots__ = (
        "age",
        "cache",
        "detail",
        "duration",
        "fresh_for",
        "name",
        "reason",
        "stale",
        "upstream_status",
        "value",
    )

    def __init__(
        self,
        name: str,
        *,
        value: Any = None,
        reason: FailureReason | None = None,
        duration: float = 0.0,
        upstream_status: int | None = None,
        detail: str = "",
        stale: bool = False,
        age: float | None = None,
        fresh_for: float = 0.0,
        cache: CacheResult | None = None,
    ) -> None:
        self.name = name
        self.value = value
        self.reason: FailureReason | None = reason
        #: seconds from the moment the part's request was started to its outcome
        self.duration = duration
        #: the HTTP status the upstream answered with, when it answered at all
        self.upstream_status = upstream_status
        #: a short human explanation for logs (never contains upstream addresses)
        self.detail = detail
        #: served from the cache past its freshness (stale-while-revalidate, stale-if-error)
        self.stale = stale
        #: seconds since the upstream produced the value, when it came from the cache
        self.age = age
        #: seconds the value stays fresh (0: not cacheable); bounds the whole answer's caching
        self.fresh_for = fresh_for
        #: what the cache did for a cached source's value (``None``: not cached, or failed)
        self.cache: CacheResult | None = cache

    @property
    def ok(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        if self.reason is None:
            return "ok"
        if self.reason == "upstream_status":
            return f"upstream_status {self.upstream_status}"
        return f"{self.reason}: {self.detail}" if self.detail else self.reason

    def __repr__(self) -> str:
        return f"PartOutcome({self.name!r}, {self.describe()}, {self.duration * 1000:.1f} ms)"


class Item:
    """One item of a list part: its id, and each item source's value (``None`` when failed)."""

    __slots__ = ("failures", "id", "values")

    def __init__(self, id: str, values: dict[str, Any], failures: dict[str, FailureReason]) -> None:
        self.id = id
        #: item source name -> its value, ``None`` when it failed
        self.values = values
        #: item source name -> why it failed, for the parts that failed
        self.failures = failures

    def value(self, name: str) -> Any:
        return self.values.get(name)

    @property
    def failed(self) -> list[str]:
        """The names of the parts that failed, in declaration order."""
        return list(self.failures)

    def __repr__(self) -> str:
        return f"Item({self.id!r}, failed={self.failed!r})"


class ItemFailure:
    """One way an item source failed, and the items it failed for (an ``errors`` entry)."""

    __slots__ = ("ids", "reason", "source", "status")

    def __init__(
        self, source: str, reason: FailureReason, status: int | None, ids: list[str]
    ) -> None:
        #: ``list.item_source``, e.g. ``items.pricing``
        self.source = source
        self.reason: FailureReason = reason
        #: the upstream's status, for ``upstream_status``
        self.status = status
        #: every item affected, in list order
        self.ids = ids


class ItemsResult(Sequence[Item]):
    """A list part's value: its items in list order, and what failed or came stale."""

    __slots__ = ("_items", "failures", "stale", "tag", "total")

    def __init__(
        self,
        items: list[Item],
        *,
        total: int,
        failures: list[ItemFailure],
        stale: list[tuple[str, float]],
        tag: str,
    ) -> None:
        self._items = items
        #: how many ids the whole list has, before paging
        self.total = total
        self.failures = failures
        #: ``(list.item_source, age)`` of item sources that served some item stale (the oldest)
        self.stale = stale
        #: what the items' cache entries are tagged with (``tag=<id>``)
        self.tag = tag

    @overload
    def __getitem__(self, index: int) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Item]: ...
    def __getitem__(self, index: int | slice) -> Item | Sequence[Item]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"ItemsResult({len(self._items)} of {self.total}, failures={len(self.failures)})"


class AggregateResult(Mapping[str, PartOutcome]):
    """The outcomes of every part that was asked for, in declaration order.

    It is a read-only mapping from part name to :class:`PartOutcome`; ``value(name)`` gives a
    part's value or ``None`` when it failed or was not asked for.
    """

    __slots__ = ("_parts", "aggregate", "duration")

    def __init__(self, aggregate: str, parts: dict[str, PartOutcome], duration: float) -> None:
        self.aggregate = aggregate
        self._parts = parts
        #: seconds the whole aggregation took
        self.duration = duration

    def __getitem__(self, name: str) -> PartOutcome:
        return self._parts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    # The dict's own views and lookups: Mapping's would call __iter__ and __getitem__ back
    # in Python for every part, and views read on every answer.
    def __contains__(self, name: object) -> bool:
        return name in self._parts

    def keys(self) -> KeysView[str]:
        return self._parts.keys()

    def values(self) -> ValuesView[PartOutcome]:
        return self._parts.values()

    def items(self) -> ItemsView[str, PartOutcome]:
        return self._parts.items()

    def get(self, name: str, default: Any = None) -> Any:
        return self._parts.get(name, default)

    def value(self, name: str) -> Any:
        outcome = self._parts.get(name)
        return None if outcome is None else outcome.value

    @property
    def failures(self) -> list[PartOutcome]:
        return [o for o in self._parts.values() if o.reason is not None]

    @property
    def stale(self) -> list[PartOutcome]:
        """The parts served from the cache past their freshness."""
        return [o for o in self._parts.values() if o.stale]

    def item_tags(self) -> list[str]:
        """``tag=<id>`` of every item of every list part (for the whole answer's cache entry)."""
        tags: list[str] = []
        for outcome in self._parts.values():
            if type(outcome.value) is ItemsResult:
                tag = outcome.value.tag
                tags += [f"{tag}={item.id}" for item in outcome.value]
        return tags

    @property
    def fresh_for(self) -> float:
        """How long the whole answer may be cached: 0 unless every part is ok and fresh."""
        if not self._parts:
            return 0.0
        return min(
            (0.0 if o.reason is not None or o.stale else o.fresh_for) for o in self._parts.values()
        )

    def server_timing(self) -> str:
        """A ``Server-Timing`` header value: each part's duration, failures described."""
        entries = []
        for outcome in self._parts.values():
            entry = f"{outcome.name};dur={outcome.duration * 1000:.1f}"
            if outcome.reason is not None:
                entry += f';desc="{outcome.reason}"'
            elif outcome.age is not None:
                entry += ';desc="stale"' if outcome.stale else ';desc="cache"'
            entries.append(entry)
        entries.append(f"total;dur={self.duration * 1000:.1f}")
        return ", ".join(entries)

    def __repr__(self) -> str:
        return f"AggregateResult({self.aggregate!r}, {list(self._parts.values())!r})"
