"""A circuit breaker per upstream service, and the layer that sends a source's requests
through it.

Each service's :class:`Breaker` is pybreaker's state machine, driven with ``calling()`` around
the await. After ``failures`` consecutive failures of the declared kinds it opens: requests fail
at once with :class:`CircuitOpen` and nothing is sent. After ``reset_timeout`` one trial request
is let through, alone, and decides: success closes the breaker, failure opens it for another
``reset_timeout``. The trial belongs to the breaker, not to the request that started it, so a
request that ends early (its aggregate failed, its client left) does not cancel the trial.

A request cancelled at its deadline (``deadline.expired``: the engine's timer, the cache's
bound) ends inside the breaker as :class:`TimeoutError`, so the breaker counts it; one cancelled
before it, from outside, is no verdict on the upstream and counts neither way.
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
from .._errors import UpstreamUnavailable
from .._transports import UpstreamResponse
from ._layer import Layer
from ._service import Service

__all__ = ["Breaker", "BreakerLayer", "BreakerState", "TransitionHook"]

logger = logging.getLogger("bff_core.resilience")

BreakerState: TypeAlias = Literal["closed", "open", "half-open"]

#: Called with (service, new state, when it opened (wall clock) or None) on local transitions.
TransitionHook: TypeAlias = Callable[[str, BreakerState, "float | None"], None]


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


class _Counted(Exception):
    """An answer the breaker must count as a failure (a 5xx, a 429): raised inside
    ``calling()`` so pybreaker sees it, and turned back into the answer outside."""

    def __init__(self, response: UpstreamResponse) -> None:
        super().__init__(f"upstream answered {response.status}")
        self.response = response


class Breaker:
    """One upstream service's circuit breaker, shared by the chains of all its sources.

    ``hooks`` are called on every transition this instance makes itself (not on those a peer
    instance told it of: :meth:`apply_peer`).
    """

    __slots__ = ("applying_peer", "circuit", "hooks", "service", "storage", "trial")

    def __init__(
        self, service: Service, policy: BreakerPolicy, hooks: list[TransitionHook]
    ) -> None:
        self.service = service
        self.hooks = hooks
        self.storage = _Storage(pybreaker.STATE_CLOSED)
        counts = policy.counts
        self.circuit = pybreaker.CircuitBreaker(
            fail_max=policy.failures,
            reset_timeout=policy.reset_timeout,
            # Only what the policy declares counts; pybreaker treats every other exception as
            # a success (a cancellation is neither: see call()).
            exclude=[lambda exc: not _counts(exc, counts)],
            state_storage=self.storage,
            name=service.name,
            # Keep our own exception when it trips: the caller reports the real failure.
            throw_new_error_on_trip=False,
        )
        self.trial: asyncio.Task[UpstreamResponse] | None = None
        #: set while a transition received from a peer instance is applied (not published again)
        self.applying_peer = False
        if service.meter is not None:
            service.meter.breaker("closed")
        self.circuit.add_listener(_Transitions(self))

    def is_open(self) -> bool:
        """Open or half-open: a new request would be refused, or be the trial."""
        return self.circuit.current_state != pybreaker.STATE_CLOSED

    def open_for(self) -> float:
        """Seconds until an open breaker's reset timeout ends (0 or less: it has ended)."""
        opened_at = self.storage.opened_at
        if opened_at is None:
            return 0.0
        return opened_at.timestamp() + self.circuit.reset_timeout - time.time()

    async def guarded(
        self, send: Layer, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        """One request through the breaker, whatever its state (the layer's slow path)."""
        if self.circuit.current_state == pybreaker.STATE_CLOSED:
            return await self.call(send, url, headers, deadline)
        service = self.service
        if self.trial is not None or self.open_for() > 0:
            # Open, and its reset timeout has not elapsed (or the trial is out): refuse.
            refused = service.refuse()
            service.maybe_log_summary()
            raise refused
        # Time for the one trial request. It is the breaker's, not this caller's: a caller
        # that stops waiting (its run failed, its client left) must not cancel it.
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
            return await self.call(send, url, headers, deadline)

    def _trial_done(self, task: asyncio.Task[UpstreamResponse]) -> None:
        self.trial = None
        if not task.cancelled():
            task.exception()  # retrieved: the caller may have stopped waiting for it

    async def call(
        self, send: Layer, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        """One request watched by pybreaker: its failure, or its success, is counted."""
        try:
            # pybreaker is synchronous: its calling() context manager around the await, never
            # its Tornado call_async. Failures are what escapes the block; an answer that must
            # count (5xx, 429) is raised as _Counted inside and returned outside.
            with self.circuit.calling():
                try:
                    response = await send(url, headers, deadline)
                except asyncio.CancelledError:
                    if deadline.expired:
                        # Cancelled at the deadline (the engine's timer, the cache's): the
                        # upstream did not answer in time. A timeout, for the breaker too.
                        raise TimeoutError("no answer by the deadline") from None
                    # Cancelled before it, from outside (the aggregate failed, the client
                    # left, a hedge won): no verdict on the upstream. pybreaker knows only
                    # failure and success, and would reset the failure count: keep it.
                    self.storage.keep_count_once = True
                    raise
                status = response.status
                if status >= 500 or status == 429:
                    raise _Counted(response)
        except _Counted as counted:
            return counted.response
        except pybreaker.CircuitBreakerError:
            raise self.service.refuse() from None
        return response

    def count(self, failure: Exception) -> None:
        """Tell the breaker how a request it did not watch ended (see :class:`BreakerLayer`)."""
        if self.circuit.current_state != pybreaker.STATE_CLOSED:
            return  # opened meanwhile by other requests: nothing more to count
        try:
            with self.circuit.calling():
                raise failure
        except Exception as told:
            if told is not failure:  # pragma: no cover - pybreaker raises its own only if open
                raise

    def count_answer(self, response: UpstreamResponse) -> None:
        """Tell the breaker of an answer it must count as a failure (a 5xx, a 429)."""
        self.count(_Counted(response))

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
        if old == new:
            # A request sent before the breaker opened failed after it did: pybreaker opens it
            # again (from now). Not news: neither logged nor published again.
            return
        service = self.service
        state = _state(new)
        if service.meter is not None:
            service.meter.breaker(state)
        opened_at = None
        if state == "open" and self.storage.opened_at is not None:
            opened_at = self.storage.opened_at.timestamp()
        peer = self.applying_peer
        origin = " (as a peer instance said)" if peer else ""
        if state == "open":
            logger.warning(
                "circuit breaker of upstream %s opened%s: requests to it fail at once for %g s",
                service.name,
                origin,
                self.circuit.reset_timeout,
                extra={
                    "event": "breaker_opened",
                    "service": service.name,
                    "from_peer": peer,
                    "reset_timeout_s": self.circuit.reset_timeout,
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
    """A source's requests through its service's breaker.

    A closed breaker that has counted no failure (the common case) is not asked at all: a
    success then changes nothing in it (pybreaker would reset a count that is already 0), so
    only a failure is told to it, after the fact, the way :meth:`Breaker.call` tells it. This
    saves pybreaker's lock, context manager and generator on every healthy request (about 3 µs
    each). Any other state goes through :meth:`Breaker.guarded` (a half-open breaker's trial
    always does: its success closes).
    """

    __slots__ = ("breaker", "inner")

    def __init__(self, breaker: Breaker, inner: Layer) -> None:
        self.breaker = breaker
        self.inner = inner

    async def __call__(
        self, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        breaker = self.breaker
        if breaker.storage.counter or breaker.circuit.current_state != pybreaker.STATE_CLOSED:
            return await breaker.guarded(self.inner, url, headers, deadline)
        try:
            response = await self.inner(url, headers, deadline)
        except asyncio.CancelledError:
            if deadline.expired:
                timeout = TimeoutError("no answer by the deadline")
                breaker.count(timeout)
                raise timeout from None
            raise  # cancelled from outside, before the deadline: no verdict
        except Exception as exc:
            breaker.count(exc)
            raise
        status = response.status
        if status >= 500 or status == 429:
            breaker.count_answer(response)
        return response


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


def _state(name: str) -> BreakerState:
    if name == pybreaker.STATE_OPEN:
        return "open"
    if name == pybreaker.STATE_HALF_OPEN:
        return "half-open"
    return "closed"
