"""The list services: ``category`` (``/categories``) and ``recommendations``, on the wire."""

from __future__ import annotations

import json

import aiohttp
import pytest
from demo_upstreams import CATEGORY_SLUGS, PRODUCT_IDS
from demo_upstreams._catalogue import BEST_SELLERS, CATALOGUE

from .conftest import ServerFactory, Upstream
from .test_faults import _timed_get

_CATEGORY = "max-age=300, stale-while-revalidate=600, stale-if-error=3600"
_RECOMMENDATIONS = "max-age=60, stale-while-revalidate=120, stale-if-error=600"

_COUNTS = {entry.product.id: entry.reviews.count for entry in CATALOGUE}


async def test_a_category(upstream: Upstream) -> None:
    status, content_type, raw = await upstream.get_raw("/categories/audio")
    assert (status, content_type) == (200, "application/json")
    body = json.loads(raw)
    assert body.keys() == {"slug", "name", "product_ids"}
    assert (body["slug"], body["name"]) == ("audio", "Audio")
    assert "p-1001" in body["product_ids"]


@pytest.mark.parametrize("slug", CATEGORY_SLUGS)
async def test_every_category_lists_its_products_best_sellers_first(
    upstream: Upstream, slug: str
) -> None:
    status, body = await upstream.get(f"/categories/{slug}")
    assert status == 200
    ids = body["product_ids"]
    assert len(ids) >= 30
    assert len(set(ids)) == len(ids)
    # Most reviewed first, ties by id: a fixed order a list screen can page through.
    keys = [(-_COUNTS[pid], pid) for pid in ids]
    assert keys == sorted(keys)
    # Every id is a product of that category, as the product service says.
    status, products = await upstream.get(f"/products?ids={','.join(ids[:50])}")
    assert status == 200
    assert [p["id"] for p in products] == ids[:50]
    assert {p["category"] for p in products} == {slug}


async def test_the_categories_cover_the_catalogue(upstream: Upstream) -> None:
    listed: list[str] = []
    for slug in CATEGORY_SLUGS:
        listed += (await upstream.get(f"/categories/{slug}"))[1]["product_ids"]
    assert sorted(listed) == sorted(PRODUCT_IDS)


async def test_the_list_of_categories(upstream: Upstream) -> None:
    status, body = await upstream.get("/categories")
    assert status == 200
    assert [c["slug"] for c in body] == list(CATEGORY_SLUGS)
    for category in body:
        assert category.keys() == {"slug", "name", "count"}
        _, one = await upstream.get(f"/categories/{category['slug']}")
        assert (category["name"], category["count"]) == (one["name"], len(one["product_ids"]))


@pytest.mark.parametrize("path", ["/categories/nope", "/categories/AUDIO", "/categories/p-1001"])
async def test_unknown_category_is_404(upstream: Upstream, path: str) -> None:
    status, content_type, raw = await upstream.get_raw(path)
    assert (status, content_type) == (404, "application/json")
    assert path.rsplit("/", 1)[1] in json.loads(raw)["error"]


async def test_anonymous_gets_the_best_sellers(upstream: Upstream) -> None:
    status, body = await upstream.get("/recommendations/anonymous")
    assert status == 200
    assert body == {"user": "anonymous", "product_ids": list(BEST_SELLERS[:24])}
    top = sorted(PRODUCT_IDS, key=lambda pid: (-_COUNTS[pid], pid))[:24]
    assert body["product_ids"] == top


async def test_each_user_gets_their_own_stable_selection(upstream: Upstream) -> None:
    seen: dict[str, list[str]] = {}
    for user in ("alice", "bob", "carol", "u-42", "anonymous"):
        status, body = await upstream.get(f"/recommendations/{user}")
        assert status == 200
        assert body["user"] == user
        ids = body["product_ids"]
        assert len(ids) == len(set(ids)) == 24
        assert set(ids) <= set(PRODUCT_IDS)
        assert (await upstream.get(f"/recommendations/{user}"))[1] == body  # stable
        seen[user] = ids
    assert len({tuple(ids) for ids in seen.values()}) == len(seen)  # and different


@pytest.mark.parametrize(
    ("segment", "user"),
    [("a%2Fb", "a/b"), ("j%C3%BCrgen", "jürgen"), ("x%20y", "x y"), ("u%2B1", "u+1")],
)
async def test_any_user_string_is_one_decoded_segment(
    upstream: Upstream, segment: str, user: str
) -> None:
    status, body = await upstream.get(f"/recommendations/{segment}")
    assert status == 200
    assert body["user"] == user
    assert len(body["product_ids"]) == 24
    log = await upstream.requests()
    assert [r["path"] for r in log["recommendations"]["requests"]] == [
        f"/recommendations/{segment}"
    ]


async def test_unmatched_paths_are_logged_under_their_service(upstream: Upstream) -> None:
    for path in ("/categories/a/b", "/recommendations", "/recommendations/a/b"):
        assert (await upstream.get_raw(path))[0] == 404
    log = await upstream.requests()
    assert [r["path"] for r in log["category"]["requests"]] == ["/categories/a/b"]
    assert [r["path"] for r in log["recommendations"]["requests"]] == [
        "/recommendations",
        "/recommendations/a/b",
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/categories", _CATEGORY),
        ("/categories/home", _CATEGORY),
        ("/recommendations/anonymous", _RECOMMENDATIONS),
        ("/recommendations/alice", _RECOMMENDATIONS),
    ],
)
async def test_cache_control(upstream: Upstream, path: str, expected: str) -> None:
    async with upstream.http.get(upstream.url + path) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == expected
    async with upstream.http.get(upstream.url + "/categories/nope") as response:
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("service", "path", "array"),
    [
        ("category", "/categories/audio", False),
        ("category", "/categories", True),
        ("recommendations", "/recommendations/alice", False),
    ],
)
async def test_faults(upstream: Upstream, service: str, path: str, array: bool) -> None:
    await upstream.put_fault(service, {"status": 503, "count": 1})
    status, content_type, raw = await upstream.get_raw(path)
    assert (status, content_type) == (503, "application/json")
    assert "503" in json.loads(raw)["error"]
    assert (await upstream.get_raw(path))[0] == 200
    await upstream.put_fault(service, {"wrong_shape": True})
    status, body = await upstream.get(path)
    assert status == 200
    assert isinstance(body, dict if array else list)
    await upstream.put_fault(service, {"malformed": True})
    _, _, raw = await upstream.get_raw(path)
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    log = await upstream.requests()
    assert log[service]["count"] == 4


async def test_default_latencies_and_deadline(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    async with server_factory() as url:
        server = Upstream(url, http)
        # Jitter is +-10 %, so each answer takes at least 90 % of the nominal latency.
        for path, nominal in (("/categories/audio", 0.010), ("/recommendations/bob", 0.025)):
            elapsed, status = await _timed_get(server, path)
            assert status == 200
            assert elapsed >= nominal * 0.9
        async with http.get(
            url + "/recommendations/bob", headers={"x-request-timeout-ms": "5"}
        ) as response:
            assert response.status == 504
        assert (await server.requests())["recommendations"]["gave_up"] == 1


async def test_latency_flags_cover_the_new_services(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    async with server_factory(latency_scale=0, latency_ms={"category": 120}) as url:
        server = Upstream(url, http)
        elapsed, _ = await _timed_get(server, "/categories")
        assert elapsed >= 0.120 * 0.9
