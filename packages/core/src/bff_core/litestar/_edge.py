"""The middleware around every route: request id, hygiene, metrics, access log, server span,
CORS and compression."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from time import perf_counter
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from .._report import PROBLEM_JSON, Problem
from .._telemetry import ACCESS_LOGGER, Metrics, Tracing
from ._compression import Compression
from ._cors import CorsPolicy

REQUEST_ID_HEADER = "x-request-id"


_REQUEST_ID = REQUEST_ID_HEADER.encode()


#: What a client may send as its request id: a token of up to 128 visible characters.
_REQUEST_ID_PATTERN = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


#: Where the edge middleware leaves what the handler learned, for the access log.
_STATE_KEY = "bff"


def _edge(
    metrics: Metrics | None,
    access_log: bool,
    tracing: Tracing | None,
    cors: CorsPolicy | None = None,
    compression: Compression | None = None,
) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware around every route: the request id (the client's ``X-Request-ID`` if it is
    a sane token, else a new one) in the response and in every upstream request; requests too
    large or with a body where none belongs refused; each request's route, status and duration
    in the metrics, its access log line and its server span; CORS; compression."""
    access = logging.getLogger(ACCESS_LOGGER)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def edge(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            method = scope["method"]
            started = perf_counter()
            request_id = _request_id(scope)
            seen: dict[str, Any] = {"request_id": request_id}
            scope.setdefault("state", {})[_STATE_KEY] = seen
            status = 500  # unless an answer starts: the request failed without one
            extra = [(_REQUEST_ID, request_id.encode())]
            preflight: tuple[bytes, bytes] | None = None
            refused = _refusal(scope, method)
            if cors is not None:
                origin = _header(scope, b"origin")
                asked = _header(scope, b"access-control-request-method")
                if method == "OPTIONS" and origin is not None and asked is not None:
                    preflight = (origin, asked)
                else:
                    extra += cors.answer_headers(origin)

            encoding = (
                None
                if compression is None
                else compression.choose(_header(scope, b"accept-encoding"))
            )
            held: HTTPResponseStartEvent | None = None

            async def sending(message: Message) -> None:
                nonlocal status, held
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = [*message.get("headers", ()), *extra]
                    # One pass over the answer's headers for what the edge adds or decides.
                    nosniff = encoded = False
                    content_type = None
                    for name, value in headers:
                        name = name.lower()
                        if name == b"content-type":
                            content_type = value
                        elif name == _NOSNIFF[0]:
                            nosniff = True
                        elif name == b"content-encoding":
                            encoded = True
                    if not nosniff:
                        headers.append(_NOSNIFF)
                    message["headers"] = headers
                    if (
                        compression is not None
                        and not encoded  # already encoded
                        and compression.compressible(content_type)
                    ):
                        headers.append((b"vary", b"Accept-Encoding"))
                        if encoding is not None and status not in (204, 304):
                            held = message  # until the body says whether it is worth it
                            return
                elif held is not None and message["type"] == "http.response.body":
                    assert compression is not None and encoding is not None
                    start, held = held, None
                    body = message.get("body", b"")
                    if not message.get("more_body") and len(body) >= compression.min_bytes:
                        body = compression.compress(encoding, body)
                        start["headers"] = [
                            *(h for h in start["headers"] if h[0].lower() != b"content-length"),
                            (b"content-encoding", encoding.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ]
                        message = {"type": "http.response.body", "body": body, "more_body": False}
                    await send(start)
                await send(message)

            route = scope.get("path_template") or "unmatched"
            if tracing is not None:
                span, token = tracing.start_request(
                    method, route, scope["headers"], scope.get("path", "")
                )
            try:
                if refused is not None:
                    status = await _send_problem(refused, extra, send)
                elif preflight is not None:
                    assert cors is not None
                    status = await _preflight(
                        cors, *preflight, _header(scope, _ASKED_HEADERS), extra, send
                    )
                else:
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


_ASKED_HEADERS = b"access-control-request-headers"


async def _preflight(
    cors: CorsPolicy,
    origin: bytes,
    method: bytes,
    requested: bytes | None,
    extra: list[tuple[bytes, bytes]],
    send: Send,
) -> int:
    status, headers, problem = cors.preflight(origin, method, requested)
    if problem is not None:
        return await _send_problem(problem, [*headers, *extra], send)
    headers = [*headers, *extra, _NOSNIFF, (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return status


#: Every answer: browsers must not guess another type than the one declared.
_NOSNIFF = (b"x-content-type-options", b"nosniff")
#: Longer query strings are refused (an aggregate's parameters are ids, not documents).
MAX_QUERY_BYTES = 2048
#: More header bytes in all are refused (room for an 8 KB bearer token and the rest).
MAX_HEADER_BYTES = 16384
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def _refusal(scope: Scope, method: str) -> Problem | None:
    """What is wrong with the request before any route looks at it, if anything."""
    if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
        return Problem(
            type="urn:bff:problem:uri-too-long",
            title="URI Too Long",
            status=414,
            detail=f"the query string is over {MAX_QUERY_BYTES} bytes",
        )
    headers = scope["headers"]
    if sum(len(name) + len(value) for name, value in headers) > MAX_HEADER_BYTES:
        return Problem(
            type="urn:bff:problem:headers-too-large",
            title="Request Header Fields Too Large",
            status=431,
            detail=f"the request's headers are over {MAX_HEADER_BYTES} bytes in all",
        )
    if method in _BODILESS:
        for name, value in headers:
            if (name == b"content-length" and value.strip() not in (b"", b"0")) or (
                name == b"transfer-encoding"
            ):
                return Problem(
                    type="urn:bff:problem:unexpected-body",
                    title="Bad Request",
                    status=400,
                    detail=f"a {method} request has no body here",
                )
    return None


async def _send_problem(problem: Problem, extra: list[tuple[bytes, bytes]], send: Send) -> int:
    body = msgspec.json.encode(problem)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"cache-control", b"no-store"),
        _NOSNIFF,
        *extra,
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
    return problem.status


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


def _request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID`` if it is a sane token, else a new id."""
    given = _header(scope, _REQUEST_ID)
    if given is not None and _REQUEST_ID_PATTERN.fullmatch(given):
        return given.decode()
    # 128 random bits in 32 hex digits, as uuid4().hex gave, without building a UUID object.
    return os.urandom(16).hex()


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
