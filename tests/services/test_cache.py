"""The cache, end to end: real BFFs (served from the test process, over real HTTP), the real
demo upstreams (with their Cache-Control headers and injected faults) and a real Redis started
by the test suite."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio
from bff_core._redis import connect, parse_redis_url

from tests.processes import Served, ServedApp
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer, TlsFiles

from .conftest import SERVICES, Upstreams, serve_bff, stored_entries

ROUTE = "/api/aggregated/product"
TOKEN = "test-admin-token-0123456789-abcdefgh"


@contextmanager
def cached_bff(upstreams: Upstreams, module: str = "web_bff", **env: str) -> Iterator[ServedApp]:
    """A BFF of its own with the cache on and an admin token."""
    settings = {"BFF_CACHE": "on", "BFF_ADMIN_TOKEN": TOKEN, **env}
    with serve_bff(upstreams.url, module, **settings) as service:
        yield service


def get(bff: Served, http: httpx.Client, query: str = "id=p-1001") -> httpx.Response:
    return http.get(f"{bff.url}{ROUTE}?{query}")


def wait_for(condition: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_the_embedded_cache_serves_repeats_without_upstream_calls(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with cached_bff(upstreams) as bff:
        first = get(bff, http)
        assert upstreams.counts() == dict.fromkeys(SERVICES, 1)
        second = get(bff, http)
        assert second.json() == first.json()
        assert upstreams.counts() == dict.fromkeys(SERVICES, 1)
        # Parts are cached too: another selection of them needs no upstream either.
        assert list(get(bff, http, "id=p-1001&fields=pricing,product").json()) == [
            "product",
            "pricing",
        ]
        assert upstreams.counts() == dict.fromkeys(SERVICES, 1)
        assert http.get(f"{bff.url}/readyz").json()["checks"]["cache"].startswith("ok: in-process")


def test_fields_and_the_full_page_never_collide(upstreams: Upstreams, http: httpx.Client) -> None:
    with cached_bff(upstreams) as bff:
        assert list(get(bff, http, "id=p-1001&fields=product,pricing").json()) == [
            "product",
            "pricing",
        ]
        assert list(get(bff, http).json()) == ["product", "inventory", "pricing", "reviews"]
        assert list(get(bff, http, "id=p-1001&fields=pricing,product").json()) == [
            "product",
            "pricing",
        ]


def test_two_bff_processes_share_entries_through_redis(
    upstreams: Upstreams, http: httpx.Client, shared_url: str
) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": shared_url, "BFF_CACHE_NAMESPACE": namespace}
    with cached_bff(upstreams, **env) as first, cached_bff(upstreams, **env) as second:
        get(first, http)
        assert upstreams.counts() == dict.fromkeys(SERVICES, 1)
        # Written after the answer, off its path: four parts and the whole answer.
        assert wait_for(lambda: stored_entries(shared_url, namespace) == 5)
        assert get(second, http).status_code == 200
        # other fields: a different whole answer, made of parts the first process cached
        assert get(second, http, "id=p-1001&fields=reviews,inventory").status_code == 200
        assert upstreams.counts() == dict.fromkeys(SERVICES, 1)
        cache_check = http.get(f"{second.url}/readyz").json()["checks"]["cache"]
        assert cache_check.startswith("ok: redis")
    # Another deployment (namespace) shares nothing with them.
    with cached_bff(upstreams, REDIS_URL=shared_url, BFF_CACHE_NAMESPACE=namespace + "x") as other:
        get(other, http)
        assert upstreams.counts() == dict.fromkeys(SERVICES, 2)


def redis_gets(url: str) -> int:
    """GET commands the Redis server has run so far."""

    async def count() -> int:
        client = redis.asyncio.from_url(url)
        try:
            stats = await client.info("commandstats")
            return int(stats.get("cmdstat_get", {}).get("calls", 0))
        finally:
            await client.aclose()

    return asyncio.run(count())


def test_a_hot_product_costs_no_redis_round_trip_per_request(
    upstreams: Upstreams, http: httpx.Client, redis_url: str
) -> None:
    env = {"REDIS_URL": redis_url, "BFF_CACHE_NAMESPACE": f"test-{uuid.uuid4().hex[:8]}"}
    with (
        cached_bff(upstreams, BFF_CACHE_NEAR_MS="60000", **env) as near,
        cached_bff(upstreams, BFF_CACHE_NEAR_MS="0", **env) as alone,
    ):
        get(near, http)
        before = redis_gets(redis_url)
        for _ in range(20):
            assert get(near, http).headers["server-timing"] == 'cache;desc="hit"'
        assert redis_gets(redis_url) == before  # from its near cache, every time
        for _ in range(20):
            assert get(alone, http).headers["server-timing"] == 'cache;desc="hit"'
        assert redis_gets(redis_url) - before >= 20  # without one: Redis every time
        assert upstreams.counts() == dict.fromkeys(SERVICES, 1)


def test_fifty_concurrent_requests_for_a_cold_product_make_one_call_per_upstream(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with cached_bff(upstreams) as bff:
        for service in SERVICES:
            upstreams.inject(service, latency_ms=300)
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(lambda _: get(bff, http, "id=p-1002"), range(50)))
        assert {a.status_code for a in answers} == {200}
        assert all("errors" not in a.json() for a in answers)
        # One request per upstream; product's, slower than its 100 ms hedge, got its hedge.
        assert upstreams.counts() == {**dict.fromkeys(SERVICES, 1), "product": 2}


def test_stale_while_revalidate_serves_at_once_and_refreshes_once(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    upstreams.inject("reviews", cache_control="max-age=1, stale-while-revalidate=30")
    with cached_bff(upstreams) as bff:
        get(bff, http)
        time.sleep(1.2)
        upstreams.inject("reviews", latency_ms=400, cache_control="max-age=60")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(lambda _: get(bff, http), range(10)))
        assert time.monotonic() - started < 0.3  # nobody waited for the slow refresh
        for answer in answers:
            body = answer.json()
            assert body["reviews"] is not None
            assert "errors" not in body
            [stale] = body["stale"]
            assert stale["source"] == "reviews"
            assert stale["age"] >= 1.0
        # One refresh in the background, not one per request that saw the part stale.
        assert wait_for(lambda: upstreams.counts()["reviews"] == 2)
        time.sleep(0.6)
        assert upstreams.counts()["reviews"] == 2
        assert "stale" not in get(bff, http).json()
        assert upstreams.counts()["reviews"] == 2


@pytest.mark.parametrize(
    "fault", [{"status": 503}, {"drop": True}, {"hang": True}], ids=["503", "drop", "hang"]
)
def test_stale_if_error_serves_the_last_good_copy_and_says_how_old(
    upstreams: Upstreams, http: httpx.Client, fault: dict[str, Any]
) -> None:
    upstreams.inject(
        "reviews", cache_control="max-age=1, stale-while-revalidate=0, stale-if-error=60"
    )
    with cached_bff(upstreams, BFF_TIMEOUT_MS="500") as bff:
        fresh = get(bff, http).json()
        time.sleep(1.2)
        upstreams.inject("reviews", **fault)
        started = time.monotonic()
        body = get(bff, http).json()
        assert time.monotonic() - started < 0.6
        assert body["reviews"] == fresh["reviews"]
        assert "errors" not in body
        [stale] = body["stale"]
        assert stale["source"] == "reviews"
        assert 1.0 <= stale["age"] < 5


def test_failures_and_no_store_answers_are_not_cached(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    upstreams.inject("reviews", status=503)
    upstreams.inject("pricing", cache_control="no-store")
    upstreams.inject("inventory", cache_control="private, max-age=60")
    with cached_bff(upstreams) as bff:
        assert get(bff, http).json()["reviews"] is None
        upstreams.client.delete(f"{upstreams.url}/admin/faults/reviews").raise_for_status()
        body = get(bff, http).json()
        assert body["reviews"] is not None
        counts = upstreams.counts()
        assert counts["product"] == 1  # cached
        assert counts["reviews"] == 3  # the failure (503, and its retry) was not
        assert counts["pricing"] == 2  # no-store
        assert counts["inventory"] == 2  # private: per-user data
        get(bff, http)
        assert upstreams.counts()["reviews"] == 3  # the good answer was


def test_etag_and_if_none_match(upstreams: Upstreams, http: httpx.Client) -> None:
    with cached_bff(upstreams, module="mobile_bff") as bff:
        first = get(bff, http)
        etag = first.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"')
        again = http.get(f"{bff.url}{ROUTE}?id=p-1001", headers={"if-none-match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        listed = http.get(
            f"{bff.url}{ROUTE}?id=p-1001", headers={"if-none-match": f'"nope", W/{etag}'}
        )
        assert listed.status_code == 304
        other = http.get(f"{bff.url}{ROUTE}?id=p-1001", headers={"if-none-match": '"nope"'})
        assert other.status_code == 200
        assert other.content == first.content
    # Without a cache the answer has an ETag too.
    with serve_bff(upstreams.url) as plain:
        etag = get(plain, http).headers["etag"]
        response = http.get(f"{plain.url}{ROUTE}?id=p-1001", headers={"if-none-match": etag})
        assert response.status_code == 304


def test_an_operator_invalidates_one_product_everywhere(
    upstreams: Upstreams, http: httpx.Client, shared_url: str
) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    # Near caches that would hold entries for a minute: only the invalidation clears them. No
    # retries or hedges: the test counts upstream requests, and a loaded machine can make the
    # product's first read slow enough to hedge.
    env = {
        "REDIS_URL": shared_url,
        "BFF_CACHE_NAMESPACE": namespace,
        "BFF_CACHE_NEAR_MS": "60000",
        "BFF_RETRY_BUDGET_PERCENT": "0",
    }
    with cached_bff(upstreams, **env) as first, cached_bff(upstreams, **env) as second:
        get(first, http)
        get(first, http, "id=p-1003")
        assert wait_for(lambda: stored_entries(shared_url, namespace) == 10)
        assert get(second, http).status_code == 200  # now in the second's near cache too
        assert upstreams.counts() == dict.fromkeys(SERVICES, 2)
        auth = {"authorization": f"Bearer {TOKEN}"}
        url = f"{first.url}/admin/cache/invalidate?id=p-1001"
        response = http.post(url, headers=auth)
        assert response.status_code == 200, response.text
        assert response.json() == {"invalidated": 5, "tags": ["id=p-1001"], "instances_told": 2}
        get(second, http)  # its near copy is gone at once: asked for again
        assert upstreams.counts() == dict.fromkeys(SERVICES, 3)
        get(first, http, "id=p-1003")  # p-1003 was not invalidated
        assert upstreams.counts() == dict.fromkeys(SERVICES, 3)

        wrong = http.post(url, headers={"authorization": "Bearer wrong"})
        assert wrong.status_code == 401
        assert wrong.headers["content-type"].startswith("application/problem+json")
        assert http.post(url).status_code == 401
    with serve_bff(upstreams.url, BFF_CACHE="on") as no_token:
        disabled = http.post(f"{no_token.url}/admin/cache/invalidate?id=p-1001")
        assert disabled.status_code == 404
        assert "BFF_ADMIN_TOKEN" in disabled.json()["detail"]


def test_redis_stopped_mid_run_never_fails_a_request(
    upstreams: Upstreams, http: httpx.Client, redis_server: RedisServer
) -> None:
    env = {"REDIS_URL": redis_server.url, "BFF_CACHE_NAMESPACE": f"t-{uuid.uuid4().hex[:8]}"}
    with cached_bff(upstreams, **env) as bff:
        assert get(bff, http).status_code == 200
        redis_server.stop()
        for product in ("p-1001", "p-1002", "p-1003", "p-1004", "p-1001"):
            started = time.monotonic()
            response = get(bff, http, f"id={product}")
            assert response.status_code == 200
            assert "errors" not in response.json()
            assert time.monotonic() - started < 0.5
        ready = http.get(f"{bff.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["cache"].startswith("unreachable")
        assert "redis" in bff.log().lower()
        redis_server.start()
        assert wait_for(lambda: http.get(f"{bff.url}/readyz").status_code == 200, timeout=5)

        def served_from_cache() -> bool:
            get(bff, http, "id=p-1005")
            before = upstreams.counts()
            get(bff, http, "id=p-1005")
            return upstreams.counts() == before

        assert wait_for(served_from_cache, timeout=5)  # caching again


def test_a_cluster_master_stopped_mid_run_never_fails_a_request(
    upstreams: Upstreams, http: httpx.Client, redis_cluster: RedisCluster
) -> None:
    env = {"REDIS_URL": redis_cluster.url, "BFF_CACHE_NAMESPACE": f"t-{uuid.uuid4().hex[:8]}"}
    with cached_bff(upstreams, **env) as bff, cached_bff(upstreams, **env) as peer:
        assert get(bff, http).status_code == 200
        assert http.get(f"{bff.url}/readyz").json()["checks"]["cache"] == (
            "ok: redis cluster (3 masters)"
        )
        redis_cluster.nodes[1].stop()
        for product in ("p-1001", "p-1002", "p-1003", "p-1004", "p-1001", "p-1006"):
            for service in (bff, peer):
                started = time.monotonic()
                response = get(service, http, f"id={product}")
                assert response.status_code == 200
                assert "errors" not in response.json()
                assert time.monotonic() - started < 1.5
        assert wait_for(lambda: http.get(f"{bff.url}/readyz").status_code == 503, timeout=5)
        redis_cluster.nodes[1].start()
        redis_cluster.wait_until_ok()
        assert wait_for(lambda: http.get(f"{bff.url}/readyz").status_code == 200, timeout=10)

        def served_from_cache() -> bool:
            get(bff, http, "id=p-1007")
            before = upstreams.counts()
            get(peer, http, "id=p-1007")  # the other instance: from the cluster
            return upstreams.counts() == before

        assert wait_for(served_from_cache, timeout=10)  # caching again


def test_whole_answers_are_cached_per_encoding(upstreams: Upstreams, http: httpx.Client) -> None:
    with cached_bff(upstreams, module="mobile_bff") as mobile:
        url = f"{mobile.url}{ROUTE}?id=p-1001"
        packed_accept = {"accept": "application/msgpack"}
        as_json = [http.get(url) for _ in range(2)]
        packed = [http.get(url, headers=packed_accept) for _ in range(2)]
        assert [r.headers["content-type"] for r in as_json] == ["application/json"] * 2
        assert [r.headers["content-type"] for r in packed] == ["application/msgpack"] * 2
        assert packed[1].headers["server-timing"] == 'cache;desc="hit"'
        assert as_json[1].headers["server-timing"] == 'cache;desc="hit"'
        assert msgspec.msgpack.decode(packed[1].content) == as_json[1].json()
        # The parts were cached once for both encodings: the upstreams were asked once.
        assert upstreams.counts() == dict.fromkeys(SERVICES, 1)


def poison(url: str, namespace: str, how: dict[str, Any]) -> list[str]:
    """Overwrite the entries whose key contains one of ``how``'s names, keeping their expiry:
    with bytes (the whole value), or with a callable given the entry's body (a well-formed
    entry with another body). Returns the keys overwritten."""

    async def run() -> list[str]:
        client = connect(parse_redis_url(url), timeout=2.0, socket_timeout=2.0)
        done = []
        try:
            async for key in client.scan_iter(match=f"{namespace}:*:k:*"):
                name = key.decode()
                for part, replacement in how.items():
                    if part not in name:
                        continue
                    ttl = await client.pttl(key)
                    if callable(replacement):
                        raw = await client.get(key)
                        assert isinstance(raw, bytes)
                        fields = msgspec.msgpack.decode(raw)
                        fields[4] = replacement(fields[4])
                        value = msgspec.msgpack.encode(fields)
                    else:
                        value = replacement
                    await client.set(key, value, px=ttl)
                    done.append(name)
        finally:
            await client.aclose()
        return done

    return asyncio.run(run())


def test_entries_that_do_not_decode_as_their_type_are_misses(
    upstreams: Upstreams, http: httpx.Client, redis_url: str
) -> None:
    """Whatever can write to Redis must not be able to break pages: an entry that is not an
    entry, or whose body is not what its source declares, is a miss, fetched again."""
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": redis_url, "BFF_CACHE_NAMESPACE": namespace, "BFF_CACHE_NEAR_MS": "0"}
    with cached_bff(upstreams, **env) as bff:
        good = get(bff, http).json()
        assert wait_for(lambda: stored_entries(redis_url, namespace) == 5)
        poisoned = poison(
            redis_url,
            namespace,
            {
                "part:product:": lambda _: b'{"id": 7, "name": ["not", "a", "name"]}',
                "part:pricing:": b"\x00garbage, not an entry",
                "part:reviews:": lambda _: b"not json at all",
                # A well-formed entry of a whole answer, its body not the page's view.
                "{agg:": lambda _: b'{"product": "served to everyone"}',
            },
        )
        assert len(poisoned) == 4, poisoned
        again = get(bff, http)
        assert "served to everyone" not in again.text
        assert again.status_code == 200
        assert again.json() == good
        counts = upstreams.counts()
        assert (counts["product"], counts["pricing"], counts["reviews"]) == (2, 2, 2)
        assert counts["inventory"] == 1  # its entry was fine


def test_two_bff_processes_share_entries_through_a_redis_with_tls_and_a_password(
    upstreams: Upstreams, http: httpx.Client, redis_tls_url: str, redis_tls_files: TlsFiles
) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        "REDIS_URL": redis_tls_url.partition("?")[0],  # rediss://:password@...
        "BFF_REDIS_CA_FILE": str(redis_tls_files.ca),
        "BFF_CACHE_NAMESPACE": namespace,
    }
    with cached_bff(upstreams, **env) as first, cached_bff(upstreams, **env) as second:
        assert get(first, http).status_code == 200
        assert wait_for(lambda: stored_entries(redis_tls_url, namespace) == 5)
        assert get(second, http).status_code == 200
        assert upstreams.counts() == dict.fromkeys(SERVICES, 1)
        ready = http.get(f"{second.url}/readyz").json()
        assert ready["checks"]["cache"] == "ok: redis"


def test_a_wrong_redis_password_is_a_clear_readiness_failure(
    upstreams: Upstreams, http: httpx.Client, redis_password_url: str
) -> None:
    wrong = "redis://:not-the-password@" + redis_password_url.rpartition("@")[2]
    with cached_bff(upstreams, REDIS_URL=wrong) as bff:
        ready = http.get(f"{bff.url}/readyz")
        assert ready.status_code == 503
        assert "refuses the credentials of REDIS_URL" in ready.json()["checks"]["cache"]
        assert "refuses the credentials of REDIS_URL" in bff.log()
        assert "not-the-password" not in bff.log()
        assert get(bff, http).status_code == 200  # served without the cache meanwhile


@pytest.mark.parametrize("module", ["web_bff", "mobile_bff"])
def test_every_routes_whole_answer_read_back_from_redis_is_served(
    upstreams: Upstreams, http: httpx.Client, redis_url: str, module: str
) -> None:
    """A whole answer read from Redis is served only if it decodes as the route's view: each
    view must read back what it wrote, in each encoding, or Redis would never serve one."""
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": redis_url, "BFF_CACHE_NAMESPACE": namespace, "BFF_CACHE_NEAR_MS": "0"}
    with cached_bff(upstreams, module=module, **env) as bff:
        for path in (
            f"{ROUTE}?id=p-1001",
            "/api/aggregated/category?slug=audio",
            "/api/aggregated/home",
        ):
            for accept in ("application/json", "application/msgpack"):
                assert http.get(bff.url + path, headers={"accept": accept}).status_code == 200
                assert wait_for(
                    lambda p=path, a=accept: (
                        http.get(bff.url + p, headers={"accept": a}).headers["server-timing"]
                        == 'cache;desc="hit"'
                    )
                )
        assert "does not decode" not in bff.log()
