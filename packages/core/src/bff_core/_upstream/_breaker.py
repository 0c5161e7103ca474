"""A circuit breaker per upstream service, and the layers that send a source's requests
through it.

Each service's :class:`Breaker` opens on a failure *rate* (decision record 0015): over a
rolling window (:class:`_Window`, a ring of ten buckets), at least ``min_calls`` requests were
sent, at least ``failure_rate`` of them failed (and at least ``failures``). Then requests fail
at once with :class:`CircuitOpen` and nothing is sent. After ``reset_timeout`` one trial
request is let through, alone, and decides: success closes the breaker (with an empty window),
failure opens it for another ``reset_timeout``. The trial belongs to the breaker, not to the
request that started it, so a request that ends early (its aggregate failed, its client left)
does not cancel the trial.

Each request counts once: its first attempt goes through :class:`BreakerLayer`, which counts
it; its retries and hedges through :class:`AttemptLayer`, which the breaker judges (refused
while open, possibly the trial) but does not count again. A poison id retried would otherwise
weigh twice. A batch request (``_batch.py``) counts once too, but an error status it gets is
judged only once halving has shown whose failure it was (``judges_statuses=False``): the
batcher then records it, or, when the service answered the batch's other ids, an answer.

pybreaker's :class:`~pybreaker.CircuitBreaker` holds the state (closed, open, half-open, when
it opened) and notifies the transitions (logs, metrics, peers); what moves it is decided here.

A request cancelled at its deadline (``deadline.expired``: the engine's timer, the cache's
bound) ends inside the breaker as :class:`TimeoutError`, so the breaker counts it; one cancelled
before it, from outside, is no verdict on the upstream and counts neither way. Nor does a
request that could not be sent at all (:class:`RequestNotSent`: a header value the client
supplied that no HTTP client accepts): it says nothing of the upstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Literal, TypeAlias

import pybreaker

from .._deadline import Deadline
from .._declare import BreakerPolicy
from .._errors import RequestNotSent, UpstreamUnavailable
from .._transports import UpstreamResponse
from ._layer import Layer
from ._service import Service

__all__ = ["AttemptLayer", "Breaker", "BreakerLayer", "BreakerState", "TransitionHook"]

logger = logging.getLogger("bff_core.resilience")

BreakerState: TypeAlias = Literal["closed", "open", "half-open"]

#: Called with (service, new state, when it opened (wall clock) or None) on local transitions.
TransitionHook: TypeAlias = Callable[[str, BreakerState, "float | None"], None]

#: The buckets of a window: it moves on a tenth of its length at a time.
_BUCKETS = 10
_now = time.monotonic
#: float slack in ``failed >= rate * calls`` (0.3 * 10 is 3.0000000000000004)
_EPSILON = 1e-9


class _Window:
    """The requests of the last ``length`` seconds and how many failed: the current bucket
    (``calls``, ``failed``) and the nine before it in a ring, with their sums kept.

    Recording a request costs a clock read, a comparison and an addition; the ring turns when
    a bucket's time is up, on the first request after it (:meth:`turn`), so an idle service
    costs nothing. The window spans nine to ten buckets' worth of time.
    """

    __slots__ = (
        "calls",
        "edge",
        "failed",
        "past_calls",
        "past_failed",
        "ring_calls",
        "ring_failed",
        "slot",
        "width",
    )

    def __init__(self, length: float) -> None:
        self.width = length / _BUCKETS
        self.ring_calls = [0] * (_BUCKETS - 1)
        self.ring_failed = [0] * (_BUCKETS - 1)
        self.slot = 0
        self.past_calls = 0
        self.past_failed = 0
        self.calls = 0
        self.failed = 0
        #: when the current bucket ends (monotonic clock)
        self.edge = _now() + self.width

    def turn(self, now: float) -> None:
        """Move on to ``now``: the current bucket joins the ring, followed by one empty bucket
        for every bucket's time that passed without a request; the oldest drop out."""
        width = self.width
        ended = int((now - self.edge) / width) + 1
        self.edge += ended * width
        if ended >= _BUCKETS:
            self.clear(keep_edge=True)
            return
        calls, failed = self.calls, self.failed
        ring_calls, ring_failed = self.ring_calls, self.ring_failed
        slot = self.slot
        for _ in range(ended):
            self.past_calls += calls - ring_calls[slot]
            self.past_failed += failed - ring_failed[slot]
            ring_calls[slot] = calls
            ring_failed[slot] = failed
            slot = (slot + 1) % (_BUCKETS - 1)
            calls = failed = 0
        self.slot = slot
        self.calls = self.failed = 0

    def clear(self, *, keep_edge: bool = False) -> None:
        """Forget every request (the breaker closed: it starts judging afresh)."""
        self.ring_calls = [0] * (_BUCKETS - 1)
        self.ring_failed = [0] * (_BUCKETS - 1)
        self.past_calls = self.past_failed = self.calls = self.failed = 0
        if not keep_edge:
            self.edge = _now() + self.width

    def totals(self) -> tuple[int, int]:
        """The window's requests and failures now."""
        now = _now()
        if now >= self.edge:
            self.turn(now)
        return self.calls + self.past_calls, self.failed + self.past_failed


