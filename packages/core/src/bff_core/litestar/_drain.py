"""What a worker does when the serving process tells it a drain has started."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger("bff_core")

#: What the serving process sends each worker when a drain starts (see :func:`serve`).
DRAIN_SIGNAL = signal.SIGUSR1


#: Set when the drain signal came before the worker's loop listened for it.
_drain_asked = False


def _remember_drain(signum: int, frame: FrameType | None) -> None:
    global _drain_asked
    _drain_asked = True


def keep_an_early_drain() -> None:
    """Remember a drain signal that arrives while this worker is still starting (its app built,
    its lifespan not run yet). Its default action would end the process, and granian would
    start a new worker that was never told to drain: a SIGTERM right after start-up would leave
    one worker ready. Called when the app is built, in each worker's main thread."""
    with contextlib.suppress(ValueError):  # not the main thread: nobody signals it anyway
        signal.signal(DRAIN_SIGNAL, _remember_drain)


def on_drain_signal(drain: Callable[[], None]) -> None:
    """Call ``drain`` when this process receives :data:`DRAIN_SIGNAL`, if it can listen for
    signals at all (a loop in the main thread; not, say, a test client's portal thread), and
    at once if the signal came before (:func:`keep_an_early_drain`)."""
    try:
        asyncio.get_running_loop().add_signal_handler(DRAIN_SIGNAL, drain)
    except (NotImplementedError, RuntimeError, ValueError):
        logger.debug("no drain signal handler in this process")
        return
    if _drain_asked:
        drain()
