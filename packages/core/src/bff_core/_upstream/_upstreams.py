"""Between the engine and the transport: one upstream request as a chain of layers.

Every upstream request the gateway sends goes through :meth:`Upstreams.fetch`, whether the
engine asks for it directly or the cache does (a miss, a background refresh). The request runs
through its source's chain, assembled once per source (KrakenD lura's ``proxy/`` model: one
layer per concern a source declares; a concern it does not declare costs nothing)::

    Retry (RetryPolicy, within the service's budget)   _retry.py   if the source retries
      Hedge (hedge_after, within the same budget)      _hedge.py   if the source hedges
        BreakerLayer (the service's breaker)           _breaker.py if the service has one
          Send (deadline header, trace context,        _send.py    always
                then the transport)

Every attempt (a retry, a hedge) goes through the breaker, which judges and may refuse each;
only a request's first attempt is counted in the breaker's window (``BreakerLayer``), its
retries and hedges go through an ``AttemptLayer`` (a retry's own chain, built beside the first
attempt's), so a request weighs once however often it was retried.
Retries and hedges are on only when the gateway has a retry budget. One :class:`Deadline`
(``bff_core._deadline``) travels down the chain: the time left is read from it, and a
cancellation knows from it whether the deadline caused it.

Writes (:meth:`Upstreams.write`) have a chain of their own, built per request around the
request's method and body: no hedge, no coalescing, no cache; the breaker as for reads; a
``PUT`` retried as its ``RetryPolicy`` says (it is idempotent), a ``POST`` only when it
certainly did not leave (a refused connection), never once it may have reached the upstream.
A write whose deadline passes after it may have been sent raises :class:`OutcomeUnknown`.

Breaker transitions are logged (a warning when one opens) and can be shared between instances
(``_engine/_peers.py``); retries and hedges are counted per service, logged as a summary at
most every 10 s per service, and shown by :meth:`Upstreams.status` (the ``/readyz`` detail).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from .._aio import cancel_and_wait
from .._deadline import Deadline
from .._declare import Batch, BreakerPolicy, RetryBudget, RetryPolicy
from .._errors import DeclarationError, OutcomeUnknown
from .._transports import Transport, UpstreamResponse, WritingTransport
from ._batch import Batcher, Submit
from ._breaker import AttemptLayer, Breaker, BreakerLayer, BreakerState, TransitionHook
from ._hedge import Hedge
from ._layer import Layer
from ._retry import Retry
from ._send import DEADLINE_HEADER, Send, SendWrite
from ._service import Service

if TYPE_CHECKING:
    from .._declare import Mutation, Source
    from .._telemetry import Metrics, Tracing

__all__ = ["UpstreamStatus", "Upstreams"]

#: A ``POST``'s only retry: once, when its connection was refused (it certainly did not leave).
_REFUSED = RetryPolicy(attempts=2, on=frozenset({"unavailable"}))


class UpstreamStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What ``/readyz`` shows of one upstream service (counts since start-up)."""

    breaker: BreakerState | Literal["none"]
    #: failed requests within the breaker's window (while it is closed)
    failures: int
    #: requests within the breaker's window, and the share of them that failed (0 to 1)
    calls: int = 0
    failure_rate: float = 0.0
    #: what opens it (its policy): at least ``opens_after`` failures and ``min_calls``
    #: requests within ``window`` seconds, ``opens_at_rate`` of them failed; how long it then
    #: stays open
    opens_after: int | None = None
    min_calls: int | None = None
    opens_at_rate: float | None = None
    window: float | None = None
    reset_timeout: float | None = None
    #: seconds until an open breaker lets a trial request through
    opens_for: float | None = None
    requests: int
    retries: int
    hedges: int
    #: hedges whose answer came first
    hedges_won: int
    #: retries and hedges not sent because the budget was spent
    over_budget: int
    #: requests refused at once because the breaker was open
    refused: int
    #: tokens left in the retry budget
    budget: float


