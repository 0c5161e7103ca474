"""One upstream service's shared state: its retry budget's tokens and what was done to it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .._declare import RetryBudget
from .._errors import CircuitOpen
from .._telemetry import UpstreamMeter

__all__ = ["MIN_ATTEMPT", "Service"]

logger = logging.getLogger("bff_core.resilience")

#: A retry or hedge is not sent with less time left than this: it could not answer anyway.
MIN_ATTEMPT = 0.005
#: The shortest interval between two summary log lines for one service.
_SUMMARY_EVERY = 10.0


@dataclass(slots=True, eq=False)
class Service:
    """One service's retry budget and counters, shared by the chains of all its sources.

    The budget: each request that is not itself a retry or a hedge earns ``ratio`` of a token
    for each read it makes (one; a batch request, as many as its ids); a retry or a hedge, or
    the split of a failed batch, spends one (see :class:`RetryBudget`).
    """

    name: str
    budget: RetryBudget | None
    tokens: float = 0.0
    requests: int = 0
    retries: int = 0
    hedges: int = 0
    hedges_won: int = 0
    over_budget: int = 0
    refused: int = 0
    logged: dict[str, int] = field(default_factory=dict)
    logged_at: float = 0.0
    #: the same counts as Prometheus metrics, when the gateway has them
    meter: UpstreamMeter | None = None

    def earn(self, reads: int = 1) -> None:
        self.requests += 1
        if self.meter is not None:
            self.meter.requests.inc()
        budget = self.budget
        if budget is not None and self.tokens < budget.burst:
            self.tokens = min(self.tokens + budget.ratio * reads, budget.burst)

    def spend(self) -> bool:
        """Take a token for a retry or a hedge; ``False``: none left (counted)."""
        if self.budget is None:
            return False  # retries and hedges are off: not a budget running out
        # A hair under 1: ten earnings of 0.1 add up to 0.9999999999999999.
        if self.tokens < 1.0 - 1e-9:
            self.over_budget += 1
            if self.meter is not None:
                self.meter.over_budget.inc()
            return False
        self.tokens -= 1.0
        return True

    def split(self) -> bool:
        """Take a token to split a failed batch in two (a retry of its ids); ``True`` without
        a budget: splitting is bounded by itself (see ``_batch``), and isolating a poison id
        is what keeps the others' answers."""
        if self.budget is not None and not self.spend():
            return False
        self.retried()
        return True

    def retried(self) -> None:
        self.retries += 1
        if self.meter is not None:
            self.meter.retries.inc()

    def hedged(self) -> None:
        self.hedges += 1
        if self.meter is not None:
            self.meter.hedges.inc()

    def hedge_won(self) -> None:
        self.hedges_won += 1
        if self.meter is not None:
            self.meter.hedges_won.inc()

    def refuse(self) -> CircuitOpen:
        """Count a request the open breaker refused; the error to raise for it."""
        self.refused += 1
        if self.meter is not None:
            self.meter.refused.inc()
        return CircuitOpen(self.name)

    def counters(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "hedges": self.hedges,
            "hedges won": self.hedges_won,
            "over budget": self.over_budget,
            "refused (breaker open)": self.refused,
        }

    def maybe_log_summary(self) -> None:
        """Log what changed since the last summary, at most every 10 s."""
        now = time.monotonic()
        if now - self.logged_at < _SUMMARY_EVERY:
            return
        counters = self.counters()
        changes = [
            f"{name} +{value - self.logged.get(name, 0)}"
            for name, value in counters.items()
            if value != self.logged.get(name, 0)
        ]
        if changes:
            since = "start-up" if not self.logged_at else f"{now - self.logged_at:.0f} s ago"
            logger.info("upstream %s since %s: %s", self.name, since, ", ".join(changes))
        self.logged = counters
        self.logged_at = now
