"""Instances telling each other what changed, through a real Redis and a real Redis Cluster:
two gateways in one process, as two instances.

Each gateway has its own breakers, its own near cache and its own Redis connections, exactly as
two processes would; only the namespace ties them together. The end-to-end versions with BFF
processes are in tests/services/test_resilience.py and tests/services/test_cache.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import msgspec
import pytest
from bff_core import Aggregate, BreakerPolicy, CachePolicy, Gateway, Param, Source
from bff_core._cache import CacheStore, MemoryStore, RedisStore, TieredStore
from bff_core._redis import connect, parse_redis_url

from ..redis_server import RedisServer
from .scripted_upstream import Reply, ScriptedUpstream, scripted_upstream

POLICY = BreakerPolicy(failures=2, min_calls=2, reset_timeout=0.5)
AGGREGATE = Aggregate(
    "one", params=[Param("id")], sources=[Source("a", service="svc", path="/a/{id}", returns=dict)]
)


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    async with scripted_upstream() as server:
        yield server


@pytest.fixture(
    params=[
        "redis",
        "redis-cluster",
        "redis-password",
        "redis-tls",
        "redis-cluster-password",
        "redis-cluster-tls",
    ]
)
def shared_url(request: pytest.FixtureRequest) -> str:
    """Each in turn: a single Redis, and a cluster (sharded pub/sub on the channel's master);
    then secured: with a password, with TLS only (and a password) on a certificate of the
    tests' own CA, a cluster with a password."""
    url: str = request.getfixturevalue(request.param.replace("-", "_") + "_url")
    return url


@asynccontextmanager
async def instance(
    upstream: ScriptedUpstream,
    redis_url: str,
    namespace: str,
    cache: CacheStore | None = None,
    policy: BreakerPolicy = POLICY,
) -> AsyncIterator[Gateway]:
    async with Gateway(
        services={"svc": upstream.url},
        breakers=policy,
        retry_budget=None,
        cache=cache,
        peers=redis_url,
        peers_namespace=namespace,
    ) as gateway:
        await until(lambda: gateway.breaker_sharing().startswith("shared"))
        yield gateway


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()


def state(gateway: Gateway) -> str:
    return gateway.upstream_status()["svc"].breaker


async def trip(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    for _ in range(POLICY.failures):
        assert (await gateway.run(AGGREGATE, {"id": "1"}))["a"].upstream_status == 503
    assert state(gateway) == "open"


async def test_an_opening_and_a_closing_reach_the_other_instance(
    upstream: ScriptedUpstream, shared_url: str, redis_namespace: str
) -> None:
    async with (
        instance(upstream, shared_url, redis_namespace) as first,
        instance(upstream, shared_url, redis_namespace) as second,
        instance(upstream, shared_url, redis_namespace + "-other") as stranger,
    ):
        await trip(first, upstream)
        await until(lambda: state(second) == "open", within=1.0)
        sent = len(upstream.received)
        assert (await second.run(AGGREGATE, {"id": "1"}))["a"].reason == "circuit_open"
        assert len(upstream.received) == sent
        assert state(stranger) == "closed"
        assert second.breaker_sharing().endswith("transitions received from peers: 1")
        # The peer's opening time is kept: the second instance tries its trial when the first
        # one's reset timeout ends, and the first success closes both.
        upstream.script("/a/1", Reply(json={"ok": True}))
        await asyncio.sleep(POLICY.reset_timeout)
        assert (await second.run(AGGREGATE, {"id": "1"}))["a"].ok
        assert state(second) == "closed"
        await until(lambda: state(first) == "closed", within=1.0)


async def test_an_instance_that_starts_later_learns_the_open_breakers(
    upstream: ScriptedUpstream, shared_url: str, redis_namespace: str
) -> None:
    # A reset timeout longer than a loaded machine takes to start an instance over TLS: an
    # opening older than it is over, and rightly ignored by an instance that learns it late.
    policy = replace(POLICY, reset_timeout=30.0)
    async with instance(upstream, shared_url, redis_namespace, policy=policy) as first:
        await trip(first, upstream)
        # Recorded in Redis before the late instance starts (a loaded machine may take a while).
        client = connect(parse_redis_url(shared_url), timeout=2.0, socket_timeout=2.0)
        try:
            for _ in range(200):
                if await client.hget(f"{{{redis_namespace}}}:breakers", "svc"):
                    break
                await asyncio.sleep(0.01)
        finally:
            await client.aclose()
        async with instance(upstream, shared_url, redis_namespace, policy=policy) as late:
            # Learnt at its start, or at its first reconnection if Redis answered too slowly.
            await until(lambda: state(late) == "open", within=10.0)


CACHED = Aggregate(
    "cached",
    params=[Param("id")],
    sources=[Source("a", service="svc", path="/a/{id}", returns=dict, cache=CachePolicy(ttl=60))],
)


async def test_an_invalidation_clears_every_near_cache_at_once(
    upstream: ScriptedUpstream, shared_url: str, redis_namespace: str
) -> None:
    def store() -> CacheStore:
        # A near cache that would hold entries for a minute: only the invalidation clears it.
        # Redis gets a second to answer a read, not the shipped 50 ms: a busy machine's first
        # read over TLS from a cluster can take longer, and would count as a miss (a request to
        # the upstream), which is not what this test is about.
        return TieredStore(
            MemoryStore(max_entries=10_000, hold=60),
            RedisStore(shared_url, namespace=redis_namespace, op_timeout=1.0, down_after=1.0),
        )

    upstream.script("/a/1", Reply(json={"version": 1}))
    async with (
        instance(upstream, shared_url, redis_namespace, store()) as first,
        instance(upstream, shared_url, redis_namespace, store()) as second,
    ):
        assert (await first.run(CACHED, {"id": "1"}))["a"].value == {"version": 1}
        # Written to Redis after the answer: the lookup ends once it is there.
        await until(lambda: first.cache is not None and not first.cache._lookups)
        for _ in range(2):  # from Redis, then from its near cache
            assert (await second.run(CACHED, {"id": "1"}))["a"].value == {"version": 1}
        assert len(upstream.received) == 1
        upstream.script("/a/1", Reply(json={"version": 2}))
        count, told = await first.invalidate(["id=1"])
        assert count == 1
        assert told == 2  # both instances are subscribed
        await until(lambda: second._peers is not None and second._peers.invalidations == 1)
        assert (await second.run(CACHED, {"id": "1"}))["a"].value == {"version": 2}
        assert (await first.run(CACHED, {"id": "1"}))["a"].value == {"version": 2}


async def test_a_malformed_message_is_ignored(
    upstream: ScriptedUpstream,
    shared_url: str,
    redis_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bff_core.resilience")
    async with instance(upstream, shared_url, redis_namespace) as gateway:
        client = connect(parse_redis_url(shared_url), timeout=2.0, socket_timeout=2.0)
        channel = f"{{{redis_namespace}}}:peers"
        try:
            await client.spublish(channel, b"not json")
            wrong = {"type": "breaker", "origin": "x", "service": "svc", "state": "ajar", "at": 0}
            await client.spublish(channel, msgspec.json.encode(wrong))
        finally:
            await client.aclose()
        # Only these two are counted: a loaded machine may also log a slow Redis answer.
        await until(lambda: sum("malformed message" in r.getMessage() for r in caplog.records) >= 2)
        assert state(gateway) == "closed"
        await until(lambda: gateway.breaker_sharing().startswith("shared"))


async def test_redis_down_then_back(
    upstream: ScriptedUpstream, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bff_core.resilience")
    async with (
        instance(upstream, redis_server.url, "outage") as first,
        instance(upstream, redis_server.url, "outage") as second,
    ):
        redis_server.stop()
        await until(lambda: first.breaker_sharing().startswith("this instance only"))
        # Each instance decides alone meanwhile, and requests are not slowed down by Redis.
        await trip(first, upstream)
        assert state(second) == "closed"

        def warned(text: str) -> bool:
            return any(
                text in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
            )

        assert warned("breaker sharing through redis interrupted")
        await until(lambda: warned("could not share the open breaker"))  # published later
        redis_server.start()
        await until(lambda: first.breaker_sharing().startswith("shared"), within=3.0)
        await until(lambda: second.breaker_sharing().startswith("shared"), within=3.0)
        assert any(
            "breaker sharing through redis is back" in r.getMessage() for r in caplog.records
        )
        # Sharing works again: the first closes its breaker after a good trial, the second
        # opens its own, and that opening reaches the first.
        upstream.script("/a/1", Reply(json={"ok": True}))
        await asyncio.sleep(POLICY.reset_timeout)
        assert (await first.run(AGGREGATE, {"id": "1"}))["a"].ok
        assert state(first) == "closed"
        await trip(second, upstream)
        await until(lambda: state(first) == "open", within=1.0)


async def test_a_forged_opening_from_the_future_is_not_believed(
    upstream: ScriptedUpstream,
    redis_url: str,
    redis_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Anything that can write to Redis can write a transition: one dated in 2286 must not keep
    the breaker open on every instance until then, and one a little ahead opens it for one
    reset timeout at most, as a real peer's would."""
    caplog.set_level(logging.WARNING, logger="bff_core.resilience")
    client = connect(parse_redis_url(redis_url), timeout=2.0, socket_timeout=2.0)

    def forged(at: float) -> bytes:
        return msgspec.json.encode(
            {"type": "breaker", "origin": "forger", "service": "svc", "state": "open", "at": at}
        )

    try:
        # In the record an instance reads when it starts...
        await client.hset(f"{{{redis_namespace}}}:breakers", "svc", forged(9_999_999_999.0))
        upstream.script("/a/1", Reply(json={"ok": True}))
        async with instance(upstream, redis_url, redis_namespace) as gateway:
            assert state(gateway) == "closed"
            assert (await gateway.run(AGGREGATE, {"id": "1"}))["a"].ok
            # ...and published to the running ones.
            channel = f"{{{redis_namespace}}}:peers"
            await client.spublish(channel, forged(time.time() + 3600))
            await until(lambda: len(caplog.records) >= 2)
            assert all("ahead of this instance's clock" in r.getMessage() for r in caplog.records)
            assert state(gateway) == "closed"
            # Within the clock skew allowed: opened, as from now, and over after one timeout.
            await client.spublish(channel, forged(time.time() + 4))
            await until(lambda: state(gateway) == "open")
            await asyncio.sleep(POLICY.reset_timeout + 0.05)
            assert (await gateway.run(AGGREGATE, {"id": "1"}))["a"].ok
            assert state(gateway) == "closed"
    finally:
        await client.aclose()
