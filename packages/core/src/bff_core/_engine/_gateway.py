"""The gateway: runs an aggregate's sources as a graph under one deadline.

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
  and a circuit breaker's trial request (owned by the breaker, see ``_upstream``).

Every upstream request goes through :class:`~bff_core._upstream.Upstreams` (breakers,
retries, hedges, the deadline header), directly or through the cache. The run itself is
``_run.py``; a streamed run ``_stream.py``; a list part ``_lists.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from .._cache import Cache, RedisStore, TieredStore
from .._deadline import Deadline
from .._declare import (
    ANONYMOUS,
    DEFAULT_BREAKER,
    DEFAULT_RETRY_BUDGET,
    Aggregate,
    BreakerPolicy,
    Items,
    Mutation,
    Plan,
    RetryBudget,
    breaker_policies,
)
from .._errors import DeclarationError
from .._guards import Idempotency, Identity
from .._outcome import FAILURE_REASONS, AggregateResult
from .._telemetry import Metrics, Tracing
from .._transports import HttpClient, Transport, make_transport
from .._upstream import DEADLINE_HEADER, Upstreams, UpstreamStatus
from ._peers import Peers
from ._run import Part, Run
from ._start_order import StartOrder
from ._stream import AggregateStream
from ._wiring import Wiring
from ._writes import WriteResult, carry_out

if TYPE_CHECKING:
    from .._cache import CacheStore

__all__ = ["Gateway"]

logger = logging.getLogger("bff_core")

_ACCEPT_JSON = {"accept": "application/json"}

#: Seconds a readiness check of the cache store is reused: about one probe period, so a probe
#: sees Redis go down or come back within a second, and a flood of probes costs one PING.
READINESS_CHECK_EVERY_S = 1.0


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
        mutations: the writes it serves (:class:`Mutation`), checked now.
        idempotency: where writes' idempotency keys are recorded (``None``: process memory;
            give it :class:`~bff_core._guards.RedisRecords` for a fleet).
        batch_window: cross-request batching: the single reads of a source that declares a
            :class:`Batch` (a part of its own, not a list's) that runs need at the same moment
            go out as one batch request. Seconds to gather them: 0 (the default) until the
            event loop has run once more, the first read of each turn going at once on its
            own; more: every read waits that long; ``None``: no batching, one request per read.
    """

    def __init__(
        self,
        *,
        services: Mapping[str, str],
        aggregates: Sequence[Aggregate] = (),
        mutations: Sequence[Mutation] = (),
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
        idempotency: Idempotency | None = None,
        batch_window: float | None = 0.0,
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
        #: whether the upstream chains exist yet (an aggregate added later gets its own at once)
        self._chained = False
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
            base_urls=self._services,
            batch_window=batch_window,
        )
        # Each source's chain of layers is assembled now, at start-up, not on its first request.
        for added in self.aggregates.values():
            self._chain(added)
        self._chained = True
        #: the writes' idempotency records (in process memory unless given a shared store)
        self.idempotency = idempotency if idempotency is not None else Idempotency()
        self.mutations: dict[str, Mutation] = {}
        for mutation in mutations:
            self.add_mutation(mutation)
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
        # The cache's last readiness check: (when it ended, its answer); one at a time.
        self._cache_checked: tuple[float, str] | None = None
        self._cache_checking = asyncio.Lock()
        #: the parts that start together, slowest first (``_start_order.py``); else as declared
        self.start_order = StartOrder() if slowest_first else None
        self._wiring = Wiring(
            base_urls=self._services,
            fetch=self.upstreams.fetch,
            batcher=self.upstreams.batcher,
            cache=self.cache,
            tracing=tracing,
            metrics=metrics,
            start_order=self.start_order,
            cached_sources=self._cached_sources,
        )

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
        if self._chained:
            self._chain(aggregate)

    def add_mutation(self, mutation: Mutation) -> None:
        """Serve ``mutation`` too, after checking its service and that the transport writes
        (and serving the aggregate it answers with, if any)."""
        if mutation.name in self.mutations and self.mutations[mutation.name] is not mutation:
            raise DeclarationError(f"two mutations are named {mutation.name!r}")
        self.upstreams.writer(mutation)
        if mutation.then is not None:
            self.add(mutation.then)
        self.mutations[mutation.name] = mutation
        if self.metrics is not None:
            self.metrics.declare_write(mutation.name)

    async def mutate(
        self,
        mutation: Mutation,
        params: Mapping[str, str | None],
        body: bytes | None,
        *,
        identity: Identity | None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        time_limit: float | None = None,
    ) -> WriteResult:
        """Carry out ``mutation`` once for the verified caller ``identity``.

        ``body`` is the client's JSON, validated against ``mutation.body`` before anything is
        sent; ``idempotency_key`` is forwarded upstream (``Idempotency-Key``), and required when
        the mutation says so. Claiming the key (:class:`~bff_core._guards.Idempotency`) is the
        edge's, which keeps the answer it makes. Raises :class:`InvalidParameter`,
        :class:`InvalidBody` (nothing sent) or :class:`WriteFailed` (its ``status`` and
        ``reason``: refused, failed, or the outcome unknown).
        """
        if mutation.name not in self.mutations:
            self.add_mutation(mutation)
        then = mutation.then

        async def read(params: Mapping[str, str]) -> AggregateResult:
            assert then is not None
            return await self.run(then, params, headers=headers, identity=identity)

        return await carry_out(
            mutation,
            base_url=self._services[mutation.service],
            upstreams=self.upstreams,
            params=params,
            body=body,
            identity=identity,
            idempotency_key=idempotency_key,
            headers=headers,
            time_limit=self.timeout if time_limit is None else time_limit,
            invalidate=self.invalidate,
            read=read,
        )

    def _chain(self, aggregate: Aggregate) -> None:
        for source in aggregate.sources:
            if isinstance(source, Items):
                for one in source.sources:
                    self.upstreams.prepare(one)  # a list batches its own items
            else:
                self.upstreams.prepare(source, single=True)

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
        cut_off: list[Part] = []
        if run.running:
            timer = run.loop.call_at(run.deadline.at, run.expire)
            try:
                await run.finished
            finally:
                timer.cancel()
                # Usually every part has ended: nothing to cancel, nothing to wait for.
                cut_off = await run.close() if run.running else run.stop()
        return run.conclude(aggregate, plan, cut_off)

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
        return AggregateStream(aggregate, plan, run)

    def _begin(
        self,
        aggregate: Aggregate,
        params: Mapping[str, str | None],
        fields: str | Iterable[str] | None,
        headers: Mapping[str, str] | None,
        time_limit: float | None,
        identity: Identity | None,
        streamed: bool = False,
    ) -> tuple[Run, Plan]:
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
        deadline = Deadline(loop.time() + (self.timeout if time_limit is None else time_limit))
        run = Run(
            self._wiring,
            plan.dependents,
            values,
            request_headers,
            deadline,
            loop,
            aggregate.name,
            identity,
        )
        if streamed:
            run.changed = asyncio.Event()
        roots = plan.roots if self.start_order is None else self.start_order.of(plan.roots)
        for source in roots:
            run.start(source)
        return run, plan

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
        cache = "ok: disabled" if self.cache is None else await self._check_cache()
        checks = {"configuration": "ok", "cache": cache}
        if self.draining:
            checks["draining"] = "stopping: not taking new work once the drain ends"
        return checks

    async def _check_cache(self) -> str:
        """The cache store's check, asked at most once per :data:`READINESS_CHECK_EVERY_S`.

        Probes from every balancer and kubelet, and anyone who can reach ``/readyz``, must not
        turn into a Redis ``PING`` each: while Redis is down each would wait out its timeout.
        Concurrent probes share one check.
        """
        assert self.cache is not None
        async with self._cache_checking:
            checked = self._cache_checked
            if checked is not None and time.monotonic() - checked[0] < READINESS_CHECK_EVERY_S:
                return checked[1]
            answer = await self.cache.store.check()
            self._cache_checked = (time.monotonic(), answer)
            return answer

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
        await self.idempotency.aclose()
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
