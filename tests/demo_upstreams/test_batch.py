"""Batch reads, ``GET /products?ids=a,b,c`` and its siblings for prices, inventory and reviews."""

from __future__ import annotations

import json

import aiohttp
import pytest
from demo_upstreams import MAX_BATCH_IDS, PRODUCT_IDS
from yarl import URL

from .conftest import ServerFactory, Upstream
from .test_faults import _timed_get

# Batch path (``/prices/{id}`` is the single read) -> the service, as the admin API names it.
_BATCHES = {
    "/products": "product",
    "/prices": "pricing",
    "/inventory": "inventory",
    "/reviews": "reviews",
}
_IDENTICAL = ["/products", "/prices", "/inventory", "/reviews"]
_CACHE_CONTROL = {
    "/products": "max-age=60, stale-while-revalidate=300, stale-if-error=3600",
    "/inventory": "max-age=5, stale-while-revalidate=30, stale-if-error=300",
    "/prices": "max-age=30, stale-while-revalidate=60, stale-if-error=600",
    "/reviews": "max-age=120, stale-while-revalidate=600, stale-if-error=3600",
}


def _ids(n: int, start: int = 0) -> str:
    return ",".join(PRODUCT_IDS[start : start + n])


async def _get(upstream: Upstream, path: str) -> tuple[int, str | None, bytes]:
    async with upstream.http.get(URL(upstream.url + path, encoded=True)) as response:
        return response.status, response.headers.get("Cache-Control"), await response.read()


@pytest.mark.parametrize("path", list(_BATCHES))
async def test_in_the_order_asked_unknown_left_out(upstream: Upstream, path: str) -> None:
    status, content_type, raw = await upstream.get_raw(f"{path}?ids=p-1003,nope,p-1001,p-1200")
    assert (status, content_type) == (200, "application/json")
    key = "id" if path == "/products" else "product_id"
    assert [item[key] for item in json.loads(raw)] == ["p-1003", "p-1001", "p-1200"]


@pytest.mark.parametrize("path", list(_BATCHES))
async def test_all_unknown_is_an_empty_array(upstream: Upstream, path: str) -> None:
    assert await upstream.get(f"{path}?ids=x,y") == (200, [])


@pytest.mark.parametrize("path", _IDENTICAL)
async def test_elements_are_byte_identical_to_single_reads(upstream: Upstream, path: str) -> None:
    # The whole catalogue, in batches of the largest size allowed.
    for start in range(0, len(PRODUCT_IDS), MAX_BATCH_IDS):
        chunk = PRODUCT_IDS[start : start + MAX_BATCH_IDS]
        singles = []
        for pid in chunk:
            status, _, raw = await upstream.get_raw(f"{path}/{pid}")
            assert status == 200, pid
            singles.append(raw)
        status, _, batch = await upstream.get_raw(f"{path}?ids={','.join(chunk)}")
        assert status == 200
        assert batch == b"[" + b",".join(singles) + b"]"


async def test_reviews_batch_elements_are_whole_reviews(upstream: Upstream) -> None:
    ids = ["p-1001", "p-1006", *PRODUCT_IDS[12:60]]
    status, elements = await upstream.get(f"/reviews?ids={','.join(ids)}")
    assert status == 200
    assert [e["product_id"] for e in elements] == ids
    for element in elements:
        assert element.keys() == {"product_id", "average", "count", "top"}
        assert element == (await upstream.get(f"/reviews/{element['product_id']}"))[1]
    assert elements[0]["top"]  # p-1001 has reviews: their texts come with the batch
    assert elements[1] == {"product_id": "p-1006", "average": 0.0, "count": 0, "top": []}


async def test_duplicates_are_answered_as_asked(upstream: Upstream) -> None:
    _, prices = await upstream.get("/prices?ids=p-1001,p-1002,p-1001")
    assert [p["product_id"] for p in prices] == ["p-1001", "p-1002", "p-1001"]


async def test_percent_encoded_commas_separate_too(upstream: Upstream) -> None:
    _, prices = await upstream.get("/prices?ids=p-1001%2Cp-1002")
    assert [p["product_id"] for p in prices] == ["p-1001", "p-1002"]


@pytest.mark.parametrize("path", list(_BATCHES))
async def test_fifty_ids_are_fine_fifty_one_are_400(upstream: Upstream, path: str) -> None:
    status, body = await upstream.get(f"{path}?ids={_ids(MAX_BATCH_IDS)}")
    assert (status, len(body)) == (200, MAX_BATCH_IDS)
    # Unknown ids count too: the limit is on what is asked, not on what is found.
    status, cache_control, raw = await _get(upstream, f"{path}?ids={_ids(50)},nope")
    assert (status, cache_control) == (400, "no-store")
    error = json.loads(raw)["error"]
    assert "51" in error
    assert "at most 50" in error


