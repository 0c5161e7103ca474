"""One deadline, passed from the engine down to the transport.

A :class:`Deadline` is when an answer is due, on the event loop's clock (what ``call_at`` uses),
and whether the deadline has come. It is the only representation: every layer reads the time
left from it (:meth:`Deadline.left`) instead of converting an absolute time into seconds left
and back.

Whoever cancels work *because* the deadline came marks it first (:meth:`Deadline.expire`): the
run's timer, a part's own timer, a bound set with :meth:`Deadline.limit` (the cache's refreshes,
a breaker's trial). A cancelled request then knows whether it was the deadline's (a timeout,
which a circuit breaker counts) or came from outside before it (the aggregate failed, the client
left, a hedge won: no verdict on the upstream), without guessing from the clock. That is trio's
lesson: a cancellation knows its cause.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["Deadline"]


class Deadline:
    """When an answer is due (``at``, on the event loop's clock), and whether that time came.

    ``parent``: the deadline this one is carved out of (a part's own timeout within its run's
    deadline): when the parent expires, this one has expired too.
    """

    __slots__ = ("_expired", "at", "parent")

    def __init__(self, at: float, parent: Deadline | None = None) -> None:
        self.at = at
        self.parent = parent
        self._expired = False

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now."""
        return cls(asyncio.get_running_loop().time() + seconds)

    def within(self, seconds: float | None) -> Deadline:
        """This deadline, or an earlier one ``seconds`` from now (``None``: no limit of its own)."""
        if seconds is None:
            return self
        at = asyncio.get_running_loop().time() + seconds
        return Deadline(at, self) if at < self.at else self

    def left(self) -> float:
        """Seconds until the deadline (0 or less: it has passed)."""
        return self.at - asyncio.get_running_loop().time()

    def expire(self) -> None:
        """Mark the deadline as come: called by whoever cancels work at it, before cancelling."""
        self._expired = True

    @property
    def expired(self) -> bool:
        """Whether whoever cancels at this deadline (or at its parent's) has done so."""
        return self._expired or (self.parent is not None and self.parent.expired)

    def limit(self) -> Limit:
        """``async with deadline.limit():`` cancels the block at the deadline, marking it first,
        and raises :class:`TimeoutError` instead of the cancellation (as ``asyncio.timeout_at``)."""
        return Limit(self)

    def __repr__(self) -> str:
        return f"Deadline(at={self.at!r}{', expired' if self.expired else ''})"


class Limit:
    """What :meth:`Deadline.limit` returns: ``asyncio.timeout_at`` that marks the deadline."""

    __slots__ = ("_cancelling", "_deadline", "_fired", "_handle", "_task")

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline
        self._fired = False
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - an async with always runs in a task
            raise RuntimeError("Deadline.limit() must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = asyncio.get_running_loop().call_at(self._deadline.at, self._fire)

    def _fire(self) -> None:
        assert self._task is not None
        self._fired = True
        # Marked before the cancellation reaches the task: whatever it interrupts knows why.
        self._deadline.expire()
        self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._handle is not None and self._task is not None
        self._handle.cancel()
        # As asyncio.Timeout: our own cancellation becomes a TimeoutError; one from outside
        # (the task cancelled by someone else too) stays a cancellation.
        if (
            self._fired
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc
