"""Faults on the write path: a fault strikes before the write (nothing written) unless it says
``after_write`` (written, then the caller gets the fault, or no answer: the outcome unknown)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from demo_upstreams import Fault, parse_fault_flags

from .conftest import Upstream
from .test_writes import new_user, orders_of, place, send, set_line

HEADER = "x-request-timeout-ms"


async def test_a_status_before_the_write_places_nothing(upstream: Upstream) -> None:
    user = new_user()
    await set_line(upstream, user, "p-1001", 1)
    await upstream.put_fault("orders", {"status": 503})
    status, content_type, body = await place(upstream, user)
    assert (status, content_type) == (503, "application/json")
    assert "503" in body["error"]
    assert (await orders_of(upstream, user))["count"] == 0
    assert (await upstream.get(f"/carts/{user}"))[1]["items"] != []


async def test_a_status_after_the_write_places_the_order_all_the_same(upstream: Upstream) -> None:
    user = new_user()
    await set_line(upstream, user, "p-1001", 1)
    await upstream.put_fault("orders", {"status": 503, "after_write": True})
    assert (await place(upstream, user))[0] == 503
    assert (await orders_of(upstream, user))["count"] == 1
    assert (await upstream.get(f"/carts/{user}"))[1]["items"] == []


async def test_a_hang_after_the_write_places_the_order_and_never_answers(
    upstream: Upstream,
) -> None:
    user = new_user()
    await set_line(upstream, user, "p-1003", 2)
    await upstream.put_fault("orders", {"hang": True, "after_write": True})
    started = time.perf_counter()
    with pytest.raises(asyncio.TimeoutError):
        async with upstream.http.post(
            upstream.url + "/orders",
            json={"user": user},
            # A hung service is stuck, not slow: the deadline does not end the hang.
            headers={HEADER: "100"},
            timeout=aiohttp.ClientTimeout(total=0.4),
        ) as response:
            await response.read()
    assert time.perf_counter() - started >= 0.35
    [order] = (await orders_of(upstream, user))["orders"]
    assert order["items"] == [{"product_id": "p-1003", "quantity": 2}]


async def test_a_hang_before_the_write_places_nothing(upstream: Upstream) -> None:
    user = new_user()
    await set_line(upstream, user, "p-1003", 2)
    await upstream.put_fault("orders", {"hang": True})
    with pytest.raises(asyncio.TimeoutError):
        await place_within(upstream, user, 0.3)
    assert (await orders_of(upstream, user))["count"] == 0


async def test_a_drop_after_the_write(upstream: Upstream) -> None:
    user = new_user()
    await upstream.put_fault("cart", {"drop": True, "after_write": True})
    with pytest.raises(aiohttp.ClientConnectionError):
        await send(
            upstream.http, "PUT", f"{upstream.url}/carts/{user}/items/p-1001", {"quantity": 4}
        )
    await upstream.reset()
    assert (await upstream.get(f"/carts/{user}"))[1]["items"] == [
        {"product_id": "p-1001", "quantity": 4}
    ]


async def place_within(upstream: Upstream, user: str, seconds: float) -> int:
    async with upstream.http.post(
        upstream.url + "/orders",
        json={"user": user},
        timeout=aiohttp.ClientTimeout(total=seconds),
    ) as response:
        await response.read()
        return response.status


async def test_a_deadline_that_passes_during_the_work_is_504_and_writes_nothing(
    upstream: Upstream,
) -> None:
    user = new_user()
    await set_line(upstream, user, "p-1001", 1)
    # Even with after_write: the latency comes first, and the service gives up during it.
    await upstream.put_fault("orders", {"latency_ms": 400, "after_write": True, "status": 500})
    started = time.perf_counter()
    status, _, body = await send(
        upstream.http, "POST", f"{upstream.url}/orders", {"user": user}, headers={HEADER: "60"}
    )
    assert status == 504
    assert "deadline" in body["error"]
    assert time.perf_counter() - started < 0.3
    assert (await orders_of(upstream, user))["count"] == 0
    assert (await upstream.requests())["orders"]["gave_up"] == 1


async def test_latency_delays_a_write(upstream: Upstream) -> None:
    user = new_user()
    await upstream.put_fault("cart", {"latency_ms": 200})
    started = time.perf_counter()
    await set_line(upstream, user, "p-1001", 1)
    assert time.perf_counter() - started >= 0.19


async def test_a_fault_scoped_to_a_user_spares_the_others(upstream: Upstream) -> None:
    unlucky, lucky = new_user(), new_user()
    for user in (unlucky, lucky):
        await set_line(upstream, user, "p-1001", 1)
    await upstream.put_fault("orders", {"status": 503, "ids": [unlucky]})
    assert (await place(upstream, unlucky))[0] == 503
    assert (await place(upstream, lucky))[0] == 201
    # Cart faults are scoped by the user or by the product.
    await upstream.put_fault("cart", {"status": 500, "ids": ["p-1002"]})
    status, _, _ = await send(
        upstream.http, "PUT", f"{upstream.url}/carts/{lucky}/items/p-1002", {"quantity": 1}
    )
    assert status == 500
    assert (await upstream.get(f"/carts/{lucky}"))[0] == 200


async def test_a_review_fault_applies_to_the_write_as_to_the_reads(upstream: Upstream) -> None:
    await upstream.put_fault("reviews", {"status": 503, "ids": ["p-1009"]})
    review = {"author": "carol", "stars": 3, "text": "ok"}
    status, _, _ = await send(upstream.http, "POST", f"{upstream.url}/reviews/p-1009", review)
    assert status == 503
    assert (await upstream.get("/reviews/p-1009"))[0] == 503


async def test_a_malformed_answer_after_the_write_keeps_the_writes_status(
    upstream: Upstream,
) -> None:
    user = new_user()
    await set_line(upstream, user, "p-1001", 1)
    await upstream.put_fault("orders", {"malformed": True, "after_write": True})
    async with upstream.http.post(upstream.url + "/orders", json={"user": user}) as response:
        assert response.status == 201
        body = await response.read()
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert (await orders_of(upstream, user))["count"] == 1


async def test_cart_reads_draw_faults_and_are_never_cached(upstream: Upstream) -> None:
    user = new_user()
    async with upstream.http.get(f"{upstream.url}/carts/{user}") as response:
        assert response.headers["cache-control"] == "no-store"
    await upstream.put_fault("cart", {"status": 502, "count": 1})
    assert (await upstream.get(f"/carts/{user}"))[0] == 502
    assert (await upstream.get(f"/carts/{user}"))[0] == 200


def test_after_write_from_the_command_line() -> None:
    faults = parse_fault_flags(["orders:hang,after_write", "cart:status=503,ids=alice+bob"])
    assert faults == {
        "orders": Fault(hang=True, after_write=True),
        "cart": Fault(status=503, ids=("alice", "bob")),
    }
