"""Cross-request batching seen from outside: web-bff as a real process (granian) on the demo
upstreams, forty clients asking at once for forty different product pages.

With ``BFF_BATCH`` on (the default) the pages' parts go out in a few batch requests per
service; with it off, one request per page per service. Either way every page is whole and its
own. A poison id (a product whose batch read fails) fails only its own part.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.processes import RunningService

from .conftest import SERVICES, Upstreams, run_bff

pytestmark = [pytest.mark.process, pytest.mark.serial]

PRODUCTS = [f"p-{1001 + i}" for i in range(40)]


@pytest.fixture(scope="module")
def batching_on(upstreams_process: RunningService) -> Iterator[RunningService]:
    with run_bff(upstreams_process.url, "web_bff", "--workers", "1") as service:
        yield service


@pytest.fixture(scope="module")
def batching_off(upstreams_process: RunningService) -> Iterator[RunningService]:
    with run_bff(upstreams_process.url, "web_bff", "--workers", "1", BFF_BATCH="off") as service:
        yield service


async def forty_at_once(url: str, ids: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """Connect one client per id first (each connection kept alive after a health check that
    calls no upstream), then send every page request at once."""
    connector = aiohttp.TCPConnector(limit=len(ids), force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def check(_: str) -> None:
            async with session.get(f"{url}/healthz") as response:
                assert response.status == 200
                await response.read()

        await asyncio.gather(*(check(pid) for pid in ids))
        assert len(connector._conns) == 1 and sum(len(c) for c in connector._conns.values()) == len(
            ids
        ), "every client connected before the pages are asked for"
        start = asyncio.Event()

        async def page(pid: str) -> tuple[int, dict[str, Any]]:
            await start.wait()
            async with session.get(f"{url}/api/aggregated/product?id={pid}") as response:
                return response.status, await response.json()

        pages = [asyncio.ensure_future(page(pid)) for pid in ids]
        await asyncio.sleep(0)
        start.set()
        return await asyncio.gather(*pages)


def assert_whole_and_own(ids: list[str], answers: list[tuple[int, dict[str, Any]]]) -> None:
    for pid, (status, body) in zip(ids, answers, strict=True):
        assert status == 200, body
        assert body["product"]["id"] == pid
        assert body["inventory"]["product_id"] == pid
        assert body["pricing"]["product_id"] == pid
        assert body["reviews"]["product_id"] == pid
        assert isinstance(body["reviews"]["top"], list)
        assert "errors" not in body, body["errors"]


def test_forty_pages_at_once_cost_a_few_batch_requests_per_service(
    batching_on: RunningService, upstreams: Upstreams
) -> None:
    answers = asyncio.run(forty_at_once(batching_on.url, PRODUCTS))
    assert_whole_and_own(PRODUCTS, answers)
    counts = upstreams.counts()
    for service in SERVICES:
        assert 1 <= counts[service] <= 8, counts


def test_with_batching_off_each_page_asks_each_service(
    batching_off: RunningService, upstreams: Upstreams
) -> None:
    answers = asyncio.run(forty_at_once(batching_off.url, PRODUCTS))
    assert_whole_and_own(PRODUCTS, answers)
    counts = upstreams.counts()
    for service in SERVICES:
        assert counts[service] >= 40, counts


def test_a_poison_id_fails_only_its_own_part(
    batching_on: RunningService, upstreams: Upstreams
) -> None:
    poison = PRODUCTS[13]
    upstreams.inject("pricing", status=500, ids=[poison])
    answers = asyncio.run(forty_at_once(batching_on.url, PRODUCTS))
    for pid, (status, body) in zip(PRODUCTS, answers, strict=True):
        assert status == 200, body
        if pid == poison:
            assert body["pricing"] is None
            assert body["errors"] == [
                {"source": "pricing", "reason": "upstream_status", "status": 500}
            ] or [(e["source"], e.get("status")) for e in body["errors"]] == [("pricing", 500)]
        else:
            assert body["pricing"]["product_id"] == pid
            assert "errors" not in body, (pid, body["errors"])
