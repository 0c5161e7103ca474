"""The Redis clients of bff-core against a real Redis Cluster: how a fresh client routes.

Every client the core builds (cache store, idempotency records, peers' channel) comes from
``_redis.connect``; what is checked here holds for each of them.
"""

from __future__ import annotations

import asyncio

import redis.asyncio
from bff_core._redis import connect, parse_redis_url


async def _moved_replies(url: str) -> int:
    """How many ``MOVED`` redirections the cluster's masters have answered so far (Redis
    counts its error replies by prefix in ``INFO errorstats``)."""
    total = 0
    for host, port in parse_redis_url(url).cluster_nodes:
        node = redis.asyncio.Redis(host=host, port=port)
        try:
            stats = await node.info("errorstats")
        finally:
            await node.aclose()
        moved = stats.get("errorstat_MOVED", {})
        total += int(moved.get("count", 0)) if isinstance(moved, dict) else 0
    return total


async def test_a_fresh_cluster_clients_concurrent_first_commands_go_to_their_keys_master(
    redis_cluster_url: str, redis_namespace: str
) -> None:
    # redis-py sends a new client's first commands to whichever node it knows first: each
    # comes back MOVED, and every fifth redirection closes the client under the others (a
    # claim then failed with "'NoneType' object has no attribute 'writelines'").
    keys = [f"{redis_namespace}:first-{index}" for index in range(24)]
    before = await _moved_replies(redis_cluster_url)
    client = connect(parse_redis_url(redis_cluster_url), timeout=2.0, socket_timeout=2.0)
    try:
        await asyncio.gather(*(client.set(key, b"v", px=60_000) for key in keys))
        assert await asyncio.gather(*(client.get(key) for key in keys)) == [b"v"] * len(keys)
    finally:
        for key in keys:
            await client.unlink(key)
        await client.aclose()

    assert await _moved_replies(redis_cluster_url) == before
