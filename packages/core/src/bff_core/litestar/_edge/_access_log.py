"""One access log line per request, once it is answered: method, target, status, duration,
request id and every part's outcome (the ``bff.access`` logger)."""

from __future__ import annotations

import logging

from ..._telemetry import ACCESS_LOGGER
from ._exchange import Exchange
from ._filter import Filter

__all__ = ["AccessLog"]


class AccessLog(Filter):
    """Logs each request when it is over, with what the route left in the exchange."""

    __slots__ = ("_logger",)

    def __init__(self) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)

    def on_done(self, exchange: Exchange) -> None:
        scope = exchange.scope
        method = exchange.method
        status = exchange.status
        elapsed = exchange.elapsed
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("path", "")
        target = f"{path}?{query}" if query else path
        parts = [
            {
                "source": o.name,
                "outcome": o.reason or "ok",
                "duration_ms": round(o.duration * 1000, 2),
                **({"cache": o.cache} if o.cache is not None else {}),
                **({"status": o.upstream_status} if o.reason == "upstream_status" else {}),
            }
            for o in exchange.outcomes
        ]
        described = " ".join(
            f"{p['source']}={p['outcome']}" + (f"({p['cache']})" if "cache" in p else "")
            for p in parts
        )
        answer_cache = exchange.answer_cache
        extra: dict[str, object] = {
            "event": "request",
            "request_id": exchange.request_id,
            "method": method,
            "route": exchange.route,
            "path": path,
            "query": query,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        }
        if parts:
            extra["parts"] = parts
        if answer_cache is not None:
            extra["answer_cache"] = answer_cache
        write = exchange.write
        if write is not None:
            extra["mutation"] = write.mutation
            extra["write"] = write.outcome
            if write.idempotency is not None:
                extra["idempotency"] = write.idempotency
            if write.upstream_status is not None:
                extra["upstream_status"] = write.upstream_status
            key = f" idempotency={write.idempotency}" if write.idempotency is not None else ""
            note = f"{write.mutation}={write.outcome}{key}"
            described = f"{described} {note}" if described else note
        self._logger.info(
            "%s %s %d %.1fms %s%s",
            method,
            target,
            status,
            elapsed * 1000,
            exchange.request_id,
            f" {described}" if described else "",
            extra=extra,
        )
