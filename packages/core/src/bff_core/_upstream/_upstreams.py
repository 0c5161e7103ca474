"""Between the engine and the transport: circuit breakers, retries, hedges and deadlines.

Every upstream request the gateway sends goes through :meth:`Upstreams.fetch`, whether the
engine asks for it directly or the cache does (a miss, a background refresh). Per request:

- the time left until the request's deadline travels to the upstream in a header
  (``x-request-timeout-ms`` by default), so it can give up when nobody waits any more;
- a request cancelled at its deadline (by the engine's timer, or the cache's) ends inside the
  breaker as :class:`TimeoutError`, so the breaker counts it; one cancelled before its
  deadline, from outside, is no verdict on the upstream and counts neither way;
- each upstream *service* has a circuit breaker (pybreaker's, driven with ``calling()`` around
  the await). After ``failures`` consecutive failures of the declared kinds it opens: requests
  fail at once with :class:`CircuitOpen` and nothing is sent. After ``reset_timeout`` one trial
  request is let through, alone, and decides: success closes the breaker, failure opens it for
  another ``reset_timeout``. The trial belongs to the breaker, not to the request that started
  it, so a request that ends early (its aggregate failed, its client left) does not cancel the
  trial; a request cancelled for such reasons counts neither as failure nor as success;
- a source that declares a :class:`RetryPolicy` is retried on the declared failures, after a
  jittered exponential backoff, never past its deadline and only while the service's retry
  budget allows (:class:`RetryBudget`: about 10 % extra requests at most);
- a source that declares ``hedge_after`` gets a second request when the first has not answered
  by then (from the same budget); the first good answer wins and the other is cancelled. The
  first request goes through the gateway's transport, the hedge through its *cancellable*
  one (aiohttp, beside the default pyreqwest): a losing hedge's connection is closed at once.
  A losing first request is closed at once too with ``BFF_HTTP_CLIENT=aiohttp``; pyreqwest
  cannot abort it, so it is abandoned and ends in Rust at its deadline (decision 0002), which
  the deadline header also tells the upstream. Sending the first request through aiohttp
  instead would cost every hedged part aiohttp's higher CPU per request, hedge or not.

Breaker transitions are logged (a warning when one opens) and can be shared between instances
(``_peers``); retries and hedges are counted per service, logged as a summary at most
every 10 s per service, and shown by :meth:`Upstreams.status` (the ``/readyz`` detail).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec
import pybreaker

from .._aio import cancel_and_wait
from .._declare import BreakerPolicy, RetryBudget
from .._errors import CircuitOpen, UpstreamUnavailable
from .._transports import Transport, UpstreamResponse

if TYPE_CHECKING:
    from .._declare import Source
    from .._telemetry import Metrics, Tracing, UpstreamMeter

__all__ = [
    "DEADLINE_HEADER",
    "BreakerState",
    "TransitionHook",
    "UpstreamStatus",
    "Upstreams",
]

logger = logging.getLogger("bff_core.resilience")

BreakerState: TypeAlias = Literal["closed", "open", "half-open"]

#: The default name of the header that carries the time left to an upstream.
DEADLINE_HEADER = "x-request-timeout-ms"

#: A cancellation this close to a request's deadline is the deadline's (uvloop's clock ticks in
#: milliseconds): a timeout, which the breaker counts.
_EARLY = 0.001
#: A retry or hedge is not sent with less time left than this: it could not answer anyway.
_MIN_ATTEMPT = 0.005
#: The shortest interval between two summary log lines for one service.
_SUMMARY_EVERY = 10.0


class UpstreamStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What ``/readyz`` shows of one upstream service (counts since start-up)."""

    breaker: BreakerState | Literal["none"]
    #: consecutive failures counted by the breaker so far
    failures: int
    #: the consecutive failures that open it (its policy), and how long it then stays open
    opens_after: int | None = None
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


