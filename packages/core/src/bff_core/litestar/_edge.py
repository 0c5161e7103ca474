"""The middleware around every route: request id, metrics, access log, server span."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from time import perf_counter
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from .._logs import ACCESS_LOGGER
from .._metrics import Metrics
from .._tracing import Tracing

REQUEST_ID_HEADER = "x-request-id"


_REQUEST_ID = REQUEST_ID_HEADER.encode()


#: What a client may send as its request id: a token of up to 128 visible characters.
_REQUEST_ID_PATTERN = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


#: Where the edge middleware leaves what the handler learned, for the access log.
_STATE_KEY = "bff"


def _edge(
    metrics: Metrics | None, access_log: bool, tracing: Tracing | None
) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware around every route: the request id (the client's ``X-Request-ID`` if it is
    a sane token, else a new one) in the response and in every upstream request, each
    request's route, status and duration in the metrics, and the access log line."""
    access = logging.getLogger(ACCESS_LOGGER)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def edge(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            method = scope["method"]
            started = perf_counter()
            given = _header(scope, _REQUEST_ID)
            request_id = (
                given
                if given is not None and _REQUEST_ID_PATTERN.fullmatch(given)
                else uuid.uuid4().hex.encode()
            )
            seen: dict[str, Any] = {"request_id": request_id.decode()}
            scope.setdefault("state", {})[_STATE_KEY] = seen
            status = 500  # unless an answer starts: the request failed without one

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", ()), (_REQUEST_ID, request_id)]
                await send(message)

            route = scope.get("path_template") or "unmatched"
            if tracing is not None:
                span, token = tracing.start_request(
                    method, route, scope["headers"], scope.get("path", "")
                )
            try:
                await app(scope, receive, sending)
            finally:
                elapsed = perf_counter() - started
                if tracing is not None:
                    tracing.end_request(span, token, status)
                if metrics is not None:
                    metrics.observe_request(route, method, status, elapsed)
                if access_log:
                    _log_access(access, scope, method, route, status, elapsed, seen)

        return edge

    return middleware


def _log_access(
    access: logging.Logger,
    scope: Scope,
    method: str,
    route: str,
    status: int,
    elapsed: float,
    seen: dict[str, Any],
) -> None:
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
        for o in seen.get("outcomes", ())
    ]
    described = " ".join(
        f"{p['source']}={p['outcome']}" + (f"({p['cache']})" if "cache" in p else "") for p in parts
    )
    access.info(
        "%s %s %d %.1fms %s%s",
        method,
        target,
        status,
        elapsed * 1000,
        seen["request_id"],
        f" {described}" if described else "",
        extra={
            "event": "request",
            "request_id": seen["request_id"],
            "method": method,
            "route": route,
            "path": path,
            "query": query,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            **({"parts": parts} if parts else {}),
            **({"answer_cache": seen["answer_cache"]} if "answer_cache" in seen else {}),
        },
    )


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
