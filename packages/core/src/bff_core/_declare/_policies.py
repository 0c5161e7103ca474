"""The policy types a declaration names: how a source's answers are cached and retried, and how
an upstream service's circuit breaker and retry budget behave.

Only what is declared lives here, checked when it is built; what acts on it lives in the layers
that execute it (``_cache``, ``_upstream``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal, TypeAlias

from .._errors import DeclarationError

__all__ = [
    "DEFAULT_BREAKER",
    "DEFAULT_RETRY_BUDGET",
    "FAILURE_KINDS",
    "BreakerPolicy",
    "CachePolicy",
    "FailureKind",
    "RetryBudget",
    "RetryPolicy",
    "breaker_policies",
]

#: What can count as a breaker failure, or be retried.
FailureKind: TypeAlias = Literal["timeout", "unavailable", "5xx", "429"]
FAILURE_KINDS: tuple[FailureKind, ...] = ("timeout", "unavailable", "5xx", "429")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How a source's answers may be cached (all in seconds).

    Args:
        ttl: how long an answer is fresh.
        stale_while_revalidate: how long after that it may still be served at once while a
            background request refreshes it.
        stale_if_error: how long after freshness it may be served when the upstream fails.
        per_user: the answers may be cached even for requests that carry credentials
            (``Authorization``, ``Cookie``); entries are then keyed by those credentials.
    """

    ttl: float
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    per_user: bool = False

    def __post_init__(self) -> None:
        if not self.ttl > 0:
            raise ValueError(f"CachePolicy ttl must be positive, got {self.ttl!r}")
        if self.stale_while_revalidate < 0 or self.stale_if_error < 0:
            raise ValueError("CachePolicy windows must not be negative")