class _Storage(pybreaker.CircuitMemoryStorage):
    """pybreaker's in-memory state, which can skip one reset of the failure count."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        #: set just before pybreaker records a cancelled request as a success
        self.keep_count_once = False

    def reset_counter(self) -> None:
        if self.keep_count_once:
            self.keep_count_once = False
            return
        super().reset_counter()


@dataclass(slots=True, eq=False)
class _Upstream:
    """One service's breaker, budget and counters."""

    name: str
    breaker: pybreaker.CircuitBreaker | None
    storage: _Storage | None
    budget: RetryBudget | None
    tokens: float = 0.0
    trial: asyncio.Task[UpstreamResponse] | None = None
    #: set while a transition received from a peer instance is applied (not published again)
    applying_peer: bool = False
    requests: int = 0
    retries: int = 0
    hedges: int = 0
    hedges_won: int = 0
    over_budget: int = 0
    refused: int = 0
    logged: dict[str, int] = field(default_factory=dict)
    logged_at: float = 0.0
    #: the same counts as Prometheus metrics, when the gateway has them
    meter: UpstreamMeter | None = None

    def earn(self) -> None:
        self.requests += 1
        if self.meter is not None:
            self.meter.requests.inc()
        budget = self.budget
        if budget is not None and self.tokens < budget.burst:
            self.tokens = min(self.tokens + budget.ratio, budget.burst)

    def spend(self) -> bool:
        if self.budget is None:
            return False  # retries and hedges are off: not a budget running out
        # A hair under 1: ten earnings of 0.1 add up to 0.9999999999999999.
        if self.tokens < 1.0 - 1e-9:
            self.over_budget += 1
            if self.meter is not None:
                self.meter.over_budget.inc()
            return False
        self.tokens -= 1.0
        return True

    def clean(self) -> bool:
        """No failure counted since the last success: a success changes nothing (see
        :meth:`Upstreams._call_clean`). Asked only while the breaker is closed."""
        assert self.storage is not None
        return self.storage.counter == 0

    def is_open(self) -> bool:
        return self.breaker is not None and self.breaker.current_state != pybreaker.STATE_CLOSED

    def open_for(self) -> float:
        """Seconds until an open breaker's reset timeout ends (0 or less: it has ended)."""
        assert self.breaker is not None and self.storage is not None
        opened_at = self.storage.opened_at
        if opened_at is None:
            return 0.0
        return opened_at.timestamp() + self.breaker.reset_timeout - time.time()

    def cooling(self) -> bool:
        """Open, and its reset timeout has not elapsed: refuse without trying."""
        return self.open_for() > 0

    def counters(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "hedges": self.hedges,
            "hedges won": self.hedges_won,
            "over budget": self.over_budget,
            "refused (breaker open)": self.refused,
        }

    def maybe_log_summary(self) -> None:
        """Log what changed since the last summary, at most every 10 s."""
        now = time.monotonic()
        if now - self.logged_at < _SUMMARY_EVERY:
            return
        counters = self.counters()
        changes = [
            f"{name} +{value - self.logged.get(name, 0)}"
            for name, value in counters.items()
            if value != self.logged.get(name, 0)
        ]
        if changes:
            since = "start-up" if not self.logged_at else f"{now - self.logged_at:.0f} s ago"
            logger.info("upstream %s since %s: %s", self.name, since, ", ".join(changes))
        self.logged = counters
        self.logged_at = now


class _Counted(Exception):
    """An answer the breaker must count as a failure (a 5xx, a 429): raised inside
    ``calling()`` so pybreaker sees it, and turned back into the answer outside."""

    def __init__(self, response: UpstreamResponse) -> None:
        super().__init__(f"upstream answered {response.status}")
        self.response = response


