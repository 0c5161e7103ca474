"""The admin API: fault management, validation problems and the request log."""

from __future__ import annotations

from typing import Any

import pytest
from demo_upstreams import SERVICES
from yarl import URL

from .conftest import Upstream


async def _send(
    upstream: Upstream, method: str, path: str, data: bytes = b""
) -> tuple[int, str, Any]:
    async with upstream.http.request(method, upstream.url + path, data=data) as response:
        body = await response.json(content_type=None) if response.status != 204 else None
        return response.status, response.content_type, body


async def test_put_get_delete_one(upstream: Upstream) -> None:
    assert await upstream.faults() == {}
    stored = await upstream.put_fault("reviews", {"status": 503, "rate": 0.5})
    assert stored == {"status": 503, "rate": 0.5}
    await upstream.put_fault("pricing", {"latency_ms": 300})
    assert await upstream.faults() == {
        "reviews": {"status": 503, "rate": 0.5},
        "pricing": {"latency_ms": 300.0},
    }
    status, _, _ = await _send(upstream, "DELETE", "/admin/faults/reviews")
    assert status == 204
    assert await upstream.faults() == {"pricing": {"latency_ms": 300.0}}


async def test_put_replaces(upstream: Upstream) -> None:
    await upstream.put_fault("product", {"status": 503, "latency_ms": 10})
    await upstream.put_fault("product", {"drop": True})
    assert await upstream.faults() == {"product": {"drop": True}}


async def test_delete_all(upstream: Upstream) -> None:
    for service in SERVICES:
        await upstream.put_fault(service, {"status": 500})
    status, _, _ = await _send(upstream, "DELETE", "/admin/faults")
    assert status == 204
    assert await upstream.faults() == {}
    assert (await upstream.get("/products/p-1001"))[0] == 200


async def test_curl_style_form_body_is_read_as_json(upstream: Upstream) -> None:
    # `curl -X PUT ... -d '{"status":503}'` sends application/x-www-form-urlencoded.
    async with upstream.http.put(
        upstream.url + "/admin/faults/reviews",
        data=b'{"status":503}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as response:
        assert response.status == 200
    assert (await upstream.get("/reviews/p-1001"))[0] == 503


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_unknown_service_is_404_problem(upstream: Upstream, method: str) -> None:
    status, content_type, body = await _send(
        upstream, method, "/admin/faults/shipping", b'{"status":503}'
    )
    assert (status, content_type) == (404, "application/problem+json")
    assert body["status"] == 404
    assert "shipping" in body["detail"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"latency_ms": -1}', "latency_ms"),
        (b'{"status": 200}', "status"),
        (b'{"status": 600}', "status"),
        (b'{"status": "503"}', "status"),
        (b'{"rate": 1.5}', "rate"),
        (b'{"rate": -0.1}', "rate"),
        (b'{"count": 0}', "count"),
        (b'{"huge_bytes": -5}', "huge_bytes"),
        (b'{"hang": "yes"}', "hang"),
        (b'{"explode": true}', "explode"),
        (b'[{"status": 503}]', "object"),
        (b'{"status": 503', "JSON"),
        (b"status=503", "JSON"),
        (b"", "empty"),
    ],
)
async def test_invalid_fault_is_400_problem(upstream: Upstream, body: bytes, named: str) -> None:
    status, content_type, problem = await _send(upstream, "PUT", "/admin/faults/pricing", body)
    assert (status, content_type) == (400, "application/problem+json")
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == 400
    assert named in problem["detail"]
    # A rejected fault changes nothing.
    assert await upstream.faults() == {}


async def test_request_log(upstream: Upstream) -> None:
    async with upstream.http.get(
        URL(upstream.url + "/products?ids=p-1001%2Cp-1002&x=%20", encoded=True),
        headers={"X-Request-Id": "abc"},
    ) as response:
        assert response.status == 200
        assert len(await response.json()) == 2
    await upstream.get("/reviews/p-1001")
    await upstream.get("/reviews/nope")
    await upstream.get("/admin/faults")
    await upstream.get("/healthz")

    log = await upstream.requests()
    assert list(log) == [
        "product",
        "inventory",
        "pricing",
        "reviews",
        "category",
        "recommendations",
        "cart",
        "orders",
    ]
    for idle in ("inventory", "pricing", "category", "recommendations", "cart", "orders"):
        assert log[idle] == {"count": 0, "requests": [], "abandoned": 0, "gave_up": 0}
    assert log["reviews"]["count"] == 2
    assert [r["path"] for r in log["reviews"]["requests"]] == ["/reviews/p-1001", "/reviews/nope"]
    (listed,) = log["product"]["requests"]
    assert listed["method"] == "GET"
    assert listed["path"] == "/products"
    assert listed["query"] == "ids=p-1001%2Cp-1002&x=%20"
    assert listed["headers"]["x-request-id"] == "abc"
    assert "host" in listed["headers"]


async def test_request_log_counts_faulted_requests(upstream: Upstream) -> None:
    await upstream.put_fault("pricing", {"status": 503})
    await upstream.get("/prices/p-1001")
    assert (await upstream.requests())["pricing"]["count"] == 1


async def test_request_log_keeps_the_last_hundred(upstream: Upstream) -> None:
    for i in range(105):
        await upstream.get_raw(f"/inventory/p-{i}")
    entry = (await upstream.requests())["inventory"]
    assert entry["count"] == 105
    assert len(entry["requests"]) == 100
    assert entry["requests"][0]["path"] == "/inventory/p-5"
    assert entry["requests"][-1]["path"] == "/inventory/p-104"


async def test_request_log_reset(upstream: Upstream) -> None:
    await upstream.get("/prices/p-1001")
    status, _, _ = await _send(upstream, "DELETE", "/admin/requests")
    assert status == 204
    assert (await upstream.requests())["pricing"] == {
        "count": 0,
        "requests": [],
        "abandoned": 0,
        "gave_up": 0,
    }
