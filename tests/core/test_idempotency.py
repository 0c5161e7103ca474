"""Idempotency keys, in process memory, on a real Redis and on a real Redis Cluster.

What the contract promises, checked against each store: a key is carried out once however many
claims race (on one instance or several, each with its own client); the same key and body
replays the stored answer; another body is refused (422), a running one too (409); an unknown
outcome stays unknown (never a second order); a released key may be used again; a record lives
at least 24 hours, and its key names neither the user nor the client's key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis.asyncio
from bff_core import InvalidParameter
from bff_core._guards import (
    DEFAULT_IDEMPOTENCY_TTL,
    Claimed,
    Idempotency,
    IdempotencyStore,
    MemoryRecords,
    RedisRecords,
    Refused,
    Replay,
    check_idempotency_key,
    fingerprint,
)

Make = Callable[[], Idempotency]


@pytest_asyncio.fixture(params=["memory", "redis", "redis-cluster"], loop_scope="session")
async def make(request: pytest.FixtureRequest, redis_namespace: str) -> AsyncIterator[Make]:
    """Builds idempotency guards sharing one store (as the instances of a fleet do)."""
    made: list[IdempotencyStore] = []
    memory = MemoryRecords()
    url: str | None = None
    if request.param != "memory":
        url = request.getfixturevalue(
            "redis_cluster_url" if request.param == "redis-cluster" else "redis_url"
        )

    def build() -> Idempotency:
        store: IdempotencyStore = memory if url is None else RedisRecords(url)
        made.append(store)
        return Idempotency(store, namespace=redis_namespace)

    yield build
    for store in made:
        await store.aclose()


async def _claim(guard: Idempotency, key: str = "k-1", body: bytes = b'{"a": 1}') -> object:
    return await guard.claim(user="ada", route="order", key=key, body=body, running_for=1.0)


async def test_concurrent_claims_on_several_instances_have_exactly_one_winner(make: Make) -> None:
    guards = [make() for _ in range(4)]
    claims = await asyncio.gather(*(_claim(guards[i % 4], "race") for i in range(20)))

    winners = [c for c in claims if isinstance(c, Claimed)]
    assert len(winners) == 1
    assert all(c == Refused("running") for c in claims if c is not winners[0])


async def test_done_is_replayed_with_the_stored_answer(make: Make) -> None:
    first, other = make(), make()
    claimed = await _claim(first, "done")
    assert isinstance(claimed, Claimed)
    await claimed.done(201, "application/json", b'{"id": "o-1"}')

    # The same body, another spelling of it: the same request.
    replay = await _claim(other, "done", b'{ "a" : 1 }')
    assert replay == Replay(201, "application/json", b'{"id": "o-1"}', unknown=False)


async def test_another_body_with_the_same_key_is_a_mismatch(make: Make) -> None:
    guard = make()
    claimed = await _claim(guard, "body")
    assert isinstance(claimed, Claimed)
    assert await _claim(guard, "body", b'{"a": 2}') == Refused("mismatch")
    await claimed.done(201, "application/json", b"{}")
    assert await _claim(guard, "body", b'{"a": 2}') == Refused("mismatch")


async def test_keys_are_per_user_and_per_route(make: Make) -> None:
    guard = make()
    assert isinstance(await _claim(guard, "mine"), Claimed)
    other_user = await guard.claim(
        user="bob", route="order", key="mine", body=b'{"a": 1}', running_for=1.0
    )
    other_route = await guard.claim(
        user="ada", route="review", key="mine", body=b'{"a": 1}', running_for=1.0
    )
    assert isinstance(other_user, Claimed) and isinstance(other_route, Claimed)


async def test_an_unknown_outcome_stays_unknown(make: Make) -> None:
    guard = make()
    claimed = await _claim(guard, "unknown")
    assert isinstance(claimed, Claimed)
    await claimed.unknown(504, "application/problem+json", b'{"title": "outcome unknown"}')

    again = await _claim(make(), "unknown")
    assert again == Replay(
        504, "application/problem+json", b'{"title": "outcome unknown"}', unknown=True
    )


async def test_a_released_key_may_be_used_again(make: Make) -> None:
    guard = make()
    claimed = await _claim(guard, "released")
    assert isinstance(claimed, Claimed)
    await claimed.release()
    assert isinstance(await _claim(guard, "released"), Claimed)


async def test_a_record_running_past_its_deadline_is_abandoned_not_run_again(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = make()
    assert isinstance(await _claim(guard, "abandoned"), Claimed)
    later = time.time() + 3600
    # The wall clock only: the stores' own expiry is untouched.
    monkeypatch.setattr("bff_core._guards._idempotency.time.time", lambda: later)
    assert await _claim(guard, "abandoned") == Refused("abandoned")


async def test_only_the_claimer_finishes_its_record(make: Make) -> None:
    guard = make()
    first = await _claim(guard, "owner")
    assert isinstance(first, Claimed)
    await first.release()
    second = await _claim(guard, "owner")
    assert isinstance(second, Claimed)
    await first.done(201, "application/json", b"late")  # the first claimer's, too late
    assert await _claim(guard, "owner") == Refused("running")


async def test_records_live_at_least_a_day_and_name_no_one(
    redis_url: str, redis_namespace: str
) -> None:
    assert DEFAULT_IDEMPOTENCY_TTL >= 24 * 3600
    guard = Idempotency(RedisRecords(redis_url), namespace=redis_namespace)
    client = redis.asyncio.from_url(redis_url)
    try:
        claimed = await guard.claim(
            user="ada@example.com", route="order", key="secret-key", body=b"{}", running_for=1
        )
        assert isinstance(claimed, Claimed)
        key = guard.record_key("ada@example.com", "order", "secret-key")
        assert "ada" not in key and "secret" not in key
        await claimed.done(201, "application/json", b"{}")
        ttl = await client.ttl(key)
        assert 24 * 3600 - 5 <= ttl <= 24 * 3600
    finally:
        await client.aclose()
        await guard.aclose()


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\nkey", "naïve"])
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidParameter):
        check_idempotency_key(key)


def test_fingerprints_compare_json_by_meaning() -> None:
    assert fingerprint(b'{"a":1,"b":[1,2]}') == fingerprint(b'{ "b": [1, 2], "a": 1 }')
    assert fingerprint(b'{"a":1}') != fingerprint(b'{"a":2}')
    assert fingerprint(None) == fingerprint(b"")
    assert fingerprint(b"not json") != fingerprint(b"not json ")
