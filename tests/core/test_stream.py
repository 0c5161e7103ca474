"""Gateway.stream against a real scripted server: the critical parts first, then each other
part as it ends, the deadline, and an early end that cancels what still runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from bff_core import Aggregate, AggregationFailed, Gateway, Param, Source

from .scripted_upstream import Reply, ScriptedUpstream, scripted_upstream


def page() -> Aggregate:
    return Aggregate(
        "page",
        params=[Param("id")],
        sources=[
            Source(n, service="svc", path=f"/{n}/{{id}}", returns=dict[str, int], critical=n == "a")
            for n in ("a", "b", "c")
        ],
    )


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    async with scripted_upstream() as server:
        server.script("/a/1", Reply(json={"v": 1}, delay=0.05))
        server.script("/b/1", Reply(json={"v": 2}, delay=0.3))
        server.script("/c/1", Reply(json={"v": 3}, delay=0.15))
        yield server


async def test_parts_come_in_the_order_they_end(upstream: ScriptedUpstream) -> None:
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gateway:
        began = time.perf_counter()
        stream = gateway.stream(page(), {"id": "1"})
        ready = await stream.ready()
        assert [o.name for o in ready] == ["a"] and ready[0].value == {"v": 1}
        assert time.perf_counter() - began < 0.14  # a alone, not the others
        told = [(o.name, time.perf_counter() - began) async for o in stream]
        assert [name for name, _ in told] == ["c", "b"]
        assert 0.12 < told[0][1] < 0.28 and told[1][1] > 0.28
        assert stream.result is not None and list(stream.result) == ["a", "b", "c"]


async def test_a_failed_critical_part_fails_ready_and_the_deadline_ends_the_rest(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/a/2", Reply(status=503))
    async with Gateway(services={"svc": upstream.url}, timeout=0.2) as gateway:
        with pytest.raises(AggregationFailed) as failed:
            await gateway.stream(page(), {"id": "2"}).ready()
        assert failed.value.status == 502
        stream = gateway.stream(page(), {"id": "1"})
        await stream.ready()
        told = {o.name: o for o in [o async for o in stream]}
    assert told["c"].ok and told["b"].reason == "timeout"


async def test_closing_early_cancels_the_parts_still_running(upstream: ScriptedUpstream) -> None:
    upstream.script("/b/1", Reply(hang=True))
    async with Gateway(
        services={"svc": upstream.url}, timeout=5.0, http_client="aiohttp"
    ) as gateway:
        async with gateway.stream(page(), {"id": "1"}) as stream:
            await stream.ready()
        await asyncio.sleep(0.1)
    assert "/b/1" in upstream.abandoned
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("bff-part:")] == []
