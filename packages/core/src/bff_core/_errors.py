"""Every failure bff-core can raise, rooted at one base class.

    BFFError
    ├── ConfigurationError      a setting (usually an environment variable) is invalid
    ├── DeclarationError        an aggregate is misdeclared; raised when it is built, at start-up
    ├── RequestError            what a client asked for cannot be served as asked (HTTP 400)
    │   ├── InvalidParameter    a request parameter is missing, empty, too long or malformed
    │   ├── UnknownParts        ``fields`` names parts the aggregate does not have
    │   └── InvalidBody         a write's body is not JSON or not its declared type (HTTP 422)
    ├── TransportError          raised by a Transport, turned into a part outcome by the engine
    │   ├── UpstreamUnavailable could not connect, connection refused or lost
    │   │   ├── RequestNotSent  what the request carries cannot be sent (a header value)
    │   │   └── OutcomeUnknown  a write may have reached the upstream: whether it took effect
    │   │                       is unknown (lost after sending, deadline passed after sending)
    │   ├── ResponseTooLarge    the upstream's body is above the configured limit
    │   └── CircuitOpen         the upstream's circuit breaker is open: nothing was sent
    ├── AggregationFailed       a critical part failed, so there is no answer (HTTP 404/502/504)
    └── WriteFailed             a write has no answer: refused, failed, or its outcome unknown

Part failures of optional sources are *not* exceptions: they are outcomes in the
:class:`~bff_core.AggregateResult`, reported to the client in ``errors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._outcome import PartOutcome

__all__ = [
    "AggregationFailed",
    "BFFError",
    "CircuitOpen",
    "ConfigurationError",
    "DeclarationError",
    "InvalidBody",
    "InvalidParameter",
    "OutcomeUnknown",
    "RequestError",
    "RequestNotSent",
    "ResponseTooLarge",
    "TransportError",
    "UnknownParts",
    "UpstreamUnavailable",
    "WriteFailed",
    "WriteFailure",
]


class BFFError(Exception):
    """Base class of every error raised by bff-core."""


class ConfigurationError(BFFError):
    """A setting is invalid. The message names the setting (e.g. the environment variable)."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class DeclarationError(BFFError):
    """An aggregate is misdeclared: unknown template variable, cycle, duplicate name, ...

    Raised when the :class:`~bff_core.Aggregate` is constructed, so a service with a broken
    declaration fails at import/start-up, never while serving a request.
    """