class _Hedge:
    """The second request of a hedged part: sent by a timer, and what it won."""

    __slots__ = (
        "awaiting_first",
        "deadline",
        "headers",
        "owner",
        "task",
        "upstream",
        "upstreams",
        "url",
        "won",
    )

    def __init__(
        self,
        upstreams: Upstreams,
        upstream: _Upstream,
        url: str,
        headers: Mapping[str, str],
        deadline: float,
        owner: asyncio.Task[Any],
    ) -> None:
        self.upstreams = upstreams
        self.upstream = upstream
        self.url = url
        self.headers = headers
        self.deadline = deadline
        #: the task waiting for the first request
        self.owner = owner
        self.awaiting_first = False
        self.task: asyncio.Task[UpstreamResponse] | None = None
        self.won: UpstreamResponse | None = None

    def send(self) -> None:
        """The first request is late: send the hedge, if the budget and the clock allow."""
        upstream = self.upstream
        loop = asyncio.get_running_loop()
        if not self.awaiting_first:
            return
        if (
            loop.time() + _MIN_ATTEMPT >= self.deadline
            or upstream.is_open()  # the breaker would refuse the hedge
            or not upstream.spend()
        ):
            upstream.maybe_log_summary()
            return
        upstream.hedges += 1
        if upstream.meter is not None:
            upstream.meter.hedges.inc()
        logger.debug("%s: no answer yet, hedging", upstream.name)
        upstreams = self.upstreams
        self.task = loop.create_task(
            upstreams._attempt(
                upstream, upstreams._cancellable, self.url, self.headers, self.deadline
            ),
            name=f"bff-hedge:{upstream.name}",
        )
        self.task.add_done_callback(self._answered)

    async def outcome(self) -> UpstreamResponse:
        """The hedge's answer, once the first request failed."""
        assert self.task is not None
        response = await self.task
        if response.status < 500:
            self.upstream.hedges_won += 1
            if self.upstream.meter is not None:
                self.upstream.meter.hedges_won.inc()
        return response

    def _answered(self, task: asyncio.Task[UpstreamResponse]) -> None:
        if task.cancelled():
            return
        if task.exception() is not None or task.result().status >= 500:
            return  # a failed hedge: the first request may still answer
        if self.awaiting_first:
            # The hedge answered first: it wins, and the first request is cancelled.
            self.won = task.result()
            self.upstream.hedges_won += 1
            if self.upstream.meter is not None:
                self.upstream.meter.hedges_won.inc()
            self.upstream.maybe_log_summary()
            self.owner.cancel()


def _left(deadline: float) -> float:
    return deadline - asyncio.get_running_loop().time()


