"""List parts: every item of a list enriched by each item source, in as few requests as it takes.

For one :class:`~bff_core.Items` part of one run, :class:`ListRun` reads each item source for
every item at once:

- with a cache, each item's part is its own entry (the same one a single-item source with the
  same name and URL uses): what the cache holds fresh costs nothing, an item another request
  is looking up waits for that lookup, and the rest goes to the upstream in one round of
  chunks (see :meth:`Cache.get_items`);
- without one, the items go to the upstream in chunks directly;
- a chunk is one request through the service's breaker, retries and retry budget: a batch
  request of at most the declared size, or one item's request when the source has no batch
  endpoint; at most ``concurrency`` of them at once.

Each item's parts are recorded as they arrive, so the run's deadline (one for the whole list)
ends the list with what arrived and marks the rest ``timeout``, item by item.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from time import perf_counter
from typing import Any

import msgspec

from .._cache import Answer, Cache
from .._deadline import Deadline
from .._declare import Items, Source, encode_id
from .._outcome import FailureReason, Item, ItemFailure, ItemsResult, PartOutcome
from .._transports import UpstreamResponse
from .._upstream import split_batch
from ._outcomes import outcome_of
from ._wiring import Wiring

__all__ = ["ListRun"]

logger = logging.getLogger("bff_core")

_ABSENT: Any = object()


class ListRun:
    """One list part of one run: its ids, and each item's parts as they arrive."""

    __slots__ = (
        "began",
        "deadline",
        "headers",
        "ids",
        "items",
        "loop",
        "outcomes",
        "params",
        "total",
        "wiring",
    )

    def __init__(
        self,
        wiring: Wiring,
        items: Items,
        ids: list[str],
        total: int,
        params: Mapping[str, str],
        headers: Mapping[str, Mapping[str, str]],
        deadline: Deadline,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.wiring = wiring
        self.items = items
        self.ids = ids
        self.total = total
        self.params = params
        #: the headers of each item source's requests (identity included where declared)
        self.headers = headers
        self.deadline = deadline
        self.loop = loop
        self.began = perf_counter()
        #: item source name -> item id -> its outcome, filled in as they arrive; read from the
        #: upstream without a cache, a success is kept as the bare value (no outcome object
        #: per item on that path: it has nothing else to say)
        self.outcomes: dict[str, dict[str, Any]] = {s.name: {} for s in items.sources}

    async def run(self) -> None:
        if not self.ids:
            return
        reads = [self._read(source) for source in self.items.sources]
        await asyncio.gather(*reads)

    def _read(self, source: Source) -> Coroutine[Any, Any, None]:
        cache = self.wiring.cache
        if source.cache is not None and cache is not None:
            return self._read_cached(source, cache)
        return self._read_directly(source)

    def _deadline(self, source: Source) -> Deadline:
        """The run's deadline, or the source's own timeout from now if that comes first."""
        return self.deadline.within(source.timeout)

    def _read_cached(self, source: Source, cache: Cache) -> Coroutine[Any, Any, None]:
        """Each item through its cache entry; what the cache lacks, in chunks."""
        assert source.cache is not None
        base = self.wiring.base_urls[source.service]
        before, after = source.around_item(self.params)
        urls = {item: f"{base}{before}{encode_id(item)}{after}" for item in self.ids}
        headers = self.headers[source.name]
        batch = source.batch
        fetch = self.wiring.fetch
        outcomes = self.outcomes[source.name]
        started = perf_counter()
        if batch is None:

            async def fetch_chunk(
                chunk: list[str], deadline: Deadline
            ) -> Mapping[str, UpstreamResponse]:
                return {chunk[0]: await fetch(source, urls[chunk[0]], headers, deadline)}

        else:
            batch_before, batch_after = batch.around_ids(self.params)

            async def fetch_chunk(
                chunk: list[str], deadline: Deadline
            ) -> Mapping[str, UpstreamResponse]:
                url = f"{base}{batch_before}{','.join(map(encode_id, chunk))}{batch_after}"
                return split_batch(batch, chunk, await fetch(source, url, headers, deadline))

            if not batch.same_as_item:
                # The batch answers a summary: its entries are the batch's, one id at a time.
                urls = {
                    item: f"{base}{batch_before}{encode_id(item)}{batch_after}" for item in self.ids
                }

        def answered(item: str, answer: UpstreamResponse | Answer | Exception) -> None:
            outcomes[item] = outcome_of(source, started, answer)

        tag = self.items.tag
        # Not {user} either: a tag is a Redis key, and it would name the user.
        param_tags = [
            f"{n}={self.params[n]}" for n in source.param_names if n not in ("item", "user")
        ]
        return cache.get_items(
            source,
            source.cache,
            urls,
            headers,
            lambda item: [f"{tag}={item}", *param_tags],
            self._deadline(source),
            fetch_chunk,
            size=1 if batch is None else batch.size,
            concurrency=source.concurrency,
            answered=answered,
        )

    async def _read_directly(self, source: Source) -> None:
        """Every item from the upstream, in chunks: a batch answer is decoded once, whole."""
        ids = self.ids
        batch = source.batch
        size = 1 if batch is None else batch.size
        chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
        limit = asyncio.Semaphore(source.concurrency) if len(chunks) > source.concurrency else None
        deadline = self._deadline(source)
        base = self.wiring.base_urls[source.service]
        headers = self.headers[source.name]
        fetch = self.wiring.fetch
        outcomes = self.outcomes[source.name]
        started = perf_counter()
        if batch is None:
            before, after = source.around_item(self.params)
        else:
            before, after = batch.around_ids(self.params)
        values_of = source.batch_values

        async def read(chunk: list[str]) -> None:
            if batch is None:
                url = f"{base}{before}{encode_id(chunk[0])}{after}"
            else:
                url = f"{base}{before}{','.join(map(encode_id, chunk))}{after}"
            try:
                if limit is None:
                    response = await fetch(source, url, headers, deadline)
                else:
                    async with limit:
                        response = await fetch(source, url, headers, deadline)
            except Exception as exc:
                failed = outcome_of(source, started, exc)
                for item in chunk:
                    outcomes[item] = failed
                return
            if values_of is None or not 200 <= response.status < 300:
                answered = outcome_of(source, started, response)
                for item in chunk:
                    outcomes[item] = answered
                return
            duration = perf_counter() - started
            try:
                values = values_of(response.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                failed = PartOutcome(
                    source.name,
                    reason="invalid_response",
                    duration=duration,
                    upstream_status=response.status,
                    detail=f"batch answer: {str(exc)[:200]}",
                )
                for item in chunk:
                    outcomes[item] = failed
                return
            missing: PartOutcome | None = None
            for item in chunk:
                value = values.get(item, _ABSENT)
                if value is _ABSENT:
                    value = missing = missing or _missing(source.name, duration)
                outcomes[item] = value

        if len(chunks) == 1:
            await read(chunks[0])
        else:
            await asyncio.gather(*(read(chunk) for chunk in chunks))

    def outcome(self, *, cut_off: bool = False) -> PartOutcome:
        """The list part's outcome from what has arrived (all of it, unless ``cut_off``)."""
        name = self.items.name
        duration = perf_counter() - self.began
        sources = self.items.sources
        outcomes = self.outcomes
        kept: list[Item] = []
        failed: dict[tuple[str, FailureReason, int | None], list[str]] = {}
        stale: dict[str, float] = {}
        fresh_for = float("inf")
        critical_failure: PartOutcome | None = None
        for item in self.ids:
            values: dict[str, Any] = {}
            failures: dict[str, FailureReason] = {}
            dropped = False
            for source in sources:
                outcome = outcomes[source.name].get(item, _ABSENT)
                if type(outcome) is not PartOutcome:
                    if outcome is not _ABSENT:  # read without a cache: the bare value
                        values[source.name] = outcome
                        fresh_for = 0.0
                        continue
                    outcome = PartOutcome(
                        source.name,
                        reason="timeout",
                        duration=duration,
                        detail="aggregation deadline reached" if cut_off else "no answer",
                    )
                if outcome.reason is None:
                    values[source.name] = outcome.value
                    if outcome.stale:
                        full = f"{name}.{source.name}"
                        stale[full] = max(stale.get(full, 0.0), outcome.age or 0.0)
                        fresh_for = 0.0
                    else:
                        fresh_for = min(fresh_for, outcome.fresh_for)
                    continue
                values[source.name] = None
                fresh_for = 0.0
                missing = outcome.reason == "upstream_status" and outcome.upstream_status == 404
                if source.critical:
                    dropped = True
                    if not missing:
                        failures = {source.name: outcome.reason}
                        critical_failure = critical_failure or outcome
                    else:
                        failures = {}
                    break
                failures[source.name] = outcome.reason
            for part, reason in failures.items():
                answered = outcomes[part].get(item)
                code = None
                if reason == "upstream_status" and type(answered) is PartOutcome:
                    code = answered.upstream_status
                failed.setdefault((f"{name}.{part}", reason, code), []).append(item)
            if not dropped:
                kept.append(Item(item, values, failures))
        result = ItemsResult(
            kept,
            total=self.total,
            failures=[ItemFailure(s, r, c, ids) for (s, r, c), ids in failed.items()],
            stale=list(stale.items()),
            tag=self.items.tag,
        )
        if not kept and critical_failure is not None:
            # Not one item could be shown, and not because they are unknown: the list failed.
            return PartOutcome(
                name,
                reason=critical_failure.reason,
                duration=duration,
                upstream_status=critical_failure.upstream_status,
                detail=f"{critical_failure.name} failed for every item: "
                + critical_failure.describe(),
            )
        return PartOutcome(
            name,
            value=result,
            duration=duration,
            stale=bool(stale),
            age=max(stale.values()) if stale else None,
            fresh_for=0.0 if fresh_for == float("inf") else fresh_for,
        )


def _missing(name: str, duration: float) -> PartOutcome:
    """An item its batch answer leaves out: the upstream does not know it (a 404 of its own)."""
    return PartOutcome(
        name,
        reason="upstream_status",
        duration=duration,
        upstream_status=404,
        detail="not in the batch answer",
    )
