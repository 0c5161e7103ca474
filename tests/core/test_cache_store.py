"""The cache stores, against a real Redis (no mocks): the contract both stores keep, the bounds
of the in-process LRU, and how the Redis store behaves while Redis is down or frozen."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio
from bff_core._cache_store import CacheStore, MemoryStore, RedisStore, make_store

from ..redis_server import RedisServer

LOGGER = "bff_core.cache"


async def _drop_namespace(url: str, namespace: str) -> None:
    """Delete what a test left in its namespace (REDIS_URL may name a shared Redis)."""
    client = redis.asyncio.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=1000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


@pytest_asyncio.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_namespace: str) -> AsyncIterator[CacheStore]:
    if request.param == "memory":
        memory = MemoryStore()
        yield memory
        await memory.aclose()
        return
    url: str = request.getfixturevalue("redis_url")
    # A generous op_timeout: these tests are about behaviour, not latency on a loaded machine.
    shared = RedisStore(url, namespace=redis_namespace, op_timeout=1.0)
    yield shared
    assert shared.healthy, "a Redis operation failed during the test"
    await shared.aclose()
    await _drop_namespace(url, redis_namespace)


# -- the contract of both stores ---------------------------------------------------------------


async def test_roundtrip(store: CacheStore) -> None:
    assert await store.get("k") is None
    await store.set("k", b"\x00value\xff", ttl=60)
    assert await store.get("k") == b"\x00value\xff"
    assert await store.get("other") is None
    await store.set("k", b"new", ttl=60)
    assert await store.get("k") == b"new"
    assert (await store.check()).startswith("ok: ")


async def test_entries_expire(store: CacheStore) -> None:
    await store.set("k", b"v", ttl=0.2)
    assert await store.get("k") == b"v"
    await asyncio.sleep(0.3)
    assert await store.get("k") is None


async def test_invalidate_removes_exactly_the_tagged_entries(store: CacheStore) -> None:
    await store.set("a", b"1", ttl=60, tags=["user:1"])
    await store.set("b", b"2", ttl=60, tags=["user:1", "product:9"])
    await store.set("c", b"3", ttl=60, tags=["product:9"])
    await store.set("d", b"4", ttl=60)

    assert await store.invalidate("user:1") == 2
    assert [await store.get(k) for k in "abcd"] == [None, None, b"3", b"4"]
    assert await store.invalidate("product:9") == 1
    assert [await store.get(k) for k in "abcd"] == [None, None, None, b"4"]
    assert await store.invalidate("user:1") == 0
    assert await store.invalidate("never-used") == 0


async def test_overwrite_replaces_the_tags(store: CacheStore) -> None:
    await store.set("k", b"old", ttl=60, tags=["old-tag", "kept"])
    await store.set("k", b"new", ttl=60, tags=["new-tag", "kept"])

    assert await store.invalidate("old-tag") == 0
    assert await store.get("k") == b"new"
    assert await store.invalidate("new-tag") == 1
    assert await store.get("k") is None
    # "kept" no longer names a live entry.
    assert await store.invalidate("kept") == 0


async def test_a_tag_outlives_its_longest_lived_entry(store: CacheStore) -> None:
    await store.set("long", b"1", ttl=0.5, tags=["t"])
    await store.set("short", b"2", ttl=0.1, tags=["t"])  # must not shorten the tag's life
    await asyncio.sleep(0.2)
    assert await store.invalidate("t") == 1
    assert await store.get("long") is None


async def test_expired_entries_are_not_counted_by_invalidate(store: CacheStore) -> None:
    await store.set("gone", b"1", ttl=0.1, tags=["t"])
    await store.set("live", b"2", ttl=60, tags=["t"])
    await asyncio.sleep(0.2)
    assert await store.invalidate("t") == 1


# -- the in-process store ----------------------------------------------------------------------


async def test_memory_evicts_least_recently_used_by_entry_count() -> None:
    store = MemoryStore(max_entries=3)
    for key in "abc":
        await store.set(key, b"v", ttl=60)
    assert await store.get("a") == b"v"  # now b is the least recently used
    await store.set("d", b"v", ttl=60)

    assert len(store) == 3
    assert [await store.get(k) for k in "abcd"] == [b"v", None, b"v", b"v"]


async def test_memory_evicts_least_recently_used_by_bytes() -> None:
    store = MemoryStore(max_bytes=10)
    await store.set("a", b"aaaa", ttl=60)
    await store.set("b", b"bbbb", ttl=60)
    assert await store.get("a") == b"aaaa"
    await store.set("c", b"cccc", ttl=60)  # 12 bytes: b goes

    assert store.size_bytes == 8
    assert [await store.get(k) for k in "abc"] == [b"aaaa", None, b"cccc"]
    await store.set("big", b"x" * 10, ttl=60)  # fits alone: everything else goes
    assert (len(store), store.size_bytes) == (1, 10)
    assert await store.check() == "ok: in-process (1 entries, 10 bytes)"


async def test_memory_does_not_store_an_oversize_value() -> None:
    store = MemoryStore(max_bytes=10)
    await store.set("k", b"small", ttl=60, tags=["t"])
    await store.set("k", b"x" * 11, ttl=60, tags=["t"])

    assert await store.get("k") is None  # not the oversize value, nor the stale small one
    assert (len(store), store.size_bytes) == (0, 0)
    assert store._tags == {}


async def test_memory_keeps_the_tag_index_consistent() -> None:
    store = MemoryStore(max_entries=1)
    await store.set("expiring", b"1", ttl=0.1, tags=["t", "u"])
    await asyncio.sleep(0.15)
    assert await store.get("expiring") is None  # expired: a miss, and dropped
    assert (len(store), store._tags) == (0, {})

    await store.set("evicted", b"1", ttl=60, tags=["t"])
    await store.set("newer", b"2", ttl=60, tags=["u"])  # evicts "evicted"
    assert store._tags == {"u": {"newer"}}
    assert await store.invalidate("t") == 0

    await store.set("newer", b"3", ttl=60)  # overwritten without tags
    assert store._tags == {}
    assert await store.get("newer") == b"3"


async def test_make_store() -> None:
    memory = make_store(None, namespace="web-bff:v1", max_entries=5)
    assert isinstance(memory, MemoryStore)
    assert memory.name == "in-process"
    redis_store = make_store("redis://127.0.0.1:1/0", namespace="web-bff:v1")
    assert isinstance(redis_store, RedisStore)
    assert (redis_store.name, redis_store.namespace) == ("redis", "web-bff:v1")
    await redis_store.aclose()


# -- the Redis store ---------------------------------------------------------------------------


async def test_redis_namespaces_share_or_separate(redis_url: str, redis_namespace: str) -> None:
    one = RedisStore(redis_url, namespace=redis_namespace, op_timeout=1.0)
    two = RedisStore(redis_url, namespace=redis_namespace, op_timeout=1.0)
    other = RedisStore(redis_url, namespace=redis_namespace + "-other", op_timeout=1.0)
    try:
        await one.set("k", b"shared", ttl=60, tags=["t"])
        assert await two.get("k") == b"shared"
        assert await other.get("k") is None
        assert await other.invalidate("t") == 0
        assert await two.invalidate("t") == 1
        assert await one.get("k") is None
        assert await one.check() == "ok: redis"
    finally:
        for store in (one, two, other):
            await store.aclose()
        await _drop_namespace(redis_url, redis_namespace)
        await _drop_namespace(redis_url, redis_namespace + "-other")


async def _timed_get(store: RedisStore, key: str) -> tuple[bytes | None, float]:
    start = time.perf_counter()
    value = await store.get(key)
    return value, time.perf_counter() - start


async def test_redis_stopped_then_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = RedisStore(redis_server.url, namespace="outage", retry_after=0.2)
    try:
        await store.set("k", b"v", ttl=60, tags=["t"])
        assert await store.get("k") == b"v"

        redis_server.stop()
        for _ in range(20):
            value, elapsed = await _timed_get(store, "k")
            assert value is None
            assert elapsed < 0.2
            await store.set("k", b"v", ttl=60, tags=["t"])  # does not raise
            assert await store.invalidate("t") == 0
        assert not store.healthy
        assert (await store.check()).startswith("unreachable")
        await asyncio.sleep(0.25)  # a probe fails too: still one warning
        assert await store.get("k") is None
        warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "redis cache unavailable" in warnings[0].getMessage()

        redis_server.start()
        await asyncio.sleep(0.25)  # past retry_after: the next operation probes
        assert await store.get("k") is None  # a fresh server: empty, but answering
        assert store.healthy
        await store.set("k", b"again", ttl=60)
        assert await store.get("k") == b"again"
        assert await store.check() == "ok: redis"
        back = [r for r in caplog.records if r.name == LOGGER and "redis is back" in r.getMessage()]
        assert len(back) == 1
    finally:
        await store.aclose()


async def test_redis_frozen_costs_one_timeout_then_nothing(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = RedisStore(redis_server.url, namespace="frozen", op_timeout=0.05, retry_after=0.2)
    try:
        await store.set("k", b"v", ttl=60)
        assert await store.get("k") == b"v"

        redis_server.pause()
        value, elapsed = await _timed_get(store, "k")  # waits for op_timeout
        assert value is None
        assert 0.04 < elapsed < 0.2
        value, elapsed = await _timed_get(store, "k")  # marked down: no network at all
        assert value is None
        assert elapsed < 0.02
        assert (await store.check()).startswith("unreachable: no answer within 50 ms")
        warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
        assert len(warnings) == 1

        redis_server.resume()
        await asyncio.sleep(0.25)
        # The timed-out command's late reply must not be read as the answer to a later one.
        assert await store.get("k") == b"v"
        assert await store.get("missing") is None
        assert store.healthy
    finally:
        redis_server.resume()
        await store.aclose()
