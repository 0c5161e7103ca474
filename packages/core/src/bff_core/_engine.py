"""The engine: runs an aggregate's sources as a graph under one deadline.

Scheduling rules, in one place:
- every source starts as soon as the sources it depends on have succeeded, all others
  concurrently; a source whose dependency failed ends as ``dependency_failed`` without a request;
- the sources that start together start slowest first, by their recent durations
  (``_start_order.py``), so the request the answer waits for leaves first;
- each source is bounded by its own timeout and by the aggregation's deadline, whichever is
  first; what has not finished by the deadline ends as ``timeout``;
- when a critical part fails, the rest is cancelled at once and :class:`AggregationFailed` is
  raised (the answer is an error anyway, so nobody waits for the slow parts);
- no task :meth:`Gateway.run` started outlives it: every one is finished or cancelled and
  awaited before it returns or raises. Three things may go on after it, each bounded: a
  request the default pyreqwest client cannot abort (it ends in Rust at the deadline, see
  ``docs/decisions/0002-hot-path.md``), a cached source's lookup that other requests are
  waiting for, with its write to the store (owned by the cache, see ``_cache/_lookups.py``),
  and a circuit breaker's trial request (owned by the breaker, see ``_resilience.py``).

Every upstream request goes through :class:`~bff_core._resilience.Upstreams` (breakers,
retries, hedges, the deadline header), directly or through the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ._aio import cancel_and_wait
from ._cache import Answer, Cache, RedisStore, TieredStore
from ._declaration import ANONYMOUS, Aggregate, Items, Source, _Plan
from ._errors import AggregationFailed, DeclarationError
from ._identity import Identity
from ._items import ListRun, outcome_of
from ._metrics import Metrics
from ._outcome import FAILURE_REASONS, AggregateResult, PartOutcome
from ._peers import Peers
from ._resilience import (
    DEADLINE_HEADER,
    DEFAULT_BREAKER,
    DEFAULT_RETRY_BUDGET,
    BreakerPolicy,
    RetryBudget,
    Upstreams,
    UpstreamStatus,
    breaker_policies,
)
from ._start_order import StartOrder
from ._tracing import PartTrace, Tracing
from ._transport import HttpClient, Transport, UpstreamResponse, make_transport

if TYPE_CHECKING:
    from ._cache import CacheStore

__all__ = ["AggregateStream", "Gateway"]

logger = logging.getLogger("bff_core")

_ACCEPT_JSON = {"accept": "application/json"}


class Gateway:
    """Runs declared aggregates against configured upstream services.

    Args:
        services: base URL of every upstream service the aggregates name.
        aggregates: the aggregates this gateway serves; each is checked against ``services``
            here, so a missing service fails at start-up.
        timeout: the deadline of a whole aggregation, in seconds.
        transport: how to reach upstreams. A transport passed in is not closed by
            :meth:`aclose`. Without one the gateway makes (and closes) its own, of the kind
            ``http_client`` names.
        http_client: ``"pyreqwest"`` (the default, fastest) or ``"aiohttp"``; see
            :class:`GatewaySettings`.
        cache: where sources with a cache policy keep their answers (in-process, or Redis
            behind a near cache: ``bff_core._cache.make_store``); ``None``: nothing is cached.
            Connected by :meth:`start`, closed by :meth:`aclose`.
        breakers: the circuit breaker of each upstream service: one :class:`BreakerPolicy`
            for every service (the default), a mapping from service name to policy (services
            it leaves out get the default policy, services mapped to ``None`` get no breaker),
            or ``None`` for no breakers at all.
        retry_budget: how many retries and hedges each service may get on top of its
            requests; ``None``: sources' retry and hedge declarations are not acted upon.
        deadline_header: the request header that tells upstreams how many milliseconds are
            left until the gateway stops waiting, or ``None`` not to send it.
        peers: a Redis URL (one server or a cluster) through which this instance and every
            other one using the same ``peers_namespace`` tell each other what changed (see
            ``_peers``): a breaker that opens here opens there too, and an invalidation
            (:meth:`invalidate`) clears their near caches too. Active between :meth:`start`
            and :meth:`aclose`. ``None``: this instance's breakers are its own.
        peers_namespace: the deployment's name among the instances sharing ``peers``.
        metrics: where the gateway counts what it does (``None``: nowhere).
        tracing: how the gateway's spans are made (``None``: no spans).
        slowest_first: start the parts that can start together slowest first, by their
            recent durations (``_start_order``); ``False``: in the order they are declared.
    """

    def __init__(
        self,
        *,
        services: Mapping[str, str],
        aggregates: Sequence[Aggregate] = (),
        timeout: float = 1.0,
        transport: Transport | None = None,
        http_client: HttpClient = "pyreqwest",
        cache: CacheStore | None = None,
        breakers: BreakerPolicy | Mapping[str, BreakerPolicy | None] | None = DEFAULT_BREAKER,
        retry_budget: RetryBudget | None = DEFAULT_RETRY_BUDGET,
        deadline_header: str | None = DEADLINE_HEADER,
        peers: str | None = None,
        peers_namespace: str = "bff",
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        slowest_first: bool = True,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self._services = {name: url.rstrip("/") for name, url in services.items()}
        self.timeout = timeout
        self.metrics = metrics
        self.tracing = tracing
        self.aggregates: dict[str, Aggregate] = {}
        #: per aggregate, the sources whose values the cache keeps (for the metrics)
        self._cached_sources: dict[str, frozenset[str]] = {}
        self._caching = cache is not None
        for aggregate in aggregates:
            self.add(aggregate)
        self._owns_transport = transport is None
        self._transport = transport if transport is not None else make_transport(http_client)
        #: breakers, retries, hedges: every upstream request goes through it
        self.upstreams = Upstreams(
            self._services,
            self._transport,
            cancellable=getattr(self._transport, "cancellable", None),
            breakers=breaker_policies(self._services, breakers),
            budget=retry_budget,
            deadline_header=deadline_header,
            metrics=metrics,
            tracing=tracing,
        )
        self.cache = (
            None if cache is None else Cache(cache, self.upstreams.fetch, refresh_timeout=timeout)
        )
        self._peers = (
            None
            if peers is None or (breakers is None and cache is None)
            else Peers(
                peers,
                namespace=peers_namespace,
                upstreams=None if breakers is None else self.upstreams,
                forget=None if cache is None else cache.forget,
            )
        )
        self._shares_breakers = self._peers is not None and breakers is not None
        if metrics is not None:
            metrics.set_gauge(("bff_aggregation_deadline_seconds", ()), timeout)
            if cache is not None:
                metrics.cache_health(True)
                shared = cache.shared if isinstance(cache, TieredStore) else cache
                if isinstance(shared, RedisStore):
                    shared.on_health = metrics.cache_health
        #: set by :meth:`drain`: the instance is stopping, and says so to load balancers
        self.draining = False
        #: the parts that start together, slowest first (``_start_order.py``); else as declared
        self.start_order = StartOrder() if slowest_first else None

    @property
    def transport(self) -> Transport:
        return self._transport

    def add(self, aggregate: Aggregate) -> None:
        """Serve ``aggregate`` too, after checking that its services are configured."""
        missing = sorted(aggregate.services - self._services.keys())
        if missing:
            raise DeclarationError(
                f"aggregate {aggregate.name!r} calls service(s) {', '.join(missing)} which "
                f"have no base URL (configured: {', '.join(sorted(self._services)) or 'none'})"
            )
        if aggregate.name in self.aggregates and self.aggregates[aggregate.name] is not aggregate:
            raise DeclarationError(f"two aggregates are named {aggregate.name!r}")
        self.aggregates[aggregate.name] = aggregate
        self._cached_sources[aggregate.name] = frozenset(
            s.name for s in aggregate.sources if s.cache is not None and self._caching
        )
        if self.metrics is not None:
            self.metrics.declare(
                [
                    (
                        aggregate.name,
                        [
                            (s.name, s.name in self._cached_sources[aggregate.name])
                            for s in aggregate.sources
                        ],
                    )
                ],
                sorted(aggregate.services),
                FAILURE_REASONS,
            )

    async def run(
        self,
        aggregate: Aggregate,
        params: Mapping[str, str | None],
        *,
        fields: str | Iterable[str] | None = None,
        headers: Mapping[str, str] | None = None,
        time_limit: float | None = None,
        identity: Identity | None = None,
    ) -> AggregateResult:
        """Fetch the parts of ``aggregate`` (those named in ``fields``, or all) for ``params``.

        Returns the outcome of every part asked for. Raises :class:`InvalidParameter` or
        :class:`UnknownParts` before any upstream is called when the request is malformed, and
        :class:`AggregationFailed` when a critical part fails. ``time_limit`` overrides the
        gateway's deadline (seconds) for this run; ``headers`` are sent to every upstream.
        ``identity`` (the verified caller) reaches only the sources that declare they need it
        (``pass_token``, ``subject_header``).
        """
        run, plan = self._begin(aggregate, params, fields, headers, time_limit, identity)
        cut_off: list[_Part] = []
        if run.running:
            timer = run.loop.call_at(run.deadline, run.finish)
            try:
                await run.finished
            finally:
                timer.cancel()
                # Usually every part has ended: nothing to cancel, nothing to wait for.
                cut_off = await run.close() if run.running else run.stop()
        return self._conclude(aggregate, plan, run, cut_off)

    def stream(
        self,
        aggregate: Aggregate,
        params: Mapping[str, str | None],
        *,
        fields: str | Iterable[str] | None = None,
        headers: Mapping[str, str] | None = None,
        time_limit: float | None = None,
        identity: Identity | None = None,
    ) -> AggregateStream:
        """:meth:`run`, telling each part as it ends: ``await stream.ready()`` gives the
        critical parts (or raises :class:`AggregationFailed`, as ``run`` would), then ``async
        for outcome in stream`` each other part in the order they end, and ``stream.result``
        the whole result once the iteration is over. ``await stream.aclose()`` (or leaving
        ``async with stream``) ends it early: the parts still running are cancelled.

        Raises :class:`InvalidParameter` or :class:`UnknownParts` at once, before any upstream
        is called, when the request is malformed.
        """
        run, plan = self._begin(aggregate, params, fields, headers, time_limit, identity, True)
        return AggregateStream(self, aggregate, plan, run)

    def _begin(
        self,
        aggregate: Aggregate,
        params: Mapping[str, str | None],
        fields: str | Iterable[str] | None,
        headers: Mapping[str, str] | None,
        time_limit: float | None,
        identity: Identity | None,
        streamed: bool = False,
    ) -> tuple[_Run, _Plan]:
        """Validate the request and start the parts that depend on nothing."""
        if aggregate.name not in self.aggregates:
            self.add(aggregate)
        plan = aggregate.plan(fields)
        values = aggregate.validate_params(params)
        if aggregate.uses_user:
            values["user"] = ANONYMOUS if identity is None else identity.subject
        request_headers = _ACCEPT_JSON if headers is None else {**_ACCEPT_JSON, **headers}
        loop = asyncio.get_running_loop()
        # Deadlines on the loop's clock (what call_at and timeout_at use); durations on
        # perf_counter, because uvloop's clock only has millisecond resolution.
        deadline = loop.time() + (self.timeout if time_limit is None else time_limit)
        run = _Run(
            self, plan.dependents, values, request_headers, deadline, loop, aggregate.name, identity
        )
        if streamed:
            run.changed = asyncio.Event()
        roots = plan.roots if self.start_order is None else self.start_order.of(plan.roots)
        for source in roots:
            run.start(source)
        return run, plan

    def _conclude(
        self, aggregate: Aggregate, plan: _Plan, run: _Run, cut_off: list[_Part]
    ) -> AggregateResult:
        """The result of a closed run; raises :class:`AggregationFailed` when a critical part
        failed (or did not end by the deadline)."""
        outcomes = run.outcomes
        failed_critical = run.failed_critical
        if failed_critical is None:
            # The deadline ended the run: what was cut off, or never started, timed out.
            now = perf_counter()
            started = {part.source.name: part.started for part in cut_off}
            for source in plan.sources:
                if source.name not in outcomes:
                    outcomes[source.name] = outcome = PartOutcome(
                        source.name,
                        reason="timeout",
                        duration=now - started.get(source.name, run.began),
                        detail=run.cut_off_because,
                    )
                    if source.critical and failed_critical is None:
                        failed_critical = outcome
        if self.tracing is not None:
            for part in cut_off:
                if part.trace is not None:
                    self.tracing.end_part(
                        part.trace,
                        outcomes.get(part.source.name)
                        or PartOutcome(
                            part.source.name, reason="timeout", detail="abandoned: critical failed"
                        ),
                    )
        if self.metrics is not None:
            self.metrics.observe_parts(
                aggregate.name, outcomes.values(), self._cached_sources[aggregate.name]
            )
        if failed_critical is not None:
            failures = [o for o in outcomes.values() if o.reason is not None]
            raise AggregationFailed(
                aggregate.name, failed_critical, failures, list(outcomes.values())
            )
        reported = plan.reported
        parts = {s.name: outcomes[s.name] for s in plan.sources if s.name in reported}
        return AggregateResult(aggregate.name, parts, perf_counter() - run.began)

    async def start(self) -> None:
        """Connect to the cache's store, and start listening to its peers, when configured.

        ``async with Gateway(...)`` calls it; so does the Litestar plugin at start-up.
        """
        if self.cache is not None:
            await self.cache.store.start()
        if self._peers is not None:
            self._peers.start()
        if self.metrics is not None:
            self.metrics.start()

    def breaker_sharing(self) -> str:
        """How breaker state is shared right now (``/readyz`` detail)."""
        if self._peers is None or not self._shares_breakers:
            return "this instance only (not shared)"
        return self._peers.describe()

    async def invalidate(self, tags: Sequence[str]) -> tuple[int, int | None]:
        """Drop every cached part and answer carrying any of ``tags`` (``"id=p-1001"``),
        where they are shared and in the near cache of every instance.

        Returns how many entries were deleted, and how many instances were told (this one
        included; ``None``: no peers configured, or Redis could not be told).
        """
        if self.cache is None:
            return 0, None
        count = await self.cache.invalidate(tags)
        told = None if self._peers is None else await self._peers.invalidated(tags)
        return count, told

    def drain(self) -> None:
        """The instance is about to stop: from now on it is not ready (``/readyz`` 503), so
        load balancers stop sending it requests, while it still serves every one that comes."""
        if not self.draining:
            self.draining = True
            logger.info("draining: not ready any more, still serving until the stop")

    async def readiness(self) -> dict[str, str]:
        """Named checks for ``/readyz``; a value starting with ``ok`` means the check passed."""
        cache = "ok: disabled" if self.cache is None else await self.cache.store.check()
        checks = {"configuration": "ok", "cache": cache}
        if self.draining:
            checks["draining"] = "stopping: not taking new work once the drain ends"
        return checks

    def upstream_status(self) -> dict[str, UpstreamStatus]:
        """Each upstream service's breaker state, retries and hedges (``/readyz`` detail).

        An open breaker does not make the gateway unready: it serves what it can without
        that upstream, which is what the breaker is for.
        """
        return self.upstreams.status()

    async def aclose(self) -> None:
        """Close the cache, and the transport if the gateway created it."""
        if self.metrics is not None:
            await self.metrics.stop()
        if self.tracing is not None:
            self.tracing.shutdown()
        if self._peers is not None:
            await self._peers.aclose()
        await self.upstreams.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        if self._owns_transport:
            await self._transport.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AggregateStream:
    """An aggregation whose parts are told as they end: what :meth:`Gateway.stream` returns.

    ``await ready()`` waits for the critical parts and returns the outcomes of those asked
    for; then iterating gives every other part asked for, once, in the order they end (those
    the deadline cut off last, as timeouts), and ``result`` is the whole result. The run's
    deadline bounds it all. ``aclose()`` ends it early (the client went away): the parts still
    running are cancelled, and counted as abandoned.
    """

    def __init__(self, gateway: Gateway, aggregate: Aggregate, plan: _Plan, run: _Run) -> None:
        self._gateway = gateway
        self._aggregate = aggregate
        self._plan = plan
        self._run = run
        self._timer = run.loop.call_at(run.deadline, run.finish) if run.running else None
        if not run.running:
            run.finish()
        self._critical = frozenset(s.name for s in plan.sources if s.critical)
        self._told: set[str] = set()
        self._ended = False
        #: the whole result, once the stream has ended
        self.result: AggregateResult | None = None

    @property
    def began(self) -> float:
        """When the run began (``perf_counter``)."""
        return self._run.began

    async def ready(self) -> list[PartOutcome]:
        """The critical parts asked for, once every critical part has arrived.

        Raises :class:`AggregationFailed` when one failed or the deadline passed first.
        """
        run = self._run
        assert run.changed is not None
        while not (
            run.failed_critical is not None
            or run.finished.done()
            or self._critical <= run.outcomes.keys()
        ):
            run.changed.clear()
            await run.changed.wait()
        if run.failed_critical is not None or not self._critical <= run.outcomes.keys():
            await self._end()  # raises AggregationFailed
        self._told |= self._critical
        reported = self._plan.reported
        return [run.outcomes[name] for name in self._critical if name in reported]

    def __aiter__(self) -> AggregateStream:
        return self

    async def __anext__(self) -> PartOutcome:
        run = self._run
        assert run.changed is not None
        while True:
            for name, outcome in run.outcomes.items():
                if name not in self._told:
                    self._told.add(name)
                    if name in self._plan.reported:
                        return outcome
            if self._ended:
                raise StopAsyncIteration
            if run.finished.done():
                await self._end()  # what the deadline cut off becomes a timeout, told next
                continue
            run.changed.clear()
            await run.changed.wait()

    async def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        run = self._run
        if self._timer is not None:
            self._timer.cancel()
        run.finish()
        cut_off = await run.close()
        self.result = self._gateway._conclude(self._aggregate, self._plan, run, cut_off)

    async def aclose(self) -> None:
        """End the stream now: the parts still running are cancelled."""
        if not self._ended:
            self._run.cut_off_because = "abandoned: the client went away"
            with contextlib.suppress(AggregationFailed):
                await self._end()

    async def __aenter__(self) -> AggregateStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _Part:
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


class _Run:
    """The state of one :meth:`Gateway.run`: what is running, what waits, what happened.

    Each part is a task running the transport's coroutine itself; its outcome is worked out in
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
        "gateway",
        "headers",
        "identity",
        "loop",
        "outcomes",
        "results",
        "running",
        "values",
        "waiting",
    )

    def __init__(
        self,
        gateway: Gateway,
        dependents: Sequence[Source | Items],
        values: Mapping[str, str],
        headers: Mapping[str, str],
        deadline: float,
        loop: asyncio.AbstractEventLoop,
        aggregate: str = "",
        identity: Identity | None = None,
    ) -> None:
        self.gateway = gateway
        self.aggregate = aggregate
        self.values = values
        self.headers = headers
        self.identity = identity
        self.deadline = deadline
        self.loop = loop
        self.began = perf_counter()
        self.outcomes: dict[str, PartOutcome] = {}
        self.results: dict[str, Any] = {}
        self.running: dict[asyncio.Task[Any], _Part] = {}
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
        url = self.gateway._services[source.service] + path
        part = _Part(source, perf_counter())
        now = self.loop.time()
        part_deadline = self.deadline
        if source.timeout is not None and now + source.timeout < part_deadline:
            part_deadline = now + source.timeout
        cache = self.gateway.cache
        headers = self.headers
        if self.identity is not None and source.passes_identity:
            headers = _with_identity(headers, source, self.identity)
        fetch: Coroutine[Any, Any, UpstreamResponse | Answer]
        if source.cache is not None and cache is not None:
            fetch = cache.get(source, source.cache, url, headers, self.values, part_deadline - now)
        else:
            fetch = self.gateway.upstreams.fetch(source, url, headers, part_deadline - now)
        tracing = self.gateway.tracing
        if tracing is None:
            task: asyncio.Task[UpstreamResponse | Answer] = self.loop.create_task(
                fetch, name=source.task_name
            )
        else:
            # The task copies the context now: its requests carry the part's span.
            part.trace, tokens = tracing.start_part(self.aggregate, source.name, source.service)
            task = self.loop.create_task(fetch, name=source.task_name)
            tracing.restore(tokens)
        if part_deadline < self.deadline:
            part.timer = self.loop.call_at(part_deadline, self._time_out, task, part)
        task.add_done_callback(self._on_done)
        self.running[task] = part

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
        part = _Part(items, perf_counter())
        part.list = ListRun(
            self.gateway, items, ids, total, self.values, headers, self.deadline, self.loop
        )
        tracing = self.gateway.tracing
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
    def _time_out(task: asyncio.Task[Any], part: _Part) -> None:
        part.timed_out = True
        task.cancel()

    def _on_done(self, task: asyncio.Task[Any]) -> None:
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

    def _record_finished(self, part: _Part, task: asyncio.Task[Any]) -> None:
        """Record what a finished part's task means, and how long it took for the start order."""
        outcome = _outcome(part, task)
        if (order := self.gateway.start_order) is not None:
            order.observe(part.source, outcome.duration)
        self._record(part.source, outcome, part)

    def _record(
        self, source: Source | Items, outcome: PartOutcome, part: _Part | None = None
    ) -> None:
        if part is not None and part.trace is not None:
            assert self.gateway.tracing is not None
            self.gateway.tracing.end_part(part.trace, outcome)
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

    def finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)
            if self.changed is not None:
                self.changed.set()

    def stop(self) -> list[_Part]:
        """:meth:`close` of a run with no part running: only stop reacting."""
        self.closed = True
        return []

    async def close(self) -> list[_Part]:
        """Stop reacting, keep what finished meanwhile, cancel and await everything else.

        Returns the parts it cut off.
        """
        self.closed = True
        unfinished: dict[asyncio.Task[Any], _Part] = {}
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
                if (order := self.gateway.start_order) is not None:
                    # Cut off: it takes at least this long (how much longer is unknown).
                    order.observe_at_least(part.source, perf_counter() - part.started)
        self.running.clear()
        if unfinished:
            await cancel_and_wait(unfinished)
        return list(unfinished.values())


def _outcome(part: _Part, task: asyncio.Task[Any]) -> PartOutcome:
    """What a finished part means: exactly one outcome."""
    source = part.source
    reading = part.list
    if reading is not None:
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("list part %s failed unexpectedly", source.name, exc_info=error)
        return reading.outcome(cut_off=task.cancelled())
    assert isinstance(source, Source)
    if task.cancelled():  # by the part's own timer: nothing else cancels a part still wanted
        limit = f"its timeout of {source.timeout * 1000:.0f} ms" if source.timeout else "time"
        return PartOutcome(
            source.name,
            reason="timeout",
            duration=perf_counter() - part.started,
            detail=f"no answer within {limit}",
        )
    error = task.exception()
    return outcome_of(source, part.started, task.result() if error is None else error)