def _kinds(owner: str, name: str, kinds: Iterable[str], allowed: tuple[str, ...]) -> frozenset[str]:
    if isinstance(kinds, str):
        raise DeclarationError(f"{owner}.{name} must be a collection of names, not a string")
    chosen = frozenset(kinds)
    unknown = sorted(chosen - set(allowed))
    if unknown:
        raise DeclarationError(
            f"{owner}.{name}: unknown {', '.join(map(repr, unknown))}; "
            f"choose among {', '.join(allowed)}"
        )
    return chosen


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerPolicy:
    """When an upstream service's circuit breaker opens, and for how long.

    The breaker opens on a failure *rate*, not a count (decision record 0015): over the last
    ``window`` seconds, at least ``min_calls`` requests were sent to the service, at least
    ``failure_rate`` of them failed, and at least ``failures`` failed. A client repeating one
    request that fails (a poison id) therefore cannot open it while the service answers the
    others: it would have to send as many failing requests as every other client sends.

    Each request counts once, whatever its retries and hedges (those are judged by the
    breaker, refused while it is open, but not counted again).

    Args:
        failures: the fewest failed requests within the window that open the breaker (with the
            defaults, the rate rule already asks for 10).
        min_calls: the fewest requests within the window for the breaker to judge the rate at
            all (resilience4j's ``minimumNumberOfCalls``).
        failure_rate: the share of the window's requests that failed, 0 to 1, at or above
            which the breaker opens (resilience4j's ``failureRateThreshold``).
        window: seconds over which requests are counted (a ring of ten buckets: the window
            moves a tenth of its length at a time).
        reset_timeout: seconds the breaker stays open before one trial request decides.
        counts: which outcomes are failures: ``"timeout"`` (no answer by the deadline),
            ``"unavailable"`` (no connection, connection lost), ``"5xx"`` (an answer with a
            5xx status), ``"429"`` (Too Many Requests). Anything else, a 404 included, is an
            answer: it counts as a success. A request that could not be sent at all
            (:class:`~bff_core.RequestNotSent`) counts neither way.
    """

    failures: int = 5
    min_calls: int = 20
    failure_rate: float = 0.5
    window: float = 10.0
    reset_timeout: float = 10.0
    counts: AbstractSet[str] = frozenset({"timeout", "unavailable", "5xx"})

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise DeclarationError(
                f"BreakerPolicy.failures must be at least 1, not {self.failures}"
            )
        if self.min_calls < 1:
            raise DeclarationError(
                f"BreakerPolicy.min_calls must be at least 1, not {self.min_calls}"
            )
        if not 0 < self.failure_rate <= 1:
            raise DeclarationError(
                "BreakerPolicy.failure_rate must be above 0 and at most 1 (a share of the "
                f"window's requests), not {self.failure_rate}"
            )
        if not 0.01 <= self.window <= 3600:
            raise DeclarationError(
                f"BreakerPolicy.window must be 0.01 to 3600 seconds, not {self.window}"
            )
        if not self.reset_timeout > 0:
            raise DeclarationError(
                f"BreakerPolicy.reset_timeout must be positive, not {self.reset_timeout}"
            )
        counts = _kinds("BreakerPolicy", "counts", self.counts, FAILURE_KINDS)
        if not counts:
            raise DeclarationError("BreakerPolicy.counts must name at least one outcome")
        object.__setattr__(self, "counts", counts)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a source's failed request is retried (only idempotent sources may declare one).

    Args:
        attempts: requests in all, the first included (2 to 5).
        backoff: seconds; the n-th retry waits a random time between 0 and
            ``backoff * 2**(n-1)`` ("full jitter"), at most ``max_backoff``.
        max_backoff: the longest wait before a retry.
        on: which failures are retried: ``"unavailable"`` (no connection, connection lost),
            ``"5xx"`` (502, 503, 504 and every other 5xx status), ``"429"``. Timeouts are not
            retried: the time is spent (declare ``hedge_after`` for slow answers instead).

    A retry is only sent when the time left after its backoff is at least what the failed
    attempt took (and 5 ms), so it can still answer before the deadline, and when the
    service's :class:`RetryBudget` allows it.
    """

    attempts: int = 2
    backoff: float = 0.025
    max_backoff: float = 0.25
    on: AbstractSet[str] = frozenset({"unavailable", "5xx"})

    def __post_init__(self) -> None:
        if not 2 <= self.attempts <= 5:
            raise DeclarationError(f"RetryPolicy.attempts must be 2 to 5, not {self.attempts}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise DeclarationError("RetryPolicy backoff times must not be negative")
        on = _kinds("RetryPolicy", "on", self.on, ("unavailable", "5xx", "429"))
        if not on:
            raise DeclarationError("RetryPolicy.on must name at least one failure")
        object.__setattr__(self, "on", on)

    def delay(self, retry: int) -> float:
        """The (random) wait before the ``retry``-th retry, 1 for the first."""
        return random.uniform(0.0, min(self.max_backoff, self.backoff * 2 ** (retry - 1)))


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryBudget:
    """How many retries and hedges a service may get, relative to its requests.

    Each request that is not itself a retry or a hedge earns the service ``ratio`` of a token;
    a retry or hedge spends one. At most ``burst`` tokens are kept (and a new gateway starts
    with that many), so however long it ran healthy, a service that starts failing gets at
    most ``burst`` extra requests at once, then about ``ratio`` times its requests.
    """

    ratio: float = 0.1
    burst: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.ratio <= 1:
            raise DeclarationError(f"RetryBudget.ratio must be between 0 and 1, not {self.ratio}")
        if self.burst < 0:
            raise DeclarationError(f"RetryBudget.burst must not be negative, not {self.burst}")


DEFAULT_BREAKER = BreakerPolicy()
DEFAULT_RETRY_BUDGET = RetryBudget()


def breaker_policies(
    services: Iterable[str],
    breakers: BreakerPolicy | Mapping[str, BreakerPolicy | None] | None,
) -> dict[str, BreakerPolicy | None]:
    """The breaker policy of every service: one for all, per service (others get the default
    :class:`BreakerPolicy`), or none at all. A mapping naming unknown services is refused."""
    names = list(services)
    if breakers is None:
        return dict.fromkeys(names)
    if isinstance(breakers, BreakerPolicy):
        return dict.fromkeys(names, breakers)
    unknown = sorted(set(breakers) - set(names))
    if unknown:
        raise DeclarationError(
            f"breakers declared for unknown service(s) {', '.join(unknown)} "
            f"(services: {', '.join(sorted(names)) or 'none'})"
        )
    return {name: breakers.get(name, DEFAULT_BREAKER) for name in names}