class Upstreams:
    """The resilient way to every upstream service of one gateway.

    Args:
        services: the names of the services.
        transport: how requests are sent.
        cancellable: the transport hedged sources use: one whose cancelled request really
            stops (the losing request of a hedge is cancelled). Defaults to ``transport``.
        breakers: the breaker policy of each service (:func:`breaker_policies`); a service
            mapped to ``None`` has no breaker.
        budget: the retry budget of each service; ``None``: no retries and no hedges.
        deadline_header: the request header that carries the milliseconds left, or ``None``.
        metrics: where the counts and breaker states are exported too, if anywhere.
        tracing: puts each attempt's trace context in its headers, when tracing is on.
        base_urls: each service's base URL: needed to batch (a batch request's URL).
        batch_window: seconds a batched source's single reads are gathered before they go out
            as one batch request (0: until the event loop has run once more; see
            ``_batch.py``); ``None``: no batching, one request per read.
    """

    def __init__(
        self,
        services: Iterable[str],
        transport: Transport,
        *,
        cancellable: Transport | None = None,
        breakers: Mapping[str, BreakerPolicy | None],
        budget: RetryBudget | None,
        deadline_header: str | None = DEADLINE_HEADER,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        base_urls: Mapping[str, str] | None = None,
        batch_window: float | None = None,
    ) -> None:
        header = deadline_header.lower() if deadline_header else None
        self._base_urls = base_urls or {}
        self._batch_window = batch_window
        self._metrics = metrics
        self._tracing = tracing
        self._send = Send(transport, header, tracing)
        self._send_cancellable = (
            self._send if cancellable is None else Send(cancellable, header, tracing)
        )
        self._budget = budget
        self._hooks: list[TransitionHook] = []
        self._services: dict[str, Service] = {}
        self._breakers: dict[str, Breaker] = {}
        for name in services:
            service = Service(
                name,
                budget,
                tokens=float(budget.burst) if budget else 0.0,
                meter=None if metrics is None else metrics.upstream(name),
            )
            self._services[name] = service
            policy = breakers.get(name)
            if policy is not None:
                self._breakers[name] = Breaker(service, policy, self._hooks)
        #: each source's chain, by the source's id (sources are not cheap to hash), with the
        #: source itself (an id is only that source's while it lives) and its service, which
        #: each request earns the retry budget for (``None``: a batcher, which earns it itself
        #: per request it really sends)
        self._chains: dict[int, tuple[Source, Service | None, Layer]] = {}
        self._batchers: list[Batcher] = []

    def on_transition(self, hook: TransitionHook) -> None:
        """Call ``hook`` on every breaker transition this instance makes itself."""
        self._hooks.append(hook)

    def prepare(self, source: Source, *, single: bool = False) -> None:
        """Assemble ``source``'s chain now (at start-up) rather than on its first request.

        ``single``: the source is a part of its own (not a list's item source): with a batch
        endpoint, and batching on, its reads are gathered across runs (``_batch.py``).
        """
        if single and source.batch is not None and self._batch_window is not None:
            self._link(source, self._batcher(source, source.batch, self._batch_window))
        else:
            self._link(source)

    def _batcher(self, source: Source, batch: Batch, window: float) -> Batcher:
        service = self._services[source.service]
        breaker = self._breakers.get(source.service)
        batcher = Batcher(
            source,
            batch,
            base_url=self._base_urls[source.service],
            service=service,
            chain=self.chain(source),
            batch_chain=self.chain(source, judges_statuses=False),
            breaker=breaker,
            again=self._send if breaker is None else AttemptLayer(breaker, self._send),
            window=window,
            tracing=self._tracing,
            observe=None if self._metrics is None else self._metrics.batch_observer(service.name),
        )
        self._batchers.append(batcher)
        return batcher

    def fetch(
        self, source: Source, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> Coroutine[Any, Any, UpstreamResponse]:
        """``GET url`` for ``source``, by ``deadline``, with its declared resilience.

        The request's coroutine, to await (no coroutine of its own: the chain's first layer
        is the one awaited). Raises :class:`CircuitOpen`, :class:`TimeoutError` or what the
        transport raises; an answer with an error status is returned, after any retries.
        """
        link = self._chains.get(id(source))
        if link is None or link[0] is not source:
            link = self._link(source)
        if link[1] is not None:
            link[1].earn()
        return link[2](url, headers, deadline)

    def batcher(self, source: Source) -> Submit | None:
        """How a read of ``source`` is batched across runs (``_batch.py``): the future of its
        answer, which the caller watches itself (a task only when the read leads its turn of
        the loop and goes at once); ``None`` when ``source``'s reads are not batched (then
        :meth:`fetch` them)."""
        link = self._chains.get(id(source))
        if link is None or link[0] is not source or not isinstance(link[2], Batcher):
            return None
        return link[2].submit

    def writer(self, mutation: Mutation) -> WritingTransport:
        """The transport ``mutation``'s requests go through; checked at start-up."""
        transport = self._send.transport
        if not isinstance(transport, WritingTransport):
            raise DeclarationError(
                f"mutation {mutation.name!r}: the gateway's transport "
                f"{type(transport).__name__} cannot send writes (it has no send method)"
            )
        if mutation.service not in self._services:
            raise DeclarationError(
                f"mutation {mutation.name!r} calls service {mutation.service!r}, which has no "
                "base URL"
            )
        return transport

    async def write(
        self,
        mutation: Mutation,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        deadline: Deadline,
    ) -> UpstreamResponse:
        """``mutation.method url`` with ``body``, by ``deadline``, with a write's resilience.

        Returns the upstream's answer, an error status included. Raises
        :class:`OutcomeUnknown` when the request may have reached the upstream and no answer
        came (connection lost, or the deadline passed: ``timed_out``), :class:`TimeoutError`
        when the deadline passed before anything left, :class:`CircuitOpen`, or what the
        transport raises for a request that did not leave.
        """
        service = self._services[mutation.service]
        service.earn()
        send = SendWrite(self._send, self.writer(mutation), mutation.method, body)
        breaker = self._breakers.get(mutation.service)
        layer: Layer = send if breaker is None else BreakerLayer(breaker, send)
        if self._budget is not None:
            again: Layer = send if breaker is None else AttemptLayer(breaker, send)
            if mutation.method == "PUT" and mutation.retry is not None:
                layer = Retry(mutation.name, mutation.retry, service, breaker, layer, again)
            elif mutation.method == "POST":
                # A refused connection never reached the upstream: safe to try once more.
                layer = Retry(
                    mutation.name, _REFUSED, service, breaker, layer, again, resend_sent=False
                )
        try:
            async with deadline.limit():
                return await layer(url, headers, deadline)
        except TimeoutError as exc:
            if send.maybe_sent:
                raise OutcomeUnknown(
                    f"{mutation.method} {url}: no answer by the deadline after the request "
                    "was sent; whether it took effect is unknown",
                    timed_out=True,
                ) from exc
            raise

    def _link(
        self, source: Source, batcher: Batcher | None = None
    ) -> tuple[Source, Service | None, Layer]:
        link: tuple[Source, Service | None, Layer] = (
            (source, self._services[source.service], self.chain(source))
            if batcher is None
            else (source, None, batcher)
        )
        self._chains[id(source)] = link
        return link

    def chain(self, source: Source, *, judges_statuses: bool = True) -> Layer:
        """The layers ``source``'s requests go through: only those it (and its service)
        declares. ``judges_statuses=False``: its breaker leaves an error status uncounted,
        for the caller to judge (a batch request's, see :class:`BreakerLayer`)."""
        service = self._services[source.service]
        breaker = self._breakers.get(source.service)
        send: Layer = self._send
        # A request's first attempt is counted by the breaker; its retries and hedges are
        # judged by it (refused while open) but not counted again.
        first: Layer = (
            send
            if breaker is None
            else BreakerLayer(breaker, send, judges_statuses=judges_statuses)
        )
        if self._budget is None:
            return first  # no budget: retry and hedge declarations are not acted upon
        again: Layer = send if breaker is None else AttemptLayer(breaker, send)
        if source.hedge_after is not None:
            second: Layer = self._send_cancellable
            if breaker is not None:
                second = AttemptLayer(breaker, second)
            first = Hedge(source.hedge_after, service, breaker, first, second)
            if source.retry is not None:
                again = Hedge(source.hedge_after, service, breaker, again, second)
        if source.retry is not None:
            return Retry(source.name, source.retry, service, breaker, first, again)
        return first

    def status(self) -> dict[str, UpstreamStatus]:
        """Every service's breaker state and counters, for ``/readyz``."""
        statuses = {}
        for name, service in self._services.items():
            breaker = self._breakers.get(name)
            state: BreakerState | Literal["none"] = "none"
            opens_for = None
            calls = failures = 0
            policy = None
            if breaker is not None:
                state = breaker.state()
                policy = breaker.policy
                calls, failures = breaker.window.totals()
                if state == "open" and breaker.storage.opened_at is not None:
                    opens_for = round(max(breaker.open_for(), 0.0), 3)
            statuses[name] = UpstreamStatus(
                breaker=state,
                failures=failures,
                calls=calls,
                failure_rate=round(failures / calls, 3) if calls else 0.0,
                opens_after=None if policy is None else policy.failures,
                min_calls=None if policy is None else policy.min_calls,
                opens_at_rate=None if policy is None else policy.failure_rate,
                window=None if policy is None else policy.window,
                reset_timeout=None if breaker is None else breaker.circuit.reset_timeout,
                opens_for=opens_for,
                requests=service.requests,
                retries=service.retries,
                hedges=service.hedges,
                hedges_won=service.hedges_won,
                over_budget=service.over_budget,
                refused=service.refused,
                budget=round(service.tokens, 2),
            )
        return statuses

    def apply_peer_transition(
        self, service: str, state: BreakerState, opened_at: float | None
    ) -> bool:
        """Apply a transition another instance made; return whether anything changed here.

        An ``open`` sets this instance's breaker open since ``opened_at`` (wall clock), so it
        lets its own trial through when the peer's reset timeout ends; ``closed`` closes it.
        """
        breaker = self._breakers.get(service)
        return breaker is not None and breaker.apply_peer(state, opened_at)

    async def aclose(self) -> None:
        """Cancel trial requests and batch requests still running."""
        running: list[asyncio.Task[Any]] = [
            b.trial for b in self._breakers.values() if b.trial is not None
        ]
        for batcher in self._batchers:
            running.extend(batcher.tasks)
        if running:
            await cancel_and_wait(running)
