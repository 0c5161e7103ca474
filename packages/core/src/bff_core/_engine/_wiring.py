"""What every run of one gateway works with, put together once by the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from .._cache import Cache
from .._deadline import Deadline
from .._declare import Source
from .._telemetry import Metrics, PartTrace, Tracing
from .._transports import UpstreamResponse
from ._start_order import StartOrder

__all__ = ["Fetch", "Submit", "Wiring"]

#: One upstream request through its source's chain: (source, url, headers, its deadline).
Fetch: TypeAlias = Callable[
    [Source, str, Mapping[str, str], Deadline], Coroutine[Any, Any, UpstreamResponse]
]

#: A batched source's read joined to its batch: (source, url, headers, deadline, the part's
#: span); the future of its answer.
Submit: TypeAlias = Callable[
    [Source, str, Mapping[str, str], Deadline, PartTrace | None], asyncio.Future[UpstreamResponse]
]


@dataclass(frozen=True, slots=True, eq=False)
class Wiring:
    """What every run of one gateway works with, put together once by the gateway: a run (and
    its lists) gets this, never the gateway itself."""

    #: each service's base URL, without a trailing slash
    base_urls: Mapping[str, str]
    #: every upstream request, direct or on a cache miss, goes through it
    fetch: Fetch
    #: whether a source's reads are batched across runs (then ``submit`` them)
    batched: Callable[[Source], bool]
    #: a batched source's read without a cache around it: joined to its batch, no task
    submit: Submit
    cache: Cache | None
    tracing: Tracing | None
    metrics: Metrics | None
    #: the parts that start together, slowest first; ``None``: as declared
    start_order: StartOrder | None
    #: per aggregate, the sources whose values the cache keeps (for the metrics)
    cached_sources: Mapping[str, frozenset[str]]
