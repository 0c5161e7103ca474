"""Every error answered as application/problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from .._errors import AggregationFailed, RequestError
from .._report import PROBLEM_JSON, Problem, problem_for
from .._telemetry import UNMATCHED
from ._edge import REQUEST_ID_HEADER, exchange_of, request_id

__all__ = [
    "on_aggregation_failed",
    "on_http_exception",
    "on_request_error",
    "on_unexpected",
]

logger = logging.getLogger("bff_core")


_problem_encoder = msgspec.json.Encoder()


def _problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[bytes]:
    # An error is about this request only: no cache may keep it.
    return Response(
        _problem_encoder.encode(problem),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers={
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
            **(headers or {}),
        },
    )


def on_aggregation_failed(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, AggregationFailed)
    timing = ", ".join(
        f'{o.name};dur={o.duration * 1000:.1f};desc="{o.reason}"' for o in exc.failures
    )
    return _problem_response(
        problem_for(exc, instance=request.url.path), headers={"server-timing": timing}
    )


def on_request_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, RequestError)
    return _problem_response(problem_for(exc, instance=request.url.path))


def on_http_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        detail = f"{detail}: {exc.extra}"
    title = _status_phrase(exc.status_code)
    headers = dict(exc.headers or {})
    if exchange_of(request.scope) is None:
        # No route matched, so the edge did not run: the answer still gets its id, and is
        # counted under one route label whatever the path (the router answered at once: no
        # duration to measure).
        headers[REQUEST_ID_HEADER] = request_id(request.scope)
        gateway = request.app.state.get("gateway")
        if gateway is not None and gateway.metrics is not None:
            gateway.metrics.observe_request(
                request.scope.get("path_template") or UNMATCHED,
                request.scope["method"],
                exc.status_code,
                0.0,
            )
    return _problem_response(
        Problem(
            type="about:blank",
            title=title,
            status=exc.status_code,
            detail=detail or title,
            instance=request.url.path,
        ),
        headers=headers,
    )


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _problem_response(
        Problem(
            type="about:blank",
            title="Internal Server Error",
            status=500,
            detail="the gateway failed unexpectedly; the error is logged",
            instance=request.url.path,
        )
    )


def _status_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
