"""One run of an aggregate: its parts as tasks, started as their dependencies succeed, under
one deadline, each ending in exactly one outcome (the scheduling rules are in ``_gateway``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping, Sequence
from time import perf_counter
from typing import Any

from .._aio import cancel_and_wait
from .._cache import Answer
from .._deadline import Deadline
from .._declare import Aggregate, Items, Plan, Source
from .._errors import AggregationFailed
from .._guards import Identity
from .._outcome import AggregateResult, PartOutcome
from .._telemetry import PartTrace
from .._transports import UpstreamResponse
from ._lists import ListRun
from ._outcomes import outcome_of
from ._wiring import Wiring

__all__ = ["Part", "Run"]

logger = logging.getLogger("bff_core")


class Part:
    """One started request (or list): its source, when it started, its own timer if it has
    one, and for a list part what the list has so far."""

    __slots__ = ("list", "source", "started", "timed_out", "timer", "trace")

    def __init__(self, source: Source | Items, started: float) -> None:
        self.source = source
        self.started = started
        self.timer: asyncio.TimerHandle | None = None
        self.timed_out = False
        self.trace: PartTrace | None = None
        self.list: ListRun | None = None


def _with_identity(
    headers: Mapping[str, str], source: Source, identity: Identity
) -> dict[str, str]:
    """The headers of a request to a source that is given the caller's identity."""
    given = dict(headers)
    if source.pass_token:
        given["authorization"] = "Bearer " + identity.token
    if source.subject_header is not None:
        given[source.subject_header] = identity.subject
    return given


