"""What every run of one gateway works with, put together once by the gateway."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from .._cache import Cache
from .._deadline import Deadline
from .._declare import Source
from .._telemetry import Metrics, Tracing
from .._transports import UpstreamResponse
from .._upstream import Submit
from ._start_order import StartOrder

__all__ = ["Fetch", "Wiring"]

#: One upstream request through its source's chain: (source, url, headers, its deadline).
Fetch: TypeAlias = Callable[
    [Source, str, Mapping[str, str], Deadline], Coroutine[Any, Any, UpstreamResponse]
]


@dataclass(frozen=True, slots=True, eq=False)
class Wiring:
    """What every run of one gateway works with, put together once by the gateway: a run (and
    its lists) gets this, never the gateway itself."""

    #: each service's base URL, without a trailing slash
    base_urls: Mapping[str, str]
    #: every upstream request, direct or on a cache miss, goes through it
    fetch: Fetch
    #: how a read of a source batched across runs joins its batch (``None``: not batched);
    #: for a part without a cache around its read, which then needs no task
    batcher: Callable[[Source], Submit | None]
    cache: Cache | None
    tracing: Tracing | None
    metrics: Metrics | None
    #: the parts that start together, slowest first; ``None``: as declared
    start_order: StartOrder | None
    #: per aggregate, the sources whose values the cache keeps (for the metrics)
    cached_sources: Mapping[str, frozenset[str]]
