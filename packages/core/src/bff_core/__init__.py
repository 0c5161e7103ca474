"""bff-core: the concurrent fetch-and-merge engine of a Backend-for-Frontend gateway.

Declare an :class:`Aggregate` of :class:`Source` requests, give a :class:`Gateway` the base
URLs of the services, and ``await gateway.run(aggregate, params)``: every part ends in exactly
one outcome, reported in the :class:`AggregateResult`. Litestar wiring is in
:mod:`bff_core.litestar`.
"""

from ._declaration import Aggregate, Param, Source
from ._engine import Gateway
from ._errors import (
    AggregationFailed,
    BFFError,
    ConfigurationError,
    DeclarationError,
    InvalidParameter,
    RequestError,
    ResponseTooLarge,
    TransportError,
    UnknownParts,
    UpstreamUnavailable,
)
from ._outcome import AggregateResult, FailureReason, PartOutcome
from ._report import PartError, Problem, part_errors, problem_for
from ._settings import GatewaySettings
from ._transport import DEFAULT_MAX_BODY_BYTES, Transport, UpstreamResponse

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "Aggregate",
    "AggregateResult",
    "AggregationFailed",
    "BFFError",
    "ConfigurationError",
    "DeclarationError",
    "FailureReason",
    "Gateway",
    "GatewaySettings",
    "InvalidParameter",
    "Param",
    "PartError",
    "PartOutcome",
    "Problem",
    "RequestError",
    "ResponseTooLarge",
    "Source",
    "Transport",
    "TransportError",
    "UnknownParts",
    "UpstreamResponse",
    "UpstreamUnavailable",
    "part_errors",
    "problem_for",
]