#: Called with (service, new state, when it opened (wall clock) or None) on local transitions.
TransitionHook: TypeAlias = Callable[[str, BreakerState, "float | None"], None]


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
    ) -> None:
        self._transport = transport
        self._tracing = tracing
        self._cancellable = cancellable if cancellable is not None else transport
        self._deadline_header = deadline_header.lower() if deadline_header else None
        self._hooks: list[TransitionHook] = []
        self._upstreams: dict[str, _Upstream] = {}
        for name in services:
            policy = breakers.get(name)
            breaker = storage = None
            if policy is not None:
                storage = _Storage(pybreaker.STATE_CLOSED)
                counts = policy.counts
                breaker = pybreaker.CircuitBreaker(
                    fail_max=policy.failures,
                    reset_timeout=policy.reset_timeout,
                    # Only what the policy declares counts; pybreaker treats every other
                    # exception as a success (a cancellation is neither: see _call).
                    exclude=[lambda exc, counts=counts: not _counts(exc, counts)],
                    state_storage=storage,
                    name=name,
                    # Keep our own exception when it trips: the caller reports the real failure.
                    throw_new_error_on_trip=False,
                )
            upstream = _Upstream(
                name,
                breaker,
                storage,
                budget,
                tokens=float(budget.burst) if budget else 0.0,
                meter=None if metrics is None else metrics.upstream(name),
            )
            if upstream.meter is not None and breaker is not None:
                upstream.meter.breaker("closed")
            if breaker is not None:
                breaker.add_listener(_Transitions(self, upstream))
            self._upstreams[name] = upstream

    def on_transition(self, hook: TransitionHook) -> None:
        """Call ``hook`` on every breaker transition this instance makes itself."""
        self._hooks.append(hook)

    async def fetch(
        self, source: Source, url: str, headers: Mapping[str, str], time_left: float
    ) -> UpstreamResponse:
        """``GET url`` for ``source``, within ``time_left`` seconds, with its declared
        resilience. Raises :class:`CircuitOpen`, :class:`TimeoutError` or what the transport
        raises; an answer with an error status is returned, after any retries."""
        upstream = self._upstreams[source.service]
        upstream.earn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_left
        retry = source.retry
        if (retry is None and source.hedge_after is None) or upstream.budget is None:
            # The hot path: one request, through the breaker when it is closed.
            breaker = upstream.breaker
            if breaker is None:
                return await self._transport.get(
                    url, headers=self._telling(headers, time_left), time_left=time_left
                )
            if breaker.current_state == pybreaker.STATE_CLOSED:
                call = self._call_clean if upstream.clean() else self._call
                return await call(upstream, breaker, self._transport, url, headers, deadline)
            return await self._attempt(upstream, self._transport, url, headers, deadline)
        attempt = 1
        while True:
            failure: UpstreamResponse | UpstreamUnavailable
            started = loop.time()
            try:
                if source.hedge_after is None:
                    response = await self._attempt(
                        upstream, self._transport, url, headers, deadline
                    )
                else:
                    response = await self._hedged(
                        upstream, source.hedge_after, url, headers, deadline
                    )
            except UpstreamUnavailable as exc:
                if retry is None or "unavailable" not in retry.on:
                    raise
                failure = exc
            else:
                if retry is None or not _retried_status(response.status, retry.on):
                    return response
                failure = response
            if attempt >= retry.attempts or upstream.is_open():
                # An open breaker (this failure may have opened it) would refuse the retry.
                return _give_up(failure)
            delay = retry.delay(attempt)
            now = loop.time()
            # A retry must have the time the failed attempt took (at least 5 ms): one sent
            # into the last milliseconds would only turn a telling 503 into a timeout.
            if now + delay + max(now - started, _MIN_ATTEMPT) >= deadline:
                logger.debug("%s: no retry, the deadline is too close", source.name)
                return _give_up(failure)
            if not upstream.spend():
                upstream.maybe_log_summary()
                return _give_up(failure)
            upstream.retries += 1
            if upstream.meter is not None:
                upstream.meter.retries.inc()
            logger.debug(
                "%s: retry %d in %.0f ms after %s",
                source.name,
                attempt,
                delay * 1000,
                _describe(failure),
            )
            upstream.maybe_log_summary()
            await asyncio.sleep(delay)
            attempt += 1

    async def _hedged(
        self,
        upstream: _Upstream,
        hedge_after: float,
        url: str,
        headers: Mapping[str, str],
        deadline: float,
    ) -> UpstreamResponse:
        """The request, and a second one if the first has not answered after ``hedge_after``.

        The first request runs in the caller's task on the fast transport, with one timer
        beside it: an answer in time costs nothing more. The hedge runs in a task of its own on
        the cancellable transport. The first good answer wins and the other request is
        cancelled (see the module documentation for what that means with pyreqwest).
        """
        task = asyncio.current_task()
        assert task is not None
        hedge = _Hedge(self, upstream, url, headers, deadline, task)
        timer = asyncio.get_running_loop().call_later(hedge_after, hedge.send)
        hedge.awaiting_first = True
        try:
            try:
                response = await self._attempt(upstream, self._transport, url, headers, deadline)
            finally:
                hedge.awaiting_first = False  # from now on, a hedge's answer is awaited here
        except asyncio.CancelledError:
            if hedge.won is not None and task.uncancel() == 0:
                return hedge.won  # the hedge answered first and cancelled the first request
            raise
        except (TimeoutError, UpstreamUnavailable, CircuitOpen):
            if hedge.task is None:
                raise
            return await hedge.outcome()  # the first failed: the hedge may still answer
        else:
            if response.status >= 500 and hedge.task is not None and not hedge.task.done():
                return await hedge.outcome()
            return response
        finally:
            timer.cancel()
            if hedge.task is not None and not hedge.task.done():
                await cancel_and_wait([hedge.task])

    async def _attempt(
        self,
        upstream: _Upstream,
        transport: Transport,
        url: str,
        headers: Mapping[str, str],
        deadline: float,
    ) -> UpstreamResponse:
        """One request, through the service's breaker."""
        breaker = upstream.breaker
        if breaker is None:
            return await transport.get(
                url, headers=self._telling(headers, left := _left(deadline)), time_left=left
            )
        if breaker.current_state != pybreaker.STATE_CLOSED:
            if upstream.trial is not None or upstream.cooling():
                upstream.refused += 1
                if upstream.meter is not None:
                    upstream.meter.refused.inc()
                upstream.maybe_log_summary()
                raise CircuitOpen(upstream.name)
            # Time for the one trial request. It is the breaker's, not this caller's: a
            # caller that stops waiting (its run failed, its client left) must not cancel it.
            trial = asyncio.get_running_loop().create_task(
                self._trial(upstream, transport, url, headers, deadline),
                name=f"bff-breaker-trial:{upstream.name}",
            )
            upstream.trial = trial
            trial.add_done_callback(lambda done: _trial_done(upstream, done))
            return await asyncio.shield(trial)
        call = self._call_clean if upstream.clean() else self._call
        return await call(upstream, breaker, transport, url, headers, deadline)

    async def _trial(
        self,
        upstream: _Upstream,
        transport: Transport,
        url: str,
        headers: Mapping[str, str],
        deadline: float,
    ) -> UpstreamResponse:
        assert upstream.breaker is not None
        # Nobody else bounds this task: its own deadline does (a timeout, counted).
        async with asyncio.timeout_at(deadline):
            return await self._call(upstream, upstream.breaker, transport, url, headers, deadline)

    async def _call(
        self,
        upstream: _Upstream,
        breaker: pybreaker.CircuitBreaker,
        transport: Transport,
        url: str,
        headers: Mapping[str, str],
        deadline: float,
    ) -> UpstreamResponse:
        try:
            # pybreaker is synchronous: its calling() context manager around the await, never
            # its Tornado call_async. Failures are what escapes the block; an answer that must
            # count (5xx, 429) is raised as _Counted inside and returned outside.
            with breaker.calling():
                try:
                    left = _left(deadline)
                    response = await transport.get(
                        url, headers=self._telling(headers, left), time_left=left
                    )
                except asyncio.CancelledError:
                    if asyncio.get_running_loop().time() >= deadline - _EARLY:
                        # Cancelled at the deadline (the engine's timer, the cache's): the
                        # upstream did not answer in time. A timeout, for the breaker too.
                        raise TimeoutError("no answer by the deadline") from None
                    # Cancelled before it, from outside (the aggregate failed, the client
                    # left, a hedge won): no verdict on the upstream. pybreaker knows only
                    # failure and success, and would reset the failure count: keep it.
                    assert upstream.storage is not None
                    upstream.storage.keep_count_once = True
                    raise
                status = response.status
                if status >= 500 or status == 429:
                    raise _Counted(response)
        except _Counted as counted:
            return counted.response
        except pybreaker.CircuitBreakerError:
            upstream.refused += 1
            if upstream.meter is not None:
                upstream.meter.refused.inc()
            raise CircuitOpen(upstream.name) from None
        return response

    async def _call_clean(
        self,
        upstream: _Upstream,
        breaker: pybreaker.CircuitBreaker,
        transport: Transport,
        url: str,
        headers: Mapping[str, str],
        deadline: float,
    ) -> UpstreamResponse:
        """:meth:`_call` for a closed breaker that has counted no failure (the common case;
        a half-open breaker's trial always goes through :meth:`_call`: its success closes).

        A success then changes nothing in the breaker (pybreaker would reset a count that is
        already 0), so only a failure is told to it, after the fact, the same way
        :meth:`_call` tells it: this saves pybreaker's lock, context manager and generator
        on every healthy request (about 3 µs each).
        """
        try:
            left = _left(deadline)
            response = await transport.get(
                url, headers=self._telling(headers, left), time_left=left
            )
        except asyncio.CancelledError:
            if asyncio.get_running_loop().time() >= deadline - _EARLY:
                timeout = TimeoutError("no answer by the deadline")
                self._count(upstream, breaker, timeout)
                raise timeout from None
            raise  # cancelled from outside, before the deadline: no verdict
        except Exception as exc:
            self._count(upstream, breaker, exc)
            raise
        status = response.status
        if status >= 500 or status == 429:
            self._count(upstream, breaker, _Counted(response))
        return response

    def _count(
        self, upstream: _Upstream, breaker: pybreaker.CircuitBreaker, failure: Exception
    ) -> None:
        """Tell the breaker how a request it did not watch ended (see :meth:`_call_clean`)."""
        if breaker.current_state != pybreaker.STATE_CLOSED:
            return  # opened meanwhile by other requests: nothing more to count
        try:
            with breaker.calling():
                raise failure
        except Exception as told:
            if told is not failure:  # pragma: no cover - pybreaker raises its own only if open
                raise

    def _telling(self, headers: Mapping[str, str], time_left: float) -> Mapping[str, str]:
        """``headers``, the milliseconds left in the deadline header, and the trace context."""
        if self._tracing is not None:
            headers = self._tracing.outgoing(headers)
        if self._deadline_header is None:
            return headers
        left = int(time_left * 1000)
        return {**headers, self._deadline_header: str(left if left > 0 else 0)}

    def status(self) -> dict[str, UpstreamStatus]:
        """Every service's breaker state and counters, for ``/readyz``."""
        statuses = {}
        for name, upstream in self._upstreams.items():
            breaker, storage = upstream.breaker, upstream.storage
            state: BreakerState | Literal["none"] = "none"
            opens_for = None
            failures = 0
            if breaker is not None and storage is not None:
                state = _state(breaker.current_state)
                failures = storage.counter
                if state == "open" and storage.opened_at is not None:
                    opens_for = round(max(upstream.open_for(), 0.0), 3)
            statuses[name] = UpstreamStatus(
                breaker=state,
                failures=failures,
                opens_after=None if breaker is None else breaker.fail_max,
                reset_timeout=None if breaker is None else breaker.reset_timeout,
                opens_for=opens_for,
                requests=upstream.requests,
                retries=upstream.retries,
                hedges=upstream.hedges,
                hedges_won=upstream.hedges_won,
                over_budget=upstream.over_budget,
                refused=upstream.refused,
                budget=round(upstream.tokens, 2),
            )
        return statuses

    def apply_peer_transition(
        self, service: str, state: BreakerState, opened_at: float | None
    ) -> bool:
        """Apply a transition another instance made; return whether anything changed here.

        An ``open`` sets this instance's breaker open since ``opened_at`` (wall clock), so it
        lets its own trial through when the peer's reset timeout ends; ``closed`` closes it.
        """
        upstream = self._upstreams.get(service)
        if upstream is None or upstream.breaker is None or upstream.storage is None:
            return False
        breaker, storage = upstream.breaker, upstream.storage
        current = breaker.current_state
        upstream.applying_peer = True
        try:
            if state == "open" and opened_at is not None:
                if opened_at + breaker.reset_timeout <= time.time():
                    return False  # that opening is over: trial requests decide now
                when = datetime.fromtimestamp(opened_at, UTC)
                if current == pybreaker.STATE_OPEN and (
                    storage.opened_at is not None and storage.opened_at >= when
                ):
                    return False
                if current != pybreaker.STATE_OPEN:
                    breaker.open()
                storage.opened_at = when
                return True
            if state == "closed" and current != pybreaker.STATE_CLOSED:
                breaker.close()
                return True
            return False
        finally:
            upstream.applying_peer = False

    def _transition(self, upstream: _Upstream, old: str | None, new: str) -> None:
        if old == new:
            # A request sent before the breaker opened failed after it did: pybreaker opens it
            # again (from now). Not news: neither logged nor published again.
            return
        state = _state(new)
        if upstream.meter is not None:
            upstream.meter.breaker(state)
        storage = upstream.storage
        opened_at = None
        if state == "open" and storage is not None and storage.opened_at is not None:
            opened_at = storage.opened_at.timestamp()
        origin = " (as a peer instance said)" if upstream.applying_peer else ""
        if state == "open":
            assert upstream.breaker is not None
            logger.warning(
                "circuit breaker of upstream %s opened%s: requests to it fail at once for %g s",
                upstream.name,
                origin,
                upstream.breaker.reset_timeout,
                extra={
                    "event": "breaker_opened",
                    "service": upstream.name,
                    "from_peer": upstream.applying_peer,
                    "reset_timeout_s": upstream.breaker.reset_timeout,
                },
            )
        elif state == "half-open":
            logger.info(
                "circuit breaker of upstream %s half-open: one trial request",
                upstream.name,
                extra={"event": "breaker_half_open", "service": upstream.name},
            )
        else:
            logger.info(
                "circuit breaker of upstream %s closed%s",
                upstream.name,
                origin,
                extra={
                    "event": "breaker_closed",
                    "service": upstream.name,
                    "from_peer": upstream.applying_peer,
                },
            )
        if upstream.applying_peer:
            return
        for hook in self._hooks:
            try:
                hook(upstream.name, state, opened_at)
            except Exception:
                logger.exception("breaker transition hook failed")

    async def aclose(self) -> None:
        """Cancel trial requests still running."""
        trials = [u.trial for u in self._upstreams.values() if u.trial is not None]
        if trials:
            await cancel_and_wait(trials)


