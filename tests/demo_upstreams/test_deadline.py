"""Deadline awareness: ``x-request-timeout-ms`` makes a slow service give up (504) instead of
working for nobody, and a client that leaves early is counted as having abandoned its request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from .conftest import ServerFactory, Upstream

HEADER = "x-request-timeout-ms"


async def timed_get(
    upstream: Upstream, path: str, headers: dict[str, str] | None = None
) -> tuple[float, int, aiohttp.ClientResponse, bytes]:
    started = time.perf_counter()
    async with upstream.http.get(upstream.url + path, headers=headers) as response:
        body = await response.read()
    return time.perf_counter() - started, response.status, response, body


async def eventually(
    upstream: Upstream, condition: Callable[[Any], bool], within: float = 2.0
) -> Any:
    """The request log once ``condition(log)`` holds; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        log = await upstream.requests()
        if condition(log):
            return log
        if time.monotonic() >= deadline:
            pytest.fail(f"request log never got there: {log}")
        await asyncio.sleep(0.02)


async def leave_early(upstream: Upstream, path: str, after: float) -> None:
    """Send a request and close the connection after ``after`` seconds without an answer."""
    with pytest.raises(TimeoutError):
        async with upstream.http.get(
            upstream.url + path, timeout=aiohttp.ClientTimeout(total=after)
        ) as response:
            await response.read()


async def test_a_deadline_shorter_than_the_work_makes_the_service_give_up(
    upstream: Upstream,
) -> None:
    await upstream.put_fault("pricing", {"latency_ms": 400})
    # Header names are case-insensitive.
    elapsed, status, response, body = await timed_get(
        upstream, "/prices/p-1001", {"X-Request-Timeout-Ms": "60"}
    )
    assert status == 504
    assert response.content_type == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert json.loads(body) == {"error": "gave up after 60 ms: the caller's deadline passed"}
    # It waited for the budget, not for the work.
    assert 0.06 <= elapsed < 0.3
    log = await upstream.requests()
    assert log["pricing"]["count"] == 1
    assert (log["pricing"]["gave_up"], log["pricing"]["abandoned"]) == (1, 0)
    assert log["pricing"]["requests"][0]["headers"][HEADER] == "60"
    for other in ("product", "inventory", "reviews"):
        assert (log[other]["count"], log[other]["gave_up"]) == (0, 0)


async def test_the_budget_covers_the_services_own_latency_too(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    # No fault at all: 150 ms is the service's normal latency, more than the 20 ms budget.
    async with server_factory(latency_scale=0, latency_ms={"reviews": 150}) as url:
        server = Upstream(url, http)
        _, status, _, _ = await timed_get(server, "/reviews/p-1001", {HEADER: "20"})
        assert status == 504
        assert (await server.requests())["reviews"]["gave_up"] == 1


@pytest.mark.parametrize("budget", ["500", "100000", None], ids=["longer", "much-longer", "none"])
async def test_a_deadline_longer_than_the_work_or_none_changes_nothing(
    upstream: Upstream, budget: str | None
) -> None:
    await upstream.put_fault("inventory", {"latency_ms": 100})
    headers = None if budget is None else {HEADER: budget}
    elapsed, status, _, body = await timed_get(upstream, "/inventory/p-1001", headers)
    assert status == 200
    assert json.loads(body)["product_id"] == "p-1001"
    assert elapsed >= 0.1
    log = await upstream.requests()
    assert (log["inventory"]["count"], log["inventory"]["gave_up"]) == (1, 0)
    assert log["inventory"]["abandoned"] == 0


async def test_errors_given_up_on_are_504_not_the_injected_status(upstream: Upstream) -> None:
    # The service gives up before it gets to misbehave.
    await upstream.put_fault("reviews", {"latency_ms": 300, "status": 503})
    _, status, _, _ = await timed_get(upstream, "/reviews/p-1001", {HEADER: "30"})
    assert status == 504
    # Without the header the injected status is answered, after the latency.
    _, status, _, _ = await timed_get(upstream, "/reviews/p-1001")
    assert status == 503
    assert (await upstream.requests())["reviews"]["gave_up"] == 1


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", "", "0x20", "1e3"])
async def test_a_malformed_deadline_is_ignored(upstream: Upstream, value: str) -> None:
    await upstream.put_fault("pricing", {"latency_ms": 80})
    elapsed, status, _, _ = await timed_get(upstream, "/prices/p-1001", {HEADER: value})
    assert status == 200
    assert elapsed >= 0.08
    log = await upstream.requests()
    assert (log["pricing"]["count"], log["pricing"]["gave_up"]) == (1, 0)


@pytest.mark.parametrize("fault", [{"latency_ms": 300}, {"hang": True}], ids=["slow", "hang"])
async def test_a_client_that_leaves_before_the_answer_is_counted_as_abandoned(
    upstream: Upstream, fault: dict[str, Any]
) -> None:
    await upstream.put_fault("product", fault)
    await leave_early(upstream, "/products/p-1001", after=0.05)
    # Noticed when the delay ends (slow), or at the hung handler's next check (hang).
    log = await eventually(upstream, lambda log: log["product"]["abandoned"] == 1)
    assert (log["product"]["count"], log["product"]["gave_up"]) == (1, 0)
    # The service still answers the next client.
    await upstream.reset()
    assert (await upstream.get("/products/p-1001"))[0] == 200
    log = await upstream.requests()
    assert (log["product"]["abandoned"], log["product"]["gave_up"]) == (0, 0)


async def test_a_client_that_waits_is_not_counted_as_abandoned(upstream: Upstream) -> None:
    await upstream.put_fault("product", {"latency_ms": 100})
    assert (await upstream.get("/products/p-1001"))[0] == 200
    await asyncio.sleep(0.05)
    log = await upstream.requests()
    assert (log["product"]["count"], log["product"]["abandoned"]) == (1, 0)


async def test_resetting_the_request_log_clears_both_counters(upstream: Upstream) -> None:
    await upstream.put_fault("pricing", {"latency_ms": 200})
    await timed_get(upstream, "/prices/p-1001", {HEADER: "10"})
    await leave_early(upstream, "/prices/p-1001", after=0.05)
    await eventually(
        upstream, lambda log: (log["pricing"]["gave_up"], log["pricing"]["abandoned"]) == (1, 1)
    )
    async with upstream.http.delete(upstream.url + "/admin/requests") as response:
        assert response.status == 204
    log = await upstream.requests()
    assert log["pricing"] == {"count": 0, "requests": [], "abandoned": 0, "gave_up": 0}
