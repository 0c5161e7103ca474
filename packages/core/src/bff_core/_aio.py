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
    What a task ended with instead of its cancellation (a request cut off at its deadline
    raises ``TimeoutError``) is the caller's to ignore: it is retrieved here, so that nothing
    logs it as "never retrieved".
    """
    pending = set(tasks)
    for task in pending:
        task.cancel()
    cancelled = False
    while pending:
        try:
            done, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
            continue
        for task in done:
            if not task.cancelled():
                task.exception()
    if cancelled:
        raise asyncio.CancelledError