@pytest.mark.parametrize("path", list(_BATCHES))
@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("", "missing"),
        ("?id=p-1001", "missing"),
        ("?ids=", "empty"),
        ("?ids=p-1001,,p-1002", "position 2"),
        ("?ids=,p-1001", "position 1"),
        ("?ids=p-1001,", "position 2"),
        ("?ids=,", "position 1"),
    ],
)
async def test_missing_or_empty_ids_are_400(
    upstream: Upstream, path: str, query: str, named: str
) -> None:
    status, cache_control, raw = await _get(upstream, path + query)
    assert (status, cache_control) == (400, "no-store")
    error = json.loads(raw)["error"]
    assert "'ids'" in error
    assert named in error


@pytest.mark.parametrize("path", list(_BATCHES))
async def test_cache_control_is_the_single_reads(upstream: Upstream, path: str) -> None:
    status, cache_control, _ = await _get(upstream, f"{path}?ids=p-1001,p-1002")
    assert (status, cache_control) == (200, _CACHE_CONTROL[path])
    status, cache_control, _ = await _get(upstream, f"{path}/p-1001")
    assert (status, cache_control) == (200, _CACHE_CONTROL[path])


@pytest.mark.parametrize("path", list(_BATCHES))
async def test_logged_under_the_single_reads_service(upstream: Upstream, path: str) -> None:
    service = _BATCHES[path]
    await upstream.get(f"{path}?ids=p-1001,p-1002")
    await upstream.get(f"{path}?ids=")  # refused requests are logged too
    await upstream.get(f"{path}/p-1001")
    log = await upstream.requests()
    assert {name: entry["count"] for name, entry in log.items() if entry["count"]} == {service: 3}
    assert [(r["path"], r["query"]) for r in log[service]["requests"]] == [
        (path, "ids=p-1001,p-1002"),
        (path, "ids="),
        (f"{path}/p-1001", ""),
    ]


@pytest.mark.parametrize("path", list(_BATCHES))
async def test_faults_of_the_service_apply(upstream: Upstream, path: str) -> None:
    service = _BATCHES[path]
    await upstream.put_fault(service, {"status": 503, "count": 1})
    status, cache_control, _ = await _get(upstream, f"{path}?ids=p-1001")
    assert (status, cache_control) == (503, "no-store")
    await upstream.put_fault(service, {"wrong_shape": True})
    status, body = await upstream.get(f"{path}?ids=p-1001")
    assert status == 200
    assert not isinstance(body, list)  # an object where the array belongs
    await upstream.put_fault(service, {"malformed": True})
    status, _, raw = await _get(upstream, f"{path}?ids=p-1001,p-1002")
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    await upstream.put_fault(service, {"cache_control": "max-age=2"})
    assert (await _get(upstream, f"{path}?ids=p-1001"))[:2] == (200, "max-age=2")


async def test_a_status_fault_comes_before_the_400(upstream: Upstream) -> None:
    # As with a single read of an unknown id: the broken service fails whatever it is asked.
    await upstream.put_fault("inventory", {"status": 500})
    assert (await upstream.get("/inventory?ids="))[0] == 500


async def test_a_batch_costs_a_little_per_id(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    async with server_factory(latency_scale=0, latency_ms={"pricing": 100}) as url:
        server = Upstream(url, http)
        elapsed, status = await _timed_get(server, "/prices?ids=p-1001")
        assert status == 200
        assert elapsed >= 0.100 * 1.01 * 0.9
        # Fifty ids: 1 % of the latency each, 1.5 single reads in all, with +-10 % jitter.
        elapsed, status = await _timed_get(server, f"/prices?ids={_ids(MAX_BATCH_IDS)}")
        assert status == 200
        assert 0.150 * 0.9 <= elapsed < 1.0


async def test_latency_scale_zero_makes_batches_instant_too(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    async with server_factory(latency_scale=0) as url:
        server = Upstream(url, http)
        elapsed, status = await _timed_get(server, f"/reviews?ids={_ids(MAX_BATCH_IDS)}")
        assert status == 200
        assert elapsed < 0.1


async def test_a_batch_gives_up_at_the_deadline(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    async with server_factory(latency_scale=0, latency_ms={"pricing": 100}) as url:
        server = Upstream(url, http)
        # 100 ms plus 50 % for fifty ids: a 130 ms budget is enough for one id, not for fifty.
        headers = {"x-request-timeout-ms": "130"}
        async with http.get(url + f"/prices?ids={_ids(MAX_BATCH_IDS)}", headers=headers) as r:
            assert r.status == 504
            assert r.headers["Cache-Control"] == "no-store"
            assert "gave up after 130 ms" in (await r.json())["error"]
        async with http.get(url + "/prices?ids=p-1001", headers=headers) as r:
            assert r.status == 200
        log = (await server.requests())["pricing"]
        assert (log["count"], log["gave_up"]) == (2, 1)
