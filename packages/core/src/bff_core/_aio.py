"""Small asyncio helpers shared by the engine and the resilience layer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has really finished.

    Waited for even when the caller is being cancelled itself (a client that went away): a
    stray task must never outlive the request. The caller's cancellation is re-raised after.
    """
    pending = set(tasks)
    for task in pending:
        task.cancel()
    cancelled = False
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
