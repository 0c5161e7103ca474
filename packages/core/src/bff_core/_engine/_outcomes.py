"""What an upstream's answer, or its failure, means for a part: exactly one outcome.

(How a batch answer becomes each item's answer, as if each had been read alone, is
``_upstream/_batch.py``'s ``split_batch``: lists and cross-request batches share it.)
"""

from __future__ import annotations

import logging
import re
from time import perf_counter

import msgspec

from .._cache import Answer
from .._declare import Source
from .._errors import CircuitOpen, ResponseTooLarge, UpstreamUnavailable
from .._outcome import CacheResult, FailureReason, PartOutcome
from .._transports import UpstreamResponse
from .._upstream import MalformedBatch

__all__ = ["outcome_of"]

logger = logging.getLogger("bff_core")

#: A URL in an error's text, without the ``:`` or ``)`` that may follow it.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s()]*[^\s():]")


def outcome_of(
    source: Source, started: float, result: UpstreamResponse | Answer | BaseException
) -> PartOutcome:
    """What a request's result means for its part: exactly one outcome."""
    duration = perf_counter() - started
    if isinstance(result, BaseException):
        return _failure(source, duration, result)
    cache: CacheResult | None = None
    if isinstance(result, Answer):
        response, stale, age, fresh_for = (
            result.response,
            result.stale,
            result.age,
            result.fresh_for,
        )
        if result.bypassed:
            cache = "bypassed"
        elif age is None:
            cache = "miss"
        else:
            cache = "stale" if stale else "hit"
    else:
        response, stale, age, fresh_for = result, False, None, 0.0
    status = response.status
    if not 200 <= status < 300:
        return PartOutcome(
            source.name,
            reason="upstream_status",
            duration=duration,
            upstream_status=status,
            detail=f"upstream answered {status}",
        )
    try:
        value = source.decoder.decode(response.body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return PartOutcome(
            source.name,
            reason="invalid_response",
            duration=duration,
            upstream_status=status,
            detail=str(exc)[:200],
        )
    return PartOutcome(
        source.name,
        value=value,
        duration=duration,
        upstream_status=status,
        stale=stale,
        age=age,
        fresh_for=fresh_for,
        cache=cache,
    )


def _failure(source: Source, duration: float, error: BaseException) -> PartOutcome:
    reason: FailureReason
    if isinstance(error, CircuitOpen):
        reason = "circuit_open"
    elif isinstance(error, TimeoutError):  # the request's own deadline, or the client's
        reason = "timeout"
    elif isinstance(error, UpstreamUnavailable):
        reason = "unavailable"
    elif isinstance(error, ResponseTooLarge | MalformedBatch):
        reason = "invalid_response"
    else:
        # A transport must only raise the errors above; anything else is an adapter bug, but
        # it still ends the part with one outcome instead of failing the whole request.
        logger.error(
            "transport raised an unexpected error for part %s", source.name, exc_info=error
        )
        return PartOutcome(
            source.name,
            reason="unavailable",
            duration=duration,
            detail=f"unexpected transport error: {type(error).__name__}",
        )
    detail = str(error)
    if source.uses_user:
        # The transports' errors name the URL, which names the user ({user}): an outcome is
        # what the part's span and the logs say, so its URL goes.
        detail = _URL.sub("<its URL for one user>", detail)
    return PartOutcome(source.name, reason=reason, duration=duration, detail=detail)
