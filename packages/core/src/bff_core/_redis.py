"""What every Redis client of bff-core shares: how it connects, closes and describes failures.

The cache store (``_cache_store``) and the breaker sharing (``_breaker_share``) each keep their
own client, because they use it differently (short operations; a long-lived subscription).
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["close_quietly", "connect", "describe"]


def connect(url: str, *, timeout: float, socket_timeout: float | None) -> redis.asyncio.Redis:
    """A client that fails within ``timeout`` to connect, and never retries by itself.

    redis-py retries 3 times with backoff by default: that would stretch one failed operation
    far past the caller's own deadline. Each caller has its own way to try again later.
    ``socket_timeout=None`` suits a subscription, which waits for messages indefinitely.
    """
    return redis.asyncio.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=timeout,
        health_check_interval=0,
        retry=Retry(NoBackoff(), 0),
    )


async def close_quietly(
    client: redis.asyncio.Redis, *, within: float, logger: logging.Logger, what: str
) -> None:
    """Close ``client`` within ``within`` seconds; a failure is logged at debug level, not raised:
    closing a broken connection must not fail a shutdown."""
    try:
        async with asyncio.timeout(within):
            await client.aclose()
    except Exception as exc:
        logger.debug("closing the %s failed: %s", what, describe(exc, within))


def describe(exc: BaseException, timeout: float) -> str:
    """A short reason for logs and ``/readyz``: a bare timeout says how long it waited."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout * 1000:g} ms"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