class _Transitions(pybreaker.CircuitBreakerListener):
    def __init__(self, upstreams: Upstreams, upstream: _Upstream) -> None:
        self._upstreams = upstreams
        self._upstream = upstream

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._upstreams._transition(
            self._upstream, None if old_state is None else old_state.name, new_state.name
        )


def _trial_done(upstream: _Upstream, task: asyncio.Task[UpstreamResponse]) -> None:
    upstream.trial = None
    if not task.cancelled():
        task.exception()  # retrieved: the caller may have stopped waiting for it


def _counts(exc: BaseException, counts: AbstractSet[str]) -> bool:
    """Whether the breaker counts ``exc`` (escaping a request) as a failure."""
    if isinstance(exc, _Counted):
        status = exc.response.status
        return ("5xx" in counts and status >= 500) or ("429" in counts and status == 429)
    if isinstance(exc, TimeoutError):
        return "timeout" in counts
    if isinstance(exc, UpstreamUnavailable):
        return "unavailable" in counts
    return False


def _retried_status(status: int, on: AbstractSet[str]) -> bool:
    return (status >= 500 and "5xx" in on) or (status == 429 and "429" in on)


def _give_up(failure: UpstreamResponse | UpstreamUnavailable) -> UpstreamResponse:
    if isinstance(failure, UpstreamResponse):
        return failure
    raise failure


def _describe(failure: UpstreamResponse | UpstreamUnavailable) -> str:
    if isinstance(failure, UpstreamResponse):
        return f"status {failure.status}"
    return str(failure)


def _state(name: str) -> BreakerState:
    if name == pybreaker.STATE_OPEN:
        return "open"
    if name == pybreaker.STATE_HALF_OPEN:
        return "half-open"
    return "closed"
