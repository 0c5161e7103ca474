"""The retry layer: a source's failed request sent again, within its deadline and its
service's retry budget.

A source that declares a :class:`RetryPolicy` is retried on the declared failures, after a
jittered exponential backoff, never past its deadline and only while the service's retry
budget allows (:class:`RetryBudget`: about 10 % extra requests at most). Each attempt goes
through the rest of the chain (the hedge, the breaker), so the breaker judges every one; the
first attempt goes through ``first`` (whose breaker layer counts the request), the retries
through ``again`` (whose breaker layer refuses them while open but does not count them again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from collections.abc import Set as AbstractSet

from .._deadline import Deadline
from .._declare import RetryPolicy
from .._errors import OutcomeUnknown, RequestNotSent, UpstreamUnavailable
from .._transports import UpstreamResponse
from ._breaker import Breaker
from ._layer import Layer
from ._service import MIN_ATTEMPT, Service

__all__ = ["Retry"]

logger = logging.getLogger("bff_core.resilience")


class Retry:
    """Sends again, through ``again``, what failed in ``first`` as ``policy`` says, for the
    source ``name``."""

    __slots__ = ("again", "breaker", "first", "name", "policy", "resend_sent", "service")

    def __init__(
        self,
        name: str,
        policy: RetryPolicy,
        service: Service,
        breaker: Breaker | None,
        first: Layer,
        again: Layer,
        *,
        resend_sent: bool = True,
    ) -> None:
        self.name = name
        self.policy = policy
        self.service = service
        self.breaker = breaker
        self.first = first
        self.again = again
        #: whether a request that may have reached the upstream is sent again: ``False`` for
        #: a ``POST``, which is then retried only when it certainly did not leave
        self.resend_sent = resend_sent

    async def __call__(
        self, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        policy, service, breaker = self.policy, self.service, self.breaker
        loop = asyncio.get_running_loop()
        attempt = 1
        layer = self.first
        while True:
            failure: UpstreamResponse | UpstreamUnavailable
            started = loop.time()
            try:
                response = await layer(url, headers, deadline)
            except UpstreamUnavailable as exc:
                if "unavailable" not in policy.on or isinstance(exc, RequestNotSent):
                    raise  # a request that cannot be sent would fail again the same way
                if isinstance(exc, OutcomeUnknown) and not self.resend_sent:
                    raise  # it may have taken effect: a second one could be a second order
                failure = exc
            else:
                if not self.resend_sent or not _retried_status(response.status, policy.on):
                    return response  # an answer: the request did reach the upstream
                failure = response
            if attempt >= policy.attempts or (breaker is not None and breaker.is_open()):
                # An open breaker (this failure may have opened it) would refuse the retry.
                return _give_up(failure)
            delay = policy.delay(attempt)
            now = loop.time()
            # A retry must have the time the failed attempt took (at least 5 ms): one sent
            # into the last milliseconds would only turn a telling 503 into a timeout.
            if now + delay + max(now - started, MIN_ATTEMPT) >= deadline.at:
                logger.debug("%s: no retry, the deadline is too close", self.name)
                return _give_up(failure)
            if not service.spend():
                service.maybe_log_summary()
                return _give_up(failure)
            service.retried()
            logger.debug(
                "%s: retry %d in %.0f ms after %s",
                self.name,
                attempt,
                delay * 1000,
                _describe(failure),
            )
            service.maybe_log_summary()
            await asyncio.sleep(delay)
            attempt += 1
            layer = self.again


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
