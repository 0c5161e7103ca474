"""Each injected fault really happens, on the wire."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from demo_upstreams import Fault, create_app

from .conftest import ServerFactory, Upstream


async def _timed_get(upstream: Upstream, path: str) -> tuple[float, int]:
    start = time.perf_counter()
    status, _, _ = await upstream.get_raw(path)
    return time.perf_counter() - start, status


async def test_status(upstream: Upstream) -> None:
    await upstream.put_fault("reviews", {"status": 503})
    status, content_type, body = await upstream.get_raw("/reviews/p-1001")
    assert (status, content_type) == (503, "application/json")
    assert "503" in json.loads(body)["error"]
    # Only the faulty service is affected.
    assert (await upstream.get("/prices/p-1001"))[0] == 200


async def test_status_applies_to_unknown_ids_too(upstream: Upstream) -> None:
    await upstream.put_fault("inventory", {"status": 500})
    assert (await upstream.get("/inventory/nope"))[0] == 500


async def test_hang_until_client_gives_up(upstream: Upstream) -> None:
    await upstream.put_fault("product", {"hang": True})
    start = time.perf_counter()
    with pytest.raises(asyncio.TimeoutError):
        async with upstream.http.get(
            upstream.url + "/products/p-1001", timeout=aiohttp.ClientTimeout(total=0.3)
        ) as response:
            await response.read()
    assert 0.25 < time.perf_counter() - start < 2
    await upstream.reset()
    assert (await upstream.get("/products/p-1001"))[0] == 200


async def test_hung_handlers_do_not_block_shutdown(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    async with server_factory(latency_scale=0, faults={"pricing": Fault(hang=True)}) as url:
        pending = asyncio.create_task(http.get(url + "/prices/p-1001"))
        for _ in range(100):  # until the request is being handled
            async with http.get(url + "/admin/requests") as response:
                if (await response.json())["pricing"]["count"]:
                    break
            await asyncio.sleep(0.01)
        start = time.perf_counter()
    # Leaving the block ran runner.cleanup(), whose default grace period is 60 s.
    assert time.perf_counter() - start < 2
    with pytest.raises(aiohttp.ClientConnectionError):
        await pending


async def test_drop_closes_the_connection(upstream: Upstream) -> None:
    await upstream.put_fault("inventory", {"drop": True})
    with pytest.raises(aiohttp.ClientConnectionError):
        await upstream.get_raw("/inventory/p-1001")
    # A fresh connection is served normally afterwards.
    await upstream.reset()
    assert (await upstream.get("/inventory/p-1001"))[0] == 200


async def test_malformed(upstream: Upstream) -> None:
    await upstream.put_fault("pricing", {"malformed": True})
    status, content_type, body = await upstream.get_raw("/prices/p-1001")
    assert (status, content_type) == (200, "application/json")
    assert body
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_malformed_product_list(upstream: Upstream) -> None:
    await upstream.put_fault("product", {"malformed": True})
    status, _, body = await upstream.get_raw("/products?ids=p-1001,p-1002")
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_wrong_shape(upstream: Upstream) -> None:
    await upstream.put_fault("product", {"wrong_shape": True})
    status, body = await upstream.get("/products/p-1001")
    assert status == 200
    assert not isinstance(body, dict)
    status, body = await upstream.get("/products?ids=p-1001")
    assert status == 200
    assert not isinstance(body, list)


@pytest.mark.parametrize("size", [2, 10, 14, 100, 3_000_000])
async def test_huge_bytes(upstream: Upstream, size: int) -> None:
    await upstream.put_fault("reviews", {"huge_bytes": size})
    status, content_type, body = await upstream.get_raw("/reviews/p-1001")
    assert (status, content_type) == (200, "application/json")
    assert len(body) == size
    assert isinstance(json.loads(body), dict)


async def test_added_latency(upstream: Upstream) -> None:
    await upstream.put_fault("pricing", {"latency_ms": 150})
    elapsed, status = await _timed_get(upstream, "/prices/p-1001")
    assert status == 200
    assert elapsed >= 0.15


async def test_latency_then_status(upstream: Upstream) -> None:
    await upstream.put_fault("reviews", {"latency_ms": 100, "status": 502})
    elapsed, status = await _timed_get(upstream, "/reviews/p-1001")
    assert status == 502
    assert elapsed >= 0.1


async def test_status_with_malformed_body(upstream: Upstream) -> None:
    await upstream.put_fault("reviews", {"status": 500, "malformed": True})
    status, _, body = await upstream.get_raw("/reviews/p-1001")
    assert status == 500
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_rate_zero_never_applies(upstream: Upstream) -> None:
    await upstream.put_fault("pricing", {"status": 503, "rate": 0})
    statuses = {(await upstream.get("/prices/p-1001"))[0] for _ in range(30)}
    assert statuses == {200}


async def test_rate_half_applies_sometimes(upstream: Upstream) -> None:
    await upstream.put_fault("pricing", {"status": 503, "rate": 0.5})
    # Two hundred draws: both outcomes missing has a probability of about 1e-60.
    statuses = [(await upstream.get("/prices/p-1001"))[0] for _ in range(200)]
    assert set(statuses) == {200, 503}
    assert (await upstream.faults())["pricing"]["rate"] == 0.5


async def test_count_applies_n_times_then_clears(upstream: Upstream) -> None:
    await upstream.put_fault("inventory", {"status": 503, "count": 2})
    assert (await upstream.get("/inventory/p-1001"))[0] == 503
    assert (await upstream.faults())["inventory"]["count"] == 1
    assert (await upstream.get("/inventory/p-1001"))[0] == 503
    assert await upstream.faults() == {}
    assert (await upstream.get("/inventory/p-1001"))[0] == 200


async def test_default_latencies(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    async with server_factory() as url:
        server = Upstream(url, http)
        # Jitter is +-10 %, so each answer takes at least 90 % of the nominal latency.
        for path, nominal in (("/reviews/p-1001", 0.040), ("/prices/p-1001", 0.015)):
            elapsed, status = await _timed_get(server, path)
            assert status == 200
            assert elapsed >= nominal * 0.9


async def test_latency_scale_and_override(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    async with server_factory(latency_scale=2, latency_ms={"pricing": 120}) as url:
        server = Upstream(url, http)
        elapsed, _ = await _timed_get(server, "/inventory/p-1001")
        assert elapsed >= 0.030 * 2 * 0.9
        elapsed, _ = await _timed_get(server, "/prices/p-1001")
        assert elapsed >= 0.120 * 0.9  # explicit per-service values are not scaled


async def test_faults_from_create_app(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    app = server_factory(latency_scale=0, faults={"reviews": Fault(status=503)})
    async with app as url, http.get(url + "/reviews/p-1001") as response:
        assert response.status == 503


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency_scale": -1},
        {"faults": {"nope": Fault()}},
        {"faults": {"reviews": Fault(status=200)}},
        {"faults": {"reviews": Fault(rate=2)}},
        {"latency_ms": {"nope": 1}},
        {"latency_ms": {"pricing": -1}},
    ],
)
def test_create_app_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the messages differ per case
        create_app(**kwargs)
