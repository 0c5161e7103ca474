"""bff-core: the concurrent fetch-and-merge engine of a Backend-for-Frontend gateway.

Declare an :class:`Aggregate` of :class:`Source` requests, give a :class:`Gateway` the base
URLs of the services, and ``await gateway.run(aggregate, params)``: every part ends in exactly
one outcome, reported in the :class:`AggregateResult`. Litestar wiring is in
:mod:`bff_core.litestar`.
"""

from typing import TYPE_CHECKING, Any

from ._declare import (
    Aggregate,
    Batch,
    BreakerPolicy,
    CachePolicy,
    Items,
    Mutation,
    Param,
    RetryBudget,
    RetryPolicy,
    Source,
)
from ._engine import AggregateStream, Gateway, WriteResult
from ._errors import (
    AggregationFailed,
    BFFError,
    CircuitOpen,
    ConfigurationError,
    DeclarationError,
    InvalidBody,
    InvalidParameter,
    OutcomeUnknown,
    RequestError,
    RequestNotSent,
    ResponseTooLarge,
    TransportError,
    UnknownParts,
    UpstreamUnavailable,
    WriteFailed,
)
from ._outcome import (
    AggregateResult,
    CacheResult,
    FailureReason,
    Item,
    ItemFailure,
    ItemsResult,
    PartOutcome,
)
from ._report import PartError, Problem, StalePart, part_errors, problem_for, stale_parts
from ._settings import GatewaySettings, Setting
from ._telemetry import Metrics
from ._transports import (
    DEFAULT_MAX_BODY_BYTES,
    AiohttpTransport,
    Transport,
    UpstreamResponse,
    WritingTransport,
)
from ._upstream import UpstreamStatus

if TYPE_CHECKING:
    from ._transports import HttpxTransport, PyreqwestTransport

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "Aggregate",
    "AggregateResult",
    "AggregateStream",
    "AggregationFailed",
    "AiohttpTransport",
    "BFFError",
    "Batch",
    "BreakerPolicy",
    "CachePolicy",
    "CacheResult",
    "CircuitOpen",
    "ConfigurationError",
    "DeclarationError",
    "FailureReason",
    "Gateway",
    "GatewaySettings",
    "HttpxTransport",
    "InvalidBody",
    "InvalidParameter",
    "Item",
    "ItemFailure",
    "Items",
    "ItemsResult",
    "Metrics",
    "Mutation",
    "OutcomeUnknown",
    "Param",
    "PartError",
    "PartOutcome",
    "Problem",
    "PyreqwestTransport",
    "RequestError",
    "RequestNotSent",
    "ResponseTooLarge",
    "RetryBudget",
    "RetryPolicy",
    "Setting",
    "Source",
    "StalePart",
    "Transport",
    "TransportError",
    "UnknownParts",
    "UpstreamResponse",
    "UpstreamStatus",
    "UpstreamUnavailable",
    "WriteFailed",
    "WriteResult",
    "WritingTransport",
    "part_errors",
    "problem_for",
    "stale_parts",
]


def __getattr__(name: str) -> Any:
    # The httpx and pyreqwest adapters are imported on first use (httpx is optional:
    # bff-core[httpx]), so bff_core imports without them.
    if name in ("HttpxTransport", "PyreqwestTransport"):
        from . import _transports

        return getattr(_transports, name)
    raise AttributeError(f"module 'bff_core' has no attribute {name!r}")