class Run:
    """The state of one :meth:`Gateway.run`: what is running, what waits, what happened.

    Each part is a task running the fetch coroutine itself (the upstream chain's, or the
    cache's), or, for a part read in a batch across runs, its batch's future; its outcome is
    worked out in
    the task's done-callback. One future and one timer per run, whatever the number of
    sources, and no timer at all for a part without a timeout of its own: the hot path pays
    for no more objects than it needs.
    """

    __slots__ = (
        "aggregate",
        "began",
        "changed",
        "closed",
        "cut_off_because",
        "deadline",
        "failed_critical",
        "finished",
        "headers",
        "identity",
        "loop",
        "outcomes",
        "results",
        "running",
        "values",
        "waiting",
        "wiring",
    )

    def __init__(
        self,
        wiring: Wiring,
        dependents: Sequence[Source | Items],
        values: Mapping[str, str],
        headers: Mapping[str, str],
        deadline: Deadline,
        loop: asyncio.AbstractEventLoop,
        aggregate: str = "",
        identity: Identity | None = None,
    ) -> None:
        self.wiring = wiring
        self.aggregate = aggregate
        self.values = values
        self.headers = headers
        self.identity = identity
        self.deadline = deadline
        self.loop = loop
        self.began = perf_counter()
        self.outcomes: dict[str, PartOutcome] = {}
        self.results: dict[str, Any] = {}
        self.running: dict[asyncio.Future[Any], Part] = {}
        self.waiting: Sequence[Source | Items] = dependents
        self.failed_critical: PartOutcome | None = None
        self.finished: asyncio.Future[None] = loop.create_future()
        self.closed = False
        #: set on every outcome and at the end, for a streamed run (see AggregateStream)
        self.changed: asyncio.Event | None = None
        #: why the parts still running at the end time out
        self.cut_off_because = "aggregation deadline reached"

    def start(self, source: Source | Items) -> None:
        if isinstance(source, Items):
            self._start_list(source)
            return
        try:
            path = source.render(self.values, self.results)
        except (LookupError, AttributeError) as exc:
            self.outcomes[source.name] = PartOutcome(
                source.name, reason="dependency_failed", detail=str(exc)
            )
            return
        url = self.wiring.base_urls[source.service] + path
        part = Part(source, perf_counter())
        deadline = self.deadline
        if source.timeout is not None and (at := self.loop.time() + source.timeout) < deadline.at:
            deadline = Deadline(at, deadline)  # the part's own, within the run's
        cache = self.wiring.cache
        headers = self.headers
        if self.identity is not None and source.passes_identity:
            headers = _with_identity(headers, source, self.identity)
        tracing = self.wiring.tracing
        if (
            source.batch is not None
            and (source.cache is None or cache is None)
            and (submit := self.wiring.batcher(source)) is not None
        ):
            # Read in a batch across runs: the part waits for its read's future (no task of
            # its own unless its read leads its turn: then, made while the part's span is the
            # current one, its request carries it).
            if tracing is None:
                reading = submit(url, headers, deadline, None)
            else:
                part.trace, tokens = tracing.start_part(self.aggregate, source.name, source.service)
                reading = submit(url, headers, deadline, part.trace)
                tracing.restore(tokens)
            self._watch(reading, part, deadline)
            return
        fetch: Coroutine[Any, Any, UpstreamResponse | Answer]
        if source.cache is not None and cache is not None:
            fetch = cache.get(source, source.cache, url, headers, self.values, deadline)
        else:
            fetch = self.wiring.fetch(source, url, headers, deadline)
        if tracing is None:
            task: asyncio.Task[UpstreamResponse | Answer] = self.loop.create_task(
                fetch, name=source.task_name
            )
        else:
            # The task copies the context now: its requests carry the part's span.
            part.trace, tokens = tracing.start_part(self.aggregate, source.name, source.service)
            task = self.loop.create_task(fetch, name=source.task_name)
            tracing.restore(tokens)
        self._watch(task, part, deadline)

    def _watch(self, running: asyncio.Future[Any], part: Part, deadline: Deadline) -> None:
        """Record ``part``'s outcome when ``running`` (its task, or its batch's future) ends,
        and end it at its own deadline if it has one."""
        if deadline is not self.deadline:
            part.timer = self.loop.call_at(deadline.at, self._time_out, running, part, deadline)
        running.add_done_callback(self._on_done)
        self.running[running] = part

    def _start_list(self, items: Items) -> None:
        try:
            ids, total = items.ids_of(self.values, self.results)
        except (LookupError, AttributeError) as exc:
            self.outcomes[items.name] = PartOutcome(
                items.name, reason="dependency_failed", detail=str(exc)
            )
            return
        identity = self.identity
        headers = {
            s.name: self.headers
            if identity is None or not s.passes_identity
            else _with_identity(self.headers, s, identity)
            for s in items.sources
        }
        part = Part(items, perf_counter())
        part.list = ListRun(
            self.wiring, items, ids, total, self.values, headers, self.deadline, self.loop
        )
        tracing = self.wiring.tracing
        if tracing is None:
            task = self.loop.create_task(part.list.run(), name=items.task_name)
        else:
            services = ",".join(sorted(items.services))
            part.trace, tokens = tracing.start_part(self.aggregate, items.name, services)
            task = self.loop.create_task(part.list.run(), name=items.task_name)
            tracing.restore(tokens)
        task.add_done_callback(self._on_done)
        self.running[task] = part

    @staticmethod
    def _time_out(task: asyncio.Future[Any], part: Part, deadline: Deadline) -> None:
        deadline.expire()  # first: the cancelled request knows it was the deadline's
        part.timed_out = True
        task.cancel()

    def _on_done(self, task: asyncio.Future[Any]) -> None:
        if self.closed:
            return
        part = self.running.pop(task)
        if part.timer is not None:
            part.timer.cancel()
        self._record_finished(part, task)
        if self.failed_critical is not None:
            self.finish()
            return
        if self.waiting:
            self._start_ready()
        if not self.running:
            self.finish()

    def _record_finished(self, part: Part, task: asyncio.Future[Any]) -> None:
        """Record what a finished part's task means, and how long it took for the start order."""
        outcome = _outcome(part, task)
        if (order := self.wiring.start_order) is not None:
            order.observe(part.source, outcome.duration)
        self._record(part.source, outcome, part)

    def _record(
        self, source: Source | Items, outcome: PartOutcome, part: Part | None = None
    ) -> None:
        if part is not None and part.trace is not None:
            assert self.wiring.tracing is not None
            self.wiring.tracing.end_part(part.trace, outcome)
            part.trace = None
        self.outcomes[source.name] = outcome
        if outcome.reason is None:
            self.results[source.name] = outcome.value
        elif source.critical and self.failed_critical is None:
            self.failed_critical = outcome
        if self.changed is not None:
            self.changed.set()

    def _start_ready(self) -> None:
        # Sources wait in dependency order, so one pass also settles chains of failures.
        still_waiting = []
        for source in self.waiting:
            dependencies = source.depends_on
            if not dependencies <= self.outcomes.keys():
                still_waiting.append(source)
                continue
            broken = sorted(d for d in dependencies if self.outcomes[d].reason is not None)
            if broken:
                self.outcomes[source.name] = PartOutcome(
                    source.name, reason="dependency_failed", detail=f"needs {', '.join(broken)}"
                )
                continue
            self.start(source)
        self.waiting = still_waiting

    def expire(self) -> None:
        """The run's deadline: what is still running is cut off by it (timeouts)."""
        self.deadline.expire()
        self.finish()

    def finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)
            if self.changed is not None:
                self.changed.set()

    def stop(self) -> list[Part]:
        """:meth:`close` of a run with no part running: only stop reacting."""
        self.closed = True
        return []

    async def close(self) -> list[Part]:
        """Stop reacting, keep what finished meanwhile, cancel and await everything else.

        Returns the parts it cut off.
        """
        self.closed = True
        unfinished: dict[asyncio.Future[Any], Part] = {}
        for task, part in self.running.items():
            if part.timer is not None:
                part.timer.cancel()
            if task.done() and (not task.cancelled() or part.timed_out):
                # Finished, but its callback had not run yet when the run ended.
                self._record_finished(part, task)
            else:
                if part.list is not None and self.failed_critical is None:
                    # The deadline: the list keeps the items that arrived, the rest time out.
                    self._record(part.source, part.list.outcome(cut_off=True), part)
                unfinished[task] = part
                if (order := self.wiring.start_order) is not None:
                    # Cut off: it takes at least this long (how much longer is unknown).
                    order.observe_at_least(part.source, perf_counter() - part.started)
        self.running.clear()
        if unfinished:
            await cancel_and_wait(unfinished)
        return list(unfinished.values())

    def conclude(self, aggregate: Aggregate, plan: Plan, cut_off: list[Part]) -> AggregateResult:
        """The result of a closed run; raises :class:`AggregationFailed` when a critical part
        failed (or did not end by the deadline)."""
        wiring = self.wiring
        outcomes = self.outcomes
        failed_critical = self.failed_critical
        if failed_critical is None:
            # The deadline ended the run: what was cut off, or never started, timed out.
            now = perf_counter()
            started = {part.source.name: part.started for part in cut_off}
            for source in plan.sources:
                if source.name not in outcomes:
                    outcomes[source.name] = outcome = PartOutcome(
                        source.name,
                        reason="timeout",
                        duration=now - started.get(source.name, self.began),
                        detail=self.cut_off_because,
                    )
                    if source.critical and failed_critical is None:
                        failed_critical = outcome
        if wiring.tracing is not None:
            for part in cut_off:
                if part.trace is not None:
                    wiring.tracing.end_part(
                        part.trace,
                        outcomes.get(part.source.name)
                        or PartOutcome(
                            part.source.name, reason="timeout", detail="abandoned: critical failed"
                        ),
                    )
        if wiring.metrics is not None:
            wiring.metrics.observe_parts(
                aggregate.name, outcomes.values(), wiring.cached_sources[aggregate.name]
            )
        if failed_critical is not None:
            failures = [o for o in outcomes.values() if o.reason is not None]
            raise AggregationFailed(
                aggregate.name, failed_critical, failures, list(outcomes.values())
            )
        reported = plan.reported
        parts = {s.name: outcomes[s.name] for s in plan.sources if s.name in reported}
        return AggregateResult(aggregate.name, parts, perf_counter() - self.began)


def _outcome(part: Part, task: asyncio.Future[Any]) -> PartOutcome:
    """What a finished part means: exactly one outcome."""
    source = part.source
    reading = part.list
    if reading is not None:
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("list part %s failed unexpectedly", source.name, exc_info=error)
        return reading.outcome(cut_off=task.cancelled())
    assert isinstance(source, Source)
    # Ended by the part's own timer (nothing else cancels a part still wanted): cancelled, or
    # a TimeoutError from a layer that knew the cancellation was the deadline's (the breaker's).
    if task.cancelled() or (part.timed_out and isinstance(task.exception(), TimeoutError)):
        limit = f"its timeout of {source.timeout * 1000:.0f} ms" if source.timeout else "time"
        return PartOutcome(
            source.name,
            reason="timeout",
            duration=perf_counter() - part.started,
            detail=f"no answer within {limit}",
        )
    error = task.exception()
    return outcome_of(source, part.started, task.result() if error is None else error)
