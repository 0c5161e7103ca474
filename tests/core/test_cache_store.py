"""The cache stores, against a real Redis and a real Redis Cluster (no mocks): the contract
every store keeps, the bounds of the in-process LRU, the near cache in front of Redis, the
batching of Redis operations, and how the Redis store behaves while Redis is down or frozen."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio
from bff_core import GatewaySettings
from bff_core._cache import CacheStore, Entry, MemoryStore, RedisStore, TieredStore, make_store
from bff_core._redis import connect, parse_redis_url

from ..redis_cluster import RedisCluster
from ..redis_server import RedisServer, TlsFiles

LOGGER = "bff_core.cache"


def entry(
    body: bytes = b"v", ttl: float = 60, tags: tuple[str, ...] = (), **windows: float
) -> Entry:
    return Entry.now(body, ttl, windows.get("swr", 0.0), windows.get("sie", 0.0), tags)


async def _drop_namespace(url: str, namespace: str) -> None:
    """Delete what a test left in its namespace (REDIS_URL may name a shared Redis)."""
    client = connect(parse_redis_url(url), timeout=2.0, socket_timeout=2.0)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=1000)]
        for key in keys:  # one by one: on a cluster they live on different slots
            await client.unlink(key)
    finally:
        await client.aclose()


def _shared(
    url: str, namespace: str, *, op_timeout: float = 1.0, down_after: float = 2.0
) -> RedisStore:
    # A generous op_timeout: these tests are about behaviour, not latency on a loaded machine.
    return RedisStore(url, namespace=namespace, op_timeout=op_timeout, down_after=down_after)


@pytest_asyncio.fixture(params=["memory", "redis", "redis-cluster", "near+redis"])
async def store(request: pytest.FixtureRequest, redis_namespace: str) -> AsyncIterator[CacheStore]:
    if request.param == "memory":
        memory = MemoryStore()
        yield memory
        await memory.aclose()
        return
    url: str = request.getfixturevalue(
        "redis_cluster_url" if request.param == "redis-cluster" else "redis_url"
    )
    shared = _shared(url, redis_namespace)
    tested: CacheStore = shared
    if request.param == "near+redis":
        tested = TieredStore(MemoryStore(hold=5.0), shared)
    yield tested
    assert shared.healthy, "a Redis operation failed during the test"
    await tested.aclose()
    await _drop_namespace(url, redis_namespace)


# -- the contract of every store ----------------------------------------------------------------


async def test_roundtrip(store: CacheStore) -> None:
    assert await store.get("k") is None
    stored = entry(b"\x00value\xff", tags=("id=1",))
    await store.set("k", stored)
    assert await store.get("k") == stored
    assert await store.get("other") is None
    await store.set("k", entry(b"new"))
    got = await store.get("k")
    assert got is not None and got.body == b"new"
    assert (await store.check()).startswith("ok: ")


async def test_entries_live_as_long_as_they_may_be_served(store: CacheStore) -> None:
    await store.set("short", entry(ttl=0.1, sie=0.2))
    await asyncio.sleep(0.15)
    stale = await store.get("short")  # past its freshness, within its stale-if-error window
    assert stale is not None and stale.body == b"v"
    await asyncio.sleep(0.25)
    assert await store.get("short") is None
    await store.set("gone", Entry(time.time() - 10, 1, 0, 0, b"old"))  # nothing left to keep
    assert await store.get("gone") is None


async def test_invalidate_removes_exactly_the_tagged_entries(store: CacheStore) -> None:
    await store.set("a", entry(b"1", tags=("user:1",)))
    await store.set("b", entry(b"2", tags=("user:1", "product:9")))
    await store.set("c", entry(b"3", tags=("product:9",)))
    await store.set("d", entry(b"4"))

    assert await store.invalidate("user:1") == 2
    assert [await _body(store, k) for k in "abcd"] == [None, None, b"3", b"4"]
    assert await store.invalidate("product:9") == 1
    assert [await _body(store, k) for k in "abcd"] == [None, None, None, b"4"]
    assert await store.invalidate("user:1") == 0
    assert await store.invalidate("never-used") == 0


async def _body(store: CacheStore, key: str) -> bytes | None:
    found = await store.get(key)
    return None if found is None else found.body


async def test_overwrite_replaces_the_tags(store: CacheStore) -> None:
    await store.set("k", entry(b"old", tags=("old-tag", "kept")))
    await store.set("k", entry(b"new", tags=("new-tag", "kept")))

    assert await store.invalidate("old-tag") == 0
    assert await _body(store, "k") == b"new"
    assert await store.invalidate("new-tag") == 1
    assert await store.get("k") is None
    # "kept" no longer names a live entry.
    assert await store.invalidate("kept") == 0


async def test_a_tag_outlives_its_longest_lived_entry(store: CacheStore) -> None:
    await store.set("long", entry(b"1", ttl=0.5, tags=("t",)))
    await store.set("short", entry(b"2", ttl=0.1, tags=("t",)))  # must not shorten the tag's life
    await asyncio.sleep(0.2)
    assert await store.invalidate("t") == 1
    assert await store.get("long") is None


async def test_expired_entries_are_not_counted_by_invalidate(store: CacheStore) -> None:
    await store.set("gone", entry(b"1", ttl=0.1, tags=("t",)))
    await store.set("live", entry(b"2", tags=("t",)))
    await asyncio.sleep(0.2)
    assert await store.invalidate("t") == 1


async def test_keys_and_tags_of_any_shape(store: CacheStore) -> None:
    # Braces, colons, non-ASCII: an entry and its tag record still share a slot on a cluster.
    key = "part:product:http://upstream/products/a%7Bb%7D:c}{d:é"
    await store.set(key, entry(b"odd", tags=("id=a}b{c", "x=é")))
    assert await _body(store, key) == b"odd"
    assert await store.invalidate("id=a}b{c") == 1
    assert await store.get(key) is None


# -- the in-process store ----------------------------------------------------------------------


async def test_memory_evicts_least_recently_used_by_entry_count() -> None:
    store = MemoryStore(max_entries=3)
    for key in "abc":
        await store.set(key, entry())
    assert store.peek("a") is not None  # now b is the least recently used
    await store.set("d", entry())

    assert len(store) == 3
    assert [store.peek(k) is not None for k in "abcd"] == [True, False, True, True]


async def test_memory_evicts_least_recently_used_by_bytes() -> None:
    store = MemoryStore(max_bytes=10)
    await store.set("a", entry(b"aaaa"))
    await store.set("b", entry(b"bbbb"))
    assert await _body(store, "a") == b"aaaa"
    await store.set("c", entry(b"cccc"))  # 12 bytes: b goes

    assert store.size_bytes == 8
    assert [await _body(store, k) for k in "abc"] == [b"aaaa", None, b"cccc"]
    await store.set("big", entry(b"x" * 10))  # fits alone: everything else goes
    assert (len(store), store.size_bytes) == (1, 10)
    assert await store.check() == "ok: in-process (1 entries, 10 bytes)"


async def test_memory_does_not_store_an_oversize_value() -> None:
    store = MemoryStore(max_bytes=10)
    await store.set("k", entry(b"small", tags=("t",)))
    await store.set("k", entry(b"x" * 11, tags=("t",)))

    assert await store.get("k") is None  # not the oversize value, nor the stale small one
    assert (len(store), store.size_bytes) == (0, 0)
    assert store._tags == {}


async def test_memory_keeps_the_tag_index_consistent() -> None:
    store = MemoryStore(max_entries=1)
    await store.set("expiring", entry(b"1", ttl=0.1, tags=("t", "u")))
    await asyncio.sleep(0.15)
    assert await store.get("expiring") is None  # expired: a miss, and dropped
    assert (len(store), store._tags) == (0, {})

    await store.set("evicted", entry(b"1", tags=("t",)))
    await store.set("newer", entry(b"2", tags=("u",)))  # evicts "evicted"
    assert store._tags == {"u": {"newer"}}
    assert await store.invalidate("t") == 0

    await store.set("newer", entry(b"3"))  # overwritten without tags
    assert store._tags == {}
    assert await _body(store, "newer") == b"3"
    store.forget(["u"])
    assert await _body(store, "newer") == b"3"
    await store.set("tagged", entry(b"4", tags=("u",)))
    store.forget(["u"])
    assert store.peek("tagged") is None


async def test_a_near_cache_holds_briefly_and_only_while_fresh() -> None:
    near = MemoryStore(hold=0.2)
    near.put("k", entry(ttl=60, swr=60))
    assert near.peek("k") is not None
    await asyncio.sleep(0.25)
    assert near.peek("k") is None  # its hold is over, however fresh it still is
    near.put("short", entry(ttl=0.05, swr=60, sie=60))
    assert near.peek("short") is not None
    await asyncio.sleep(0.08)
    assert near.peek("short") is None  # never held past its freshness: stale ones come from Redis
    near.put("stale", Entry(time.time() - 2, 1, 60, 60, b"v"))
    assert near.peek("stale") is None


async def test_make_store() -> None:
    memory = make_store(None, namespace="web-bff:v1", max_entries=5)
    assert isinstance(memory, MemoryStore)
    assert memory.name == "in-process"
    tiered = make_store("redis://127.0.0.1:1/0", namespace="web-bff:v1", near_hold=0.5)
    assert isinstance(tiered, TieredStore)
    assert (tiered.name, tiered.shared.namespace) == ("redis", "web-bff:v1")
    await tiered.aclose()
    alone = make_store("redis://127.0.0.1:1/0", namespace="web-bff:v1", near_hold=None)
    assert isinstance(alone, RedisStore)
    cluster = make_store("redis+cluster://127.0.0.1:1,127.0.0.1:2", namespace="n", near_hold=0)
    assert isinstance(cluster, RedisStore)
    assert cluster.name == "redis cluster"
    await alone.aclose()
    await cluster.aclose()


# -- Redis: shared, batched, near-cached -------------------------------------------------------


@pytest.fixture(params=["redis", "redis-cluster"])
def shared_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(
        "redis_cluster_url" if request.param == "redis-cluster" else "redis_url"
    )
    return url


async def test_redis_namespaces_share_or_separate(shared_url: str, redis_namespace: str) -> None:
    one = _shared(shared_url, redis_namespace)
    two = _shared(shared_url, redis_namespace)
    other = _shared(shared_url, redis_namespace + "-other")
    try:
        await one.set("k", entry(b"shared", tags=("t",)))
        assert await _body(two, "k") == b"shared"
        assert await other.get("k") is None
        assert await other.invalidate("t") == 0
        assert await two.invalidate("t") == 1
        assert await one.get("k") is None
        assert (await one.check()).startswith("ok: redis")
    finally:
        for store in (one, two, other):
            await store.aclose()
        await _drop_namespace(shared_url, redis_namespace)
        await _drop_namespace(shared_url, redis_namespace + "-other")


async def _connections_received(url: str) -> int:
    """Connections every server (every master) has received so far, the question's own ones
    included."""
    client = connect(parse_redis_url(url), timeout=2.0, socket_timeout=2.0)
    try:
        if isinstance(client, redis.asyncio.RedisCluster):
            stats = await client.info("stats", target_nodes=redis.asyncio.RedisCluster.PRIMARIES)
            return sum(int(node["total_connections_received"]) for node in stats.values())
        return int((await client.info("stats"))["total_connections_received"])
    finally:
        await client.aclose()


async def test_reads_and_writes_of_one_moment_share_one_pipeline(
    shared_url: str, redis_namespace: str
) -> None:
    store = _shared(shared_url, redis_namespace)
    try:
        # Connected first (a cluster client: to every master, the keys being spread over all).
        await asyncio.gather(*(store.set(f"warm-up{i}", entry()) for i in range(30)))
        first = await _connections_received(shared_url)
        before = await _connections_received(shared_url)
        asking = before - first  # what a question costs
        await asyncio.gather(*(store.set(f"k{i}", entry(f"{i}".encode())) for i in range(50)))
        bodies = await asyncio.gather(
            *(_body(store, f"k{i}") for i in range(50)), _body(store, "x")
        )
        assert bodies == [f"{i}".encode() for i in range(50)] + [None]
        # Fifty writes, then fifty-one reads, each made at the same moment: each set is one
        # pipeline over the connection the store had (one per master), so the only new
        # connections are those of the question that follows.
        assert await _connections_received(shared_url) - before == asking
    finally:
        await store.aclose()
        await _drop_namespace(shared_url, redis_namespace)


async def test_the_near_cache_spares_round_trips_and_forgets_on_invalidation(
    redis_url: str, redis_namespace: str
) -> None:
    shared = _shared(redis_url, redis_namespace)
    near = MemoryStore(hold=0.3)
    store = TieredStore(near, shared)
    other = _shared(redis_url, redis_namespace)
    try:
        await store.set("k", entry(b"one", tags=("id=1",)))
        assert near.peek("k") is not None
        await other.set("k", entry(b"two", tags=("id=1",)))  # another instance's write
        assert await _body(store, "k") == b"one"  # this instance lags, for its hold at most
        await asyncio.sleep(0.35)
        assert await _body(store, "k") == b"two"
        store.forget(["id=1"])  # what a peer's invalidation does
        assert near.peek("k") is None
        assert await _body(store, "k") == b"two"  # read from Redis again, and held
        assert near.peek("k") is not None
        assert await store.invalidate("id=1") == 1
        assert near.peek("k") is None and await store.get("k") is None
    finally:
        await store.aclose()
        await other.aclose()
        await _drop_namespace(redis_url, redis_namespace)


# -- Redis down, frozen, or a cluster losing a master ------------------------------------------


async def _timed_get(store: RedisStore, key: str) -> tuple[Entry | None, float]:
    start = time.perf_counter()
    value = await store.get(key)
    return value, time.perf_counter() - start


async def test_redis_stopped_then_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = RedisStore(redis_server.url, namespace="outage", retry_after=0.2)
    try:
        await store.set("k", entry(tags=("t",)))
        assert await _body(store, "k") == b"v"

        redis_server.stop()
        for _ in range(20):
            value, elapsed = await _timed_get(store, "k")
            assert value is None
            assert elapsed < 0.2
            await store.set("k", entry(tags=("t",)))  # does not raise
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
        await store.set("k", entry(b"again"))
        assert await _body(store, "k") == b"again"
        assert await store.check() == "ok: redis"
        back = [r for r in caplog.records if r.name == LOGGER and "redis is back" in r.getMessage()]
        assert len(back) == 1
    finally:
        await store.aclose()


async def test_redis_frozen_costs_each_read_its_timeout_until_it_is_taken_for_down(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = RedisStore(
        redis_server.url, namespace="frozen", op_timeout=0.05, down_after=0.3, retry_after=0.5
    )
    try:
        await store.set("k", entry())
        assert await _body(store, "k") == b"v"

        redis_server.pause()
        value, elapsed = await _timed_get(store, "k")  # a miss for its caller after op_timeout
        assert value is None
        assert 0.04 < elapsed < 0.2
        assert store.healthy  # slow is not down (yet)
        await asyncio.sleep(0.3)  # the pipeline went unanswered for down_after: down
        assert not store.healthy
        value, elapsed = await _timed_get(store, "k")  # marked down: no network at all
        assert value is None
        assert elapsed < 0.02
        assert (await store.check()).startswith("unreachable: no answer within 300 ms")
        warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
        assert len(warnings) == 1

        redis_server.resume()
        await asyncio.sleep(0.55)
        # The timed-out command's late reply must not be read as the answer to a later one.
        assert await _body(store, "k") == b"v"
        assert await store.get("missing") is None
        assert store.healthy
    finally:
        redis_server.resume()
        await store.aclose()


async def test_a_busy_loop_is_not_a_slow_redis(redis_url: str, redis_namespace: str) -> None:
    # The event loop too busy to read Redis's answer in time: not Redis's time. A miss then
    # would send the request to the upstream, and an outage would take the cache away from
    # every request (the store marked down, writes dropped).
    store = _shared(redis_url, redis_namespace, op_timeout=0.01, down_after=1.0)
    try:
        await store.set("k", entry())
        waiting = asyncio.ensure_future(store.get("k"))
        await asyncio.sleep(0)  # the read is queued; now the loop is busy for 30 ms
        time.sleep(0.03)  # noqa: ASYNC251 - the point: the loop is blocked
        found = await waiting
        assert found is not None and found.body == b"v"
        assert store.healthy
    finally:
        await store.aclose()
        await _drop_namespace(redis_url, redis_namespace)


async def test_nothing_is_lost_when_the_store_closes(redis_url: str, redis_namespace: str) -> None:
    store = _shared(redis_url, redis_namespace)
    writes = [asyncio.ensure_future(store.set(f"k{i}", entry())) for i in range(10)]
    await asyncio.sleep(0)  # asked for, not sent yet
    await store.aclose()
    assert all(w.done() for w in writes)
    assert await store.get("k0") is None  # closed: nothing more is done
    again = _shared(redis_url, redis_namespace)
    try:
        assert all([await again.get(f"k{i}") is not None for i in range(10)])
    finally:
        await again.aclose()
        await _drop_namespace(redis_url, redis_namespace)


async def test_a_cluster_losing_a_master_is_an_outage_then_it_recovers(
    redis_cluster: RedisCluster, redis_namespace: str
) -> None:
    store = RedisStore(
        redis_cluster.url, namespace=redis_namespace, down_after=0.5, retry_after=0.2
    )
    try:
        keys = [f"k{i}" for i in range(30)]  # spread over every master
        await asyncio.gather(*(store.set(k, entry(k.encode())) for k in keys))
        assert [await _body(store, k) for k in keys] == [k.encode() for k in keys]
        assert await store.check() == "ok: redis cluster (3 masters)"

        redis_cluster.nodes[1].stop()
        started = time.perf_counter()
        for key in keys:
            await store.get(key)  # never raises, never waits long
        assert time.perf_counter() - started < 3.0
        assert not (await store.check()).startswith("ok")

        redis_cluster.nodes[1].start()
        redis_cluster.wait_until_ok()
        for _ in range(100):  # the client finds the master again (10 s at most)
            if (await store.check()).startswith("ok"):
                break
            await asyncio.sleep(0.1)
        assert (await store.check()).startswith("ok")
        await asyncio.sleep(0.25)
        await store.set("after", entry(b"back"))
        assert await _body(store, "after") == b"back"
        assert store.healthy
    finally:
        await store.aclose()


async def _tag_size(url: str, namespace: str, tag: str) -> tuple[int, float]:
    """How many keys the set of ``tag`` holds, and the seconds it has left (whatever its
    type and name: the test must not depend on how the store spells them)."""
    client = connect(parse_redis_url(url), timeout=2.0, socket_timeout=2.0)
    try:
        found = [
            key
            async for key in client.scan_iter(match=f"{namespace}:*{{{tag}}}", count=1000)
            if b":k:" not in key and b":r:" not in key
        ]
        if not found:
            return 0, 0.0
        [name] = found
        kind = await client.type(name)
        size = await (client.zcard(name) if kind == b"zset" else client.scard(name))
        return int(size), (await client.pttl(name)) / 1000
    finally:
        await client.aclose()


async def test_a_tag_set_holds_the_live_entries_only(shared_url: str, redis_namespace: str) -> None:
    """Whole answers are tagged by their id, limit and offset: a tag such as ``limit=20`` is set
    with every list page ever answered, and never stops being set. Its set must shrink as those
    entries expire, however long it lives."""
    store = _shared(shared_url, redis_namespace)
    try:
        # One long-lived page keeps the tag alive, as the stream of answers does.
        await store.set("page-kept", entry(b"p", ttl=30, tags=("limit=20",)))
        await asyncio.gather(
            *(store.set(f"page-{n}", entry(b"p", ttl=1, tags=("limit=20",))) for n in range(500))
        )
        assert (await _tag_size(shared_url, redis_namespace, "limit=20"))[0] == 501
        await asyncio.sleep(1.3)
        await store.set("page-new", entry(b"p", ttl=20, tags=("limit=20",)))
        size, ttl = await _tag_size(shared_url, redis_namespace, "limit=20")
        assert size == 2
        # It lives as long as its longest-lived entry (30 s from its write, not the newest's 20 s;
        # the time the 500 writes took on a busy machine comes off it).
        assert 20 < ttl <= 30
        # An invalidation walks (and counts) only those.
        assert await store.invalidate("limit=20") == 2
        # A set whose entries have all expired is gone with them.
        await store.set("brief", entry(b"p", ttl=0.2, tags=("offset=40",)))
        await asyncio.sleep(0.4)
        assert await _tag_size(shared_url, redis_namespace, "offset=40") == (0, 0.0)
    finally:
        await store.aclose()
        await _drop_namespace(shared_url, redis_namespace)


@pytest.mark.parametrize("kind", ["redis_password", "redis_cluster_password"])
@pytest.mark.parametrize("password", ["wrong", None])
async def test_a_wrong_or_missing_password_is_said_as_such(
    request: pytest.FixtureRequest,
    kind: str,
    password: str | None,
    redis_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url: str = request.getfixturevalue(f"{kind}_url")
    scheme, _, rest = url.partition("://")
    hosts = rest.rpartition("@")[2]
    bad = f"{scheme}://{f':{password}@' if password else ''}{hosts}"
    store = _shared(bad, redis_namespace)
    caplog.set_level(logging.ERROR, logger=LOGGER)
    try:
        await store.start()
        check = await store.check()
        assert check.startswith("refused: "), check
        assert "refuses the credentials of REDIS_URL" in check
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert await store.get("k") is None  # a miss, never an error
        # The right password works, through the same code.
        good = _shared(url, redis_namespace)
        try:
            assert (await good.check()).startswith("ok: redis")
        finally:
            await good.aclose()
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    "kind", ["redis_password", "redis_tls", "redis_cluster_password", "redis_cluster_tls"]
)
async def test_a_secured_redis_stores_and_invalidates(
    request: pytest.FixtureRequest, kind: str, redis_namespace: str
) -> None:
    url: str = request.getfixturevalue(f"{kind}_url")
    store = _shared(url, redis_namespace)
    try:
        await store.set("k", entry(b"secured", tags=("id=1",)))
        assert await _body(store, "k") == b"secured"
        assert await store.invalidate("id=1") == 1
        assert store.healthy
    finally:
        await store.aclose()
        await _drop_namespace(url, redis_namespace)


async def test_tls_verifies_the_certificate_against_the_configured_ca(
    redis_tls_url: str, redis_tls_files: TlsFiles, redis_namespace: str
) -> None:
    bare = redis_tls_url.partition("?")[0]
    settings = GatewaySettings.from_env(
        {}, {"REDIS_URL": bare, "BFF_REDIS_CA_FILE": str(redis_tls_files.ca)}
    )
    assert settings.redis_url is not None
    trusting = _shared(settings.redis_url, redis_namespace)
    # Without the CA, the server's certificate is one the system does not trust: refused.
    untrusting = _shared(bare, redis_namespace)
    try:
        assert (await trusting.check()) == "ok: redis"
        refused = await untrusting.check()
        assert refused.startswith("unreachable: ") and "CERTIFICATE_VERIFY_FAILED" in refused
    finally:
        await trusting.aclose()
        await untrusting.aclose()
