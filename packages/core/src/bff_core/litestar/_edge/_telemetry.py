"""Each request's server span (when tracing is on) and its route, status and duration in the
metrics (when they are on)."""

from __future__ import annotations

from ..._telemetry import Metrics, Tracing
from ._exchange import Exchange
from ._filter import Filter, Reply

__all__ = ["RequestMetrics", "ServerSpan"]


class ServerSpan(Filter):
    """The request's server span, continuing the caller's ``traceparent``: current while the
    route runs (its parts' spans are its children), ended with the answer's status."""

    __slots__ = ("_tracing",)

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    def on_request(self, exchange: Exchange) -> Reply | None:
        scope = exchange.scope
        exchange.span, exchange.span_token = self._tracing.start_request(
            exchange.method, exchange.route, scope["headers"], scope.get("path", "")
        )
        return None

    def on_done(self, exchange: Exchange) -> None:
        self._tracing.end_request(exchange.span, exchange.span_token, exchange.status)


class RequestMetrics(Filter):
    """``bff_http_request_duration_seconds`` by route, method and status."""

    __slots__ = ("_metrics",)

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_done(self, exchange: Exchange) -> None:
        self._metrics.observe_request(
            exchange.route, exchange.method, exchange.status, exchange.elapsed
        )