class RequestError(BFFError):
    """The request cannot be served as asked; the client should fix it (HTTP 400)."""

    def __init__(self, message: str, *, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class InvalidParameter(RequestError):
    """A request parameter is missing, empty, too long or otherwise not acceptable."""


class UnknownParts(RequestError):
    """``fields`` names parts that the aggregate does not have."""

    def __init__(self, unknown: Sequence[str], valid: Sequence[str]) -> None:
        super().__init__(
            f"unknown part(s) {', '.join(sorted(unknown))}; valid parts are {', '.join(valid)}",
            parameter="fields",
        )
        self.unknown = tuple(sorted(unknown))
        self.valid = tuple(valid)


class InvalidBody(RequestError):
    """A write's body is not JSON, or not what its mutation declares (HTTP 422).

    ``fields`` are the JSON paths of the invalid fields (``$.quantity``; empty when the body
    as a whole is wrong). The message names them and what was expected, never the value
    sent, so a problem built from it never echoes the body.
    """

    def __init__(self, message: str, *, fields: Sequence[str] = ()) -> None:
        super().__init__(message, parameter="body")
        self.fields = tuple(fields)


class TransportError(BFFError):
    """Raised by a :class:`~bff_core.Transport` for a failure it can name."""


class UpstreamUnavailable(TransportError):
    """The upstream could not be reached, refused the connection or dropped it mid-answer."""


class RequestNotSent(UpstreamUnavailable):
    """The request could not be sent as it is: a header value no HTTP client accepts (a line
    break, a control character, or for httpx anything outside ASCII), usually from what the
    client supplied (its token's subject). Nothing reached the upstream.

    It is that request's failure, reported like an unreachable upstream (``unavailable``),
    and never the upstream's: circuit breakers do not count it and it is not retried (it would
    fail the same way). A :class:`~bff_core.Transport` raises it for a request its library
    refuses to build.
    """


class OutcomeUnknown(UpstreamUnavailable):
    """A write (``PUT``/``POST``) may have reached the upstream, and whether it took effect is
    unknown: the connection was lost after the request was sent, or the deadline passed (or a
    client timeout fired) while its answer was awaited.

    A :class:`~bff_core.Transport`'s ``send`` raises it for a connection lost once the request
    may have been written; the resilience layer raises it when the deadline passes after
    sending. Plain :class:`UpstreamUnavailable` from ``send`` means the request certainly did
    not leave (the connection could not be made or was refused), which is safe to retry even
    for a ``POST``; this one never is. Breakers count it like any unreachable upstream.
    """

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        #: True when the deadline (or a client timeout) passed, False when the connection
        #: was lost: the edge answers 504 or 502 accordingly.
        self.timed_out = timed_out


class ResponseTooLarge(TransportError):
    """The upstream's body is longer than the transport accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit


class CircuitOpen(TransportError):
    """The upstream service's circuit breaker is open: the request was not sent.

    Raised by the gateway's resilience layer (never by a transport) while a service has failed
    too often lately; the part's outcome is ``circuit_open``.
    """

    def __init__(self, service: str) -> None:
        super().__init__(f"circuit breaker of upstream {service!r} is open: request not sent")
        self.service = service


class AggregationFailed(BFFError):
    """A critical part failed, so the aggregate has no answer.

    ``status`` is the HTTP status a gateway should answer with: 404 when the critical upstream
    said 404 (the thing asked for does not exist), 504 when it timed out, 502 otherwise.
    ``failures`` are the outcomes of every failed part, critical or not.
    """

    def __init__(
        self,
        aggregate: str,
        critical: PartOutcome,
        failures: Sequence[PartOutcome],
        outcomes: Sequence[PartOutcome] = (),
    ) -> None:
        self.aggregate = aggregate
        self.critical = critical
        self.failures = tuple(failures)
        #: every part's outcome, the successful ones too (for logs)
        self.outcomes = tuple(outcomes) or self.failures
        self.status = _status_for(critical)
        super().__init__(
            f"aggregate {aggregate!r}: critical part {critical.name!r} failed "
            f"({critical.describe()})"
        )


def _status_for(outcome: PartOutcome) -> int:
    if outcome.reason == "upstream_status" and outcome.upstream_status == 404:
        return 404
    if outcome.reason == "timeout":
        return 504
    return 502


#: Why a write has no answer (:class:`WriteFailed`), and the status a gateway answers with.
WriteFailure = Literal[
    "unauthenticated",  # 401: no verified caller
    "rejected",  # the upstream's own 4xx (an empty cart's 409, an unknown id's 404), passed on
    "upstream_status",  # 502: the upstream answered 5xx or 429
    "unavailable",  # 502: the request did not leave (no connection)
    "circuit_open",  # 503: the breaker refused it: nothing was sent
    "timeout",  # 504: the deadline passed before the request left
    "outcome_unknown",  # 504 (deadline) or 502 (connection lost): it may have taken effect
    "bad_answer",  # 502: the write succeeded, its answer is not the declared type
]


class WriteFailed(BFFError):
    """A write (:class:`~bff_core.Mutation`) has no answer to give.

    ``reason`` says why and ``status`` is the HTTP status a gateway answers with. An
    ``outcome_unknown`` write may have taken effect: the client must not assume either way
    (with an ``Idempotency-Key``, sending it again with the same key is safe).
    """

    def __init__(
        self,
        mutation: str,
        reason: WriteFailure,
        status: int,
        detail: str,
        *,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(f"mutation {mutation!r}: {detail}")
        self.mutation = mutation
        self.reason: WriteFailure = reason
        self.status = status
        self.detail = detail
        self.upstream_status = upstream_status
