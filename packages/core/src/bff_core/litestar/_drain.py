"""What a worker does when the serving process tells it a drain has started."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

logger = logging.getLogger("bff_core")

#: What the serving process sends each worker when a drain starts (see :func:`serve`).
DRAIN_SIGNAL = signal.SIGUSR1


def on_drain_signal(drain: Callable[[], None]) -> None:
    """Call ``drain`` when this process receives :data:`DRAIN_SIGNAL`, if it can listen for
    signals at all (a loop in the main thread; not, say, a test client's portal thread)."""
    try:
        asyncio.get_running_loop().add_signal_handler(DRAIN_SIGNAL, drain)
    except (NotImplementedError, RuntimeError, ValueError):
        logger.debug("no drain signal handler in this process")
