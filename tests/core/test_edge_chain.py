"""The edge's filter chain, in-process: which filters a configuration puts in it, and the order
of effects on the three kinds of answer (the route's, the edge's own, the guard's)."""

from __future__ import annotations

from bff_core import Gateway
from bff_core._guards import RateLimits, parse_limits
from bff_core._telemetry import Metrics
from bff_core.litestar import GatewayPlugin
from bff_core.litestar._edge import Compression, CorsPolicy, edge_filters
from litestar import Litestar
from litestar.handlers import asgi
from litestar.testing import TestClient
from litestar.types import Receive, Scope, Send

ORIGIN = "https://shop.example"
BODY = b'{"name": "' + b"x" * 1000 + b'"}'
EXPOSED = (
    "etag, server-timing, x-request-id, retry-after, ratelimit, ratelimit-policy, www-authenticate"
    ", idempotent-replayed"
)


@asgi("/item", copy_scope=False)
async def item(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
        (b"vary", b"Accept"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY, "more_body": False})


def _client(*, limit: str | None = None) -> TestClient[Litestar]:
    plugin = GatewayPlugin(
        Gateway(services={}, metrics=Metrics()),
        cors=CorsPolicy.from_setting(ORIGIN),
        compression=Compression(min_bytes=64),
        rate_limits=RateLimits(parse_limits(limit)) if limit else None,
    )
    return TestClient(Litestar([item], plugins=[plugin], logging_config=None))


def _names(raw: list[tuple[bytes, bytes]]) -> list[str]:
    return [name.decode().lower() for name, _ in raw]


def test_what_is_not_configured_is_not_in_the_chain() -> None:
    assert [type(f).__name__ for f in edge_filters()] == ["RequestId", "Hygiene", "Nosniff"]
    every = edge_filters(
        metrics=Metrics(),
        access_log=True,
        cors=CorsPolicy.from_setting(ORIGIN),
        compression=Compression(),
        rate_limits=RateLimits(parse_limits("5/second")),
    )
    assert [type(f).__name__ for f in every] == [
        "RequestId",
        "Hygiene",
        "CorsPolicy",
        "Nosniff",
        "Compression",
        "RequestMetrics",
        "AccessLog",
        "Guard",
    ]


def test_the_routes_answer_gets_the_edges_headers_in_order_and_is_compressed() -> None:
    with _client() as client:
        response = client.get("/item", headers={"origin": ORIGIN, "accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.content == BODY  # decompressed by the client
    assert _names(response.headers.raw) == [
        "content-type",
        "vary",
        "x-request-id",
        "vary",
        "access-control-allow-origin",
        "access-control-expose-headers",
        "x-content-type-options",
        "vary",
        "content-encoding",
        "content-length",
    ]
    assert response.headers.get_list("vary") == ["Accept", "Origin", "Accept-Encoding"]
    assert response.headers["access-control-expose-headers"] == EXPOSED


def test_a_refused_request_carries_the_cors_headers_but_is_not_compressed() -> None:
    with _client() as client:
        response = client.get(
            "/item?q=" + "x" * 3000, headers={"origin": ORIGIN, "accept-encoding": "gzip"}
        )
    assert response.status_code == 414
    assert _names(response.headers.raw) == [
        "content-type",
        "cache-control",
        "x-content-type-options",
        "x-request-id",
        "vary",
        "access-control-allow-origin",
        "access-control-expose-headers",
        "content-length",
    ]


def test_a_refused_preflight_is_the_refusal_without_the_cors_headers() -> None:
    with _client() as client:
        response = client.options(
            "/item?q=" + "x" * 3000,
            headers={"origin": ORIGIN, "access-control-request-method": "GET"},
        )
    assert response.status_code == 414
    assert _names(response.headers.raw) == [
        "content-type",
        "cache-control",
        "x-content-type-options",
        "x-request-id",
        "content-length",
    ]


def test_a_preflight_is_answered_by_the_edge() -> None:
    with _client() as client:
        response = client.options(
            "/item", headers={"origin": ORIGIN, "access-control-request-method": "GET"}
        )
    assert response.status_code == 204
    assert _names(response.headers.raw) == [
        "vary",
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-max-age",
        "x-request-id",
        "x-content-type-options",
        "content-length",
    ]


def test_the_guards_refusal_passes_the_response_sides_like_an_answer() -> None:
    with _client(limit="1/minute") as client:
        assert client.get("/item").status_code == 200
        response = client.get(
            "/item",
            headers={"origin": ORIGIN, "x-request-id": "abc-1", "accept-encoding": "gzip"},
        )
    assert response.status_code == 429
    assert _names(response.headers.raw) == [
        "content-type",
        "cache-control",
        "x-content-type-options",
        "retry-after",
        "ratelimit-policy",
        "ratelimit",
        "x-request-id",
        "vary",
        "access-control-allow-origin",
        "access-control-expose-headers",
        "vary",
        "content-encoding",
        "content-length",
    ]
    assert response.headers["x-request-id"] == "abc-1"
    assert response.headers["content-encoding"] == "gzip"