class Breaker:
    """One upstream service's circuit breaker, shared by the chains of all its sources.

    ``hooks`` are called on every transition this instance makes itself (not on those a peer
    instance told it of: :meth:`apply_peer`).
    """

    __slots__ = (
        "applying_peer",
        "circuit",
        "closed",
        "hooks",
        "opened_by",
        "policy",
        "service",
        "storage",
        "trial",
        "window",
    )

    def __init__(
        self, service: Service, policy: BreakerPolicy, hooks: list[TransitionHook]
    ) -> None:
        self.service = service
        self.policy = policy
        self.hooks = hooks
        self.storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        # The state machine and its listeners only: it is never called through (no
        # calling()), so its own consecutive count (fail_max) plays no part.
        self.circuit = pybreaker.CircuitBreaker(
            fail_max=policy.failures,
            reset_timeout=policy.reset_timeout,
            state_storage=self.storage,
            name=service.name,
            throw_new_error_on_trip=False,
        )
        self.window = _Window(policy.window)
        #: closed (kept by transition()): the hot path's one test, without pybreaker's lookups
        self.closed = True
        self.trial: asyncio.Task[UpstreamResponse] | None = None
        #: set while a transition received from a peer instance is applied (not published again)
        self.applying_peer = False
        #: (failed, requests) in the window when this instance opened it, for the log
        self.opened_by: tuple[int, int] | None = None
        if service.meter is not None:
            service.meter.breaker("closed")
        self.circuit.add_listener(_Transitions(self))

    def is_open(self) -> bool:
        """Open or half-open: a new request would be refused, or be the trial."""
        return not self.closed

    def open_for(self) -> float:
        """Seconds until an open breaker's reset timeout ends (0 or less: it has ended)."""
        opened_at = self.storage.opened_at
        if opened_at is None:
            return 0.0
        return opened_at.timestamp() + self.circuit.reset_timeout - time.time()

    def record(self, outcome: BaseException | UpstreamResponse) -> None:
        """Count how a request that went out while the breaker was closed ended other than
        with a plain answer (an error status, or an exception), and open it if that makes
        the window's failures too many."""
        if not self.closed:
            return  # opened meanwhile by other requests: nothing more to count
        fails = _fails(outcome, self.policy.counts)
        if fails is None:
            return  # no verdict on the upstream (nothing was sent)
        window = self.window
        now = _now()
        if now >= window.edge:
            window.turn(now)
        window.calls += 1
        if not fails:
            return
        window.failed += 1
        calls = window.calls + window.past_calls
        failed = window.failed + window.past_failed
        policy = self.policy
        if (
            calls >= policy.min_calls
            and failed >= policy.failures
            and failed >= policy.failure_rate * calls - _EPSILON
        ):
            self.opened_by = (failed, calls)
            self.circuit.open()

    async def guarded(
        self, send: Layer, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        """One request while the breaker is open or half-open: refused, or the trial."""
        if self.closed:  # closed by a peer since the caller looked: not counted either way
            return await send(url, headers, deadline)
        service = self.service
        if self.trial is not None or self.open_for() > 0:
            # Open, and its reset timeout has not elapsed (or the trial is out): refuse.
            refused = service.refuse()
            service.maybe_log_summary()
            raise refused
        # Time for the one trial request. It is the breaker's, not this caller's: a caller
        # that stops waiting (its run failed, its client left) must not cancel it.
        if self.circuit.current_state == pybreaker.STATE_OPEN:
            self.circuit.half_open()
        trial = asyncio.get_running_loop().create_task(
            self._trial(send, url, headers, deadline), name=f"bff-breaker-trial:{service.name}"
        )
        self.trial = trial
        trial.add_done_callback(self._trial_done)
        return await asyncio.shield(trial)

    async def _trial(
        self, send: Layer, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        # Nobody else bounds this task: its own deadline does (a timeout, counted).
        async with deadline.limit():
            try:
                response = await send(url, headers, deadline)
            except asyncio.CancelledError:
                if deadline.expired:
                    timeout = TimeoutError("no answer by the deadline")
                    self._decide(timeout)
                    raise timeout from None
                raise  # the gateway is closing: no verdict
            except Exception as exc:
                self._decide(exc)
                raise
            self._decide(response)
            return response

    def _decide(self, outcome: BaseException | UpstreamResponse) -> None:
        """The trial's verdict: a failure opens the breaker again, anything else the policy
        does not count closes it; a request that was not sent leaves it half-open (the next
        request is the trial)."""
        if self.closed:  # a peer closed it while the trial ran: an ordinary request now
            self.record(outcome)
            return
        fails = _fails(outcome, self.policy.counts)
        if fails is None:
            return
        if fails:
            self.opened_by = None
            self.circuit.open()
        else:
            self.circuit.close()

    def _trial_done(self, task: asyncio.Task[UpstreamResponse]) -> None:
        self.trial = None
        if not task.cancelled():
            task.exception()  # retrieved: the caller may have stopped waiting for it

    def state(self) -> BreakerState:
        return _state(self.circuit.current_state)

    def apply_peer(self, state: BreakerState, opened_at: float | None) -> bool:
        """Apply a transition another instance made; return whether anything changed here.

        An ``open`` sets this breaker open since ``opened_at`` (wall clock), so it lets its own
        trial through when the peer's reset timeout ends; ``closed`` closes it.
        """
        circuit, storage = self.circuit, self.storage
        current = circuit.current_state
        self.applying_peer = True
        try:
            if state == "open" and opened_at is not None:
                if opened_at + circuit.reset_timeout <= time.time():
                    return False  # that opening is over: trial requests decide now
                when = datetime.fromtimestamp(opened_at, UTC)
                if current == pybreaker.STATE_OPEN and (
                    storage.opened_at is not None and storage.opened_at >= when
                ):
                    return False
                if current != pybreaker.STATE_OPEN:
                    circuit.open()
                storage.opened_at = when
                return True
            if state == "closed" and current != pybreaker.STATE_CLOSED:
                circuit.close()
                return True
            return False
        finally:
            self.applying_peer = False

    def transition(self, old: str | None, new: str) -> None:
        """pybreaker changed the state: log it, export it, tell the hooks."""
        self.closed = new == pybreaker.STATE_CLOSED
        if old == new:
            # Opened again while open (a peer's later opening): not news, neither logged nor
            # published again.
            return
        service = self.service
        state = _state(new)
        if state != "half-open":
            # Closed: judge afresh. Open: nothing is counted until it closes again.
            self.window.clear()
        if service.meter is not None:
            service.meter.breaker(state)
        opened_at = None
        if state == "open" and self.storage.opened_at is not None:
            opened_at = self.storage.opened_at.timestamp()
        peer = self.applying_peer
        origin = " (as a peer instance said)" if peer else ""
        if state == "open":
            why = ""
            opened_by, self.opened_by = self.opened_by, None
            if opened_by is not None and not peer:
                why = (
                    f"; {opened_by[0]} of its last {opened_by[1]} requests "
                    f"(in {self.policy.window:g} s) failed"
                )
            elif old == pybreaker.STATE_HALF_OPEN and not peer:
                why = "; the trial request failed"
            logger.warning(
                "circuit breaker of upstream %s opened%s: requests to it fail at once for %g s%s",
                service.name,
                origin,
                self.circuit.reset_timeout,
                why,
                extra={
                    "event": "breaker_opened",
                    "service": service.name,
                    "from_peer": peer,
                    "reset_timeout_s": self.circuit.reset_timeout,
                    **(
                        {"window_failures": opened_by[0], "window_requests": opened_by[1]}
                        if opened_by is not None and not peer
                        else {}
                    ),
                },
            )
        elif state == "half-open":
            logger.info(
                "circuit breaker of upstream %s half-open: one trial request",
                service.name,
                extra={"event": "breaker_half_open", "service": service.name},
            )
        else:
            logger.info(
                "circuit breaker of upstream %s closed%s",
                service.name,
                origin,
                extra={"event": "breaker_closed", "service": service.name, "from_peer": peer},
            )
        if peer:
            return
        for hook in self.hooks:
            try:
                hook(service.name, state, opened_at)
            except Exception:
                logger.exception("breaker transition hook failed")


class BreakerLayer:
    """A request's first attempt through its service's breaker: the one the window counts.

    While the breaker is closed, the request is sent and its outcome added to the window: a
    success costs a clock read and an addition (no lock, no generator, no pybreaker call); a
    failure goes through :meth:`Breaker.record`, which may open the breaker. Open or half-open,
    :meth:`Breaker.guarded` refuses it or makes it the trial.

    ``judges_statuses=False`` (a batch request's): an answer with an error status is returned
    uncounted, for the caller to :meth:`~Breaker.record` once it knows what it meant.
    """

    __slots__ = ("breaker", "inner", "judges_statuses")

    def __init__(self, breaker: Breaker, inner: Layer, *, judges_statuses: bool = True) -> None:
        self.breaker = breaker
        self.inner = inner
        self.judges_statuses = judges_statuses

    async def __call__(
        self, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        breaker = self.breaker
        if not breaker.closed:
            return await breaker.guarded(self.inner, url, headers, deadline)
        try:
            response = await self.inner(url, headers, deadline)
        except asyncio.CancelledError:
            if deadline.expired:
                timeout = TimeoutError("no answer by the deadline")
                breaker.record(timeout)
                raise timeout from None
            raise  # cancelled from outside, before the deadline: no verdict
        except Exception as exc:
            breaker.record(exc)
            raise
        status = response.status
        if status >= 500 or status == 429:
            if self.judges_statuses:
                breaker.record(response)
        elif breaker.closed:
            window = breaker.window
            now = _now()
            if now >= window.edge:
                window.turn(now)
            window.calls += 1
        return response


class AttemptLayer:
    """A retry or a hedge through its service's breaker: refused while it is open, possibly
    the trial while it is half-open, never counted in the window (its request already is)."""

    __slots__ = ("breaker", "inner")

    def __init__(self, breaker: Breaker, inner: Layer) -> None:
        self.breaker = breaker
        self.inner = inner

    async def __call__(
        self, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        breaker = self.breaker
        if breaker.closed:
            return await self.inner(url, headers, deadline)
        return await breaker.guarded(self.inner, url, headers, deadline)


class _Transitions(pybreaker.CircuitBreakerListener):
    def __init__(self, breaker: Breaker) -> None:
        self._breaker = breaker

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._breaker.transition(None if old_state is None else old_state.name, new_state.name)


def _fails(outcome: BaseException | UpstreamResponse, counts: AbstractSet[str]) -> bool | None:
    """Whether ``outcome`` is a failure the breaker counts (``False``: a success; ``None``:
    no verdict on the upstream, nothing having been sent)."""
    if isinstance(outcome, UpstreamResponse):
        status = outcome.status
        return ("5xx" in counts and status >= 500) or ("429" in counts and status == 429)
    if isinstance(outcome, RequestNotSent):
        return None
    if isinstance(outcome, TimeoutError):
        return "timeout" in counts
    if isinstance(outcome, UpstreamUnavailable):
        return "unavailable" in counts
    return False


def _state(name: str) -> BreakerState:
    if name == pybreaker.STATE_OPEN:
        return "open"
    if name == pybreaker.STATE_HALF_OPEN:
        return "half-open"
    return "closed"
