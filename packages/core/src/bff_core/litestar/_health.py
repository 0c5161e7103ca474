"""Health, readiness and metrics endpoints."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get

from .._engine import Gateway
from .._guards import TokenVerifier
from .._telemetry import METRICS_CONTENT_TYPE, Metrics
from .._upstream import UpstreamStatus
from ._edge import OPERATIONAL_OPT


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    #: what decides readiness: configuration loaded, cache reachable
    checks: dict[str, str]
    #: detail that does not: each upstream's breaker state, retries and hedges
    upstreams: dict[str, UpstreamStatus]
    #: whether breaker state is shared with the other instances (through Redis)
    breaker_sharing: str
    #: with identity configured: the provider's key set (``ok (3 keys)``, or why there are
    #: none); tokens cannot be checked without keys, but anonymous routes still serve, so it
    #: does not decide readiness
    identity: str | None = None


@get(
    "/healthz", tags=["health"], summary="Alive", sync_to_thread=False, opt={OPERATIONAL_OPT: True}
)
def healthz() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


@get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics",
    media_type=METRICS_CONTENT_TYPE,
    sync_to_thread=False,
    opt={OPERATIONAL_OPT: True},
)
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Every metric in Prometheus' text format (of every worker process); what each one means:
    docs/reference/metrics.md."""
    metrics: Metrics = request.app.state.gateway.metrics
    # The header given whole: for a text/* media type Litestar appends its own charset, which
    # the exposition format's type already names (it said "charset=utf-8" twice).
    return Response(
        metrics.exposition(),
        media_type=METRICS_CONTENT_TYPE,
        headers={"content-type": METRICS_CONTENT_TYPE},
    )


@get(
    "/readyz",
    tags=["health"],
    summary="Ready",
    responses={},
    opt={OPERATIONAL_OPT: True},
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    """Ready to serve: configuration loaded, cache reachable. 503 when a check fails.

    The answer also shows each upstream's circuit breaker, retries and hedges. An open breaker
    does not make the instance unready: it still serves what it can.
    """
    gateway: Gateway = request.app.state.gateway
    verifier: TokenVerifier | None = request.app.state.get("verifier")
    checks = await gateway.readiness()
    ready = all(value.startswith("ok") for value in checks.values())
    return Response(
        Readiness(
            status="ready" if ready else "not ready",
            checks=checks,
            upstreams=gateway.upstream_status(),
            breaker_sharing=gateway.breaker_sharing(),
            identity=verifier.keys.describe() if verifier is not None else None,
        ),
        status_code=200 if ready else 503,
    )
