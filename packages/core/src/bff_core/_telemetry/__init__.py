"""What the gateway tells operators: Prometheus metrics, OpenTelemetry traces, and logs.

- ``_metrics``: :class:`Metrics` (one registry, shared across worker processes) and each
  upstream service's :class:`UpstreamMeter`;
- ``_tracing``: :class:`Tracing`, a span per part and per write, and the trace context sent
  upstream;
- ``_logs``: JSON log lines and the access logger;
- ``_labels``: the bounded values of what a client's request chooses (its method, its route).
"""

from ._labels import METHODS, UNMATCHED, method_label
from ._logs import ACCESS_LOGGER, JsonFormatter, configure_logging
from ._metrics import (
    CACHE_RESULTS,
    EDGE_REFUSALS,
    METRICS_CONTENT_TYPE,
    METRICS_DIR_VARIABLE,
    WRITE_OUTCOMES,
    Metrics,
    UpstreamMeter,
)
from ._tracing import PartTrace, Tracing

__all__ = [
    "ACCESS_LOGGER",
    "CACHE_RESULTS",
    "EDGE_REFUSALS",
    "METHODS",
    "METRICS_CONTENT_TYPE",
    "METRICS_DIR_VARIABLE",
    "UNMATCHED",
    "WRITE_OUTCOMES",
    "JsonFormatter",
    "Metrics",
    "PartTrace",
    "Tracing",
    "UpstreamMeter",
    "configure_logging",
    "method_label",
]
