"""Where cached bytes live: an in-process LRU, or Redis shared by every replica.

A store only keeps opaque values under string keys with a time-to-live and optional tags;
what is cached, under which key and for how long is decided by the caching logic above it.

A cache is an optimisation, never a dependency: no store operation raises or blocks a request
for long. The in-process store never waits at all. The Redis store bounds every operation by
``op_timeout`` and, once Redis has failed, answers every call at once as a miss (or a no-op)
for ``retry_after`` seconds before it tries again, so a dead or slow Redis costs a request at
most one short timeout, and most requests nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast, runtime_checkable

import redis.asyncio
import redis.exceptions

from ._redis import close_quietly, connect, describe

__all__ = [
    "CacheStore",
    "MemoryStore",
    "RedisStore",
    "make_store",
]

logger = logging.getLogger("bff_core.cache")

_T = TypeVar("_T")


@runtime_checkable
class CacheStore(Protocol):
    """Bytes under string keys, each with a time-to-live and optional tags."""

    #: ``"in-process"`` or ``"redis"``: what ``/readyz`` and the logs call this store.
    name: str

    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None`` if there is none (or it expired)."""
        ...

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (> 0), replacing any previous value
        and its tags. ``invalidate(tag)`` for any of ``tags`` deletes it earlier."""
        ...

    async def invalidate(self, tag: str) -> int:
        """Delete every live entry that was set with ``tag``; return how many were deleted."""
        ...

    async def check(self) -> str:
        """For ``/readyz``: ``"ok: ..."`` when the store is usable, otherwise a short reason
        starting with ``"unreachable"`` or ``"degraded"``."""
        ...

    async def aclose(self) -> None:
        """Release connections. The store is not used afterwards."""
        ...


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires_at: float  # time.monotonic() deadline
    tags: frozenset[str]


class MemoryStore:
    """An in-process LRU store, bounded both by entry count and by the total size of values.

    Every operation is synchronous underneath (no ``await`` inside), so it is atomic with
    respect to other tasks and never blocks. Expired entries are dropped when they are read,
    invalidated or reach the old end of the LRU order; until then they count towards the bounds
    but are never returned.
    """

    name = "in-process"

    def __init__(self, *, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        # Least recently used first: get/set move an entry to the end, eviction pops the front.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        """How many entries are held, including expired ones not yet dropped."""
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """The total size of the values held."""
        return self._bytes

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None``; a hit becomes the most recently used entry."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= time.monotonic():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        """Store ``value`` for ``ttl`` seconds, evicting least recently used entries as needed.

        A value larger than ``max_bytes``, or a non-positive ``ttl``, is not stored; the
        previous value under ``key`` is dropped all the same, so a reader never gets it back
        after this call.
        """
        self._remove(key)
        if ttl <= 0 or len(value) > self._max_bytes:
            return
        entry = _Entry(value, time.monotonic() + ttl, frozenset(tags))
        self._entries[key] = entry
        self._bytes += len(value)
        for tag in entry.tags:
            self._tags.setdefault(tag, set()).add(key)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            # The new entry is at the end and fits by itself, so it is never the one evicted.
            oldest = next(iter(self._entries))
            self._remove(oldest)

    async def invalidate(self, tag: str) -> int:
        """Delete every entry set with ``tag``; return how many of them had not expired."""
        keys = self._tags.pop(tag, None)
        if not keys:
            return 0
        now = time.monotonic()
        removed = 0
        for key in keys:
            entry = self._remove(key)
            if entry is not None and entry.expires_at > now:
                removed += 1
        return removed

    async def check(self) -> str:
        """Always usable: ``"ok: in-process (N entries, M bytes)"``."""
        return f"ok: in-process ({len(self._entries)} entries, {self._bytes} bytes)"

    async def aclose(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._tags.clear()
        self._bytes = 0

    def _remove(self, key: str) -> _Entry | None:
        """Drop ``key`` and its place in the tag index; return the entry it held, if any."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self._bytes -= len(entry.value)
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
        return entry


class RedisStore:
    """A store in Redis (7.0 or later), shared by every replica that uses the same namespace.

    Every key this store touches starts with ``f"{namespace}:"``: entries are under
    ``{namespace}:k:{key}``, the set of each entry's tags under ``{namespace}:r:{key}`` and the
    set of the keys set with a tag under ``{namespace}:t:{tag}``. Put a schema version in
    the namespace (``"web-bff:v1"``) and bump it whenever the format of the cached values
    changes: replicas of the old and new version then never read each other's entries, and the
    old ones simply expire.

    Tags: each tag is a Redis set of the keys set with it. Its expiry is kept at the longest
    ttl of any entry added to it (``PEXPIRE ... NX`` then ``PEXPIRE ... GT``, hence Redis 7.0),
    so a tag set never disappears before one of its entries. It may still name keys that have
    expired or were overwritten without that tag (until it expires itself), which costs memory
    proportional to the distinct keys set with the tag; ``invalidate`` checks each entry's own
    tag record, so it deletes and counts exactly the live entries that carry the tag.

    Failures: every operation is bounded by ``op_timeout`` seconds. Any error (timeout, refused
    connection, error reply) marks the store down and logs one warning; for the next
    ``retry_after`` seconds every operation returns at once as a miss (``get`` gives ``None``,
    ``invalidate`` gives 0, ``set`` does nothing) without touching the network. After that, one
    operation at a time probes Redis; the first success logs that Redis is back. Nothing here
    ever raises to the caller. An invalidation lost that way leaves its entries in place until
    their ttl ends.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "bff",
        op_timeout: float = 0.05,
        retry_after: float = 1.0,
    ) -> None:
        if not namespace:
            raise ValueError("namespace must not be empty")
        if op_timeout <= 0:
            raise ValueError(f"op_timeout must be positive, not {op_timeout}")
        if retry_after < 0:
            raise ValueError(f"retry_after must not be negative, not {retry_after}")
        self._url = url
        self._namespace = namespace
        self._op_timeout = op_timeout
        self._retry_after = retry_after
        # Created on first use, so that its connections belong to the loop that serves requests.
        self._client: redis.asyncio.Redis | None = None
        self._down = False
        self._down_until = 0.0
        self._probing = False

    @property
    def namespace(self) -> str:
        """The prefix (without the trailing colon) of every key this store touches."""
        return self._namespace

    @property
    def healthy(self) -> bool:
        """False from a failed operation until the next successful one."""
        return not self._down

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``; ``None`` on a miss or when Redis is down or slow."""
        name = self._key(key)

        async def op(client: redis.asyncio.Redis) -> bytes | None:
            # The client does not decode responses (no decode_responses=True): always bytes.
            return cast("bytes | None", await client.get(name))

        return await self._attempt(op, None)

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        """Store ``value`` for ``ttl`` seconds with ``tags``, in one round trip.

        A non-positive ``ttl`` stores nothing (the previous value is deleted). Does nothing when
        Redis is down or slow.
        """
        name = self._key(key)
        record = self._record(key)
        ttl_ms = max(1, round(ttl * 1000)) if ttl > 0 else 0
        unique_tags = list(dict.fromkeys(tags))

        async def op(client: redis.asyncio.Redis) -> None:
            if ttl_ms == 0:
                await client.unlink(name, record)
                return
            # transaction=False: no MULTI/EXEC, the commands are just sent together. A
            # concurrent invalidate may see the new value with the old tag record: it then
            # deletes it once too often (a miss), or not at all for a tag set concurrently.
            pipe = client.pipeline(transaction=False)
            pipe.set(name, value, px=ttl_ms)
            # The record of the entry's current tags lives exactly as long as the entry, and an
            # overwrite replaces it: invalidate deletes only entries that still carry the tag.
            pipe.unlink(record)
            if unique_tags:
                pipe.sadd(record, *unique_tags)
                pipe.pexpire(record, ttl_ms)
            for tag in unique_tags:
                tag_set = self._tag(tag)
                pipe.sadd(tag_set, key)
                # A fresh set has no expiry: NX gives it this ttl. An existing one keeps the
                # longest ttl of its entries: GT only ever extends it.
                pipe.pexpire(tag_set, ttl_ms, nx=True)
                pipe.pexpire(tag_set, ttl_ms, gt=True)
            await pipe.execute()

        await self._attempt(op, None)

    async def invalidate(self, tag: str) -> int:
        """Delete the entries set with ``tag``; return how many existed. 0 when Redis is down."""
        tag_set = self._tag(tag)

        async def op(client: redis.asyncio.Redis) -> int:
            # Members are bare cache keys; some may since have expired or been overwritten
            # without this tag: their tag record says which still carry it.
            members = list(cast("set[bytes]", await client.smembers(tag_set)))
            if not members:
                return 0
            pipe = client.pipeline(transaction=False)
            for member in members:
                pipe.sismember(self._record(member), tag)
            carried = cast("list[int]", await pipe.execute())
            current = [member for member, has in zip(members, carried, strict=True) if has]
            if not current:
                return 0
            # MULTI/EXEC: an entry set again with this tag meanwhile is either deleted here or
            # added back to the tag set after this, never left out of it while alive. Members
            # that no longer carry the tag are left in the set (removing them could race with a
            # set that tags them again); they go when the tag set expires.
            pipe = client.pipeline(transaction=True)
            pipe.unlink(*(self._key(member) for member in current))
            pipe.unlink(*(self._record(member) for member in current))
            pipe.srem(tag_set, *current)
            unlinked, _, _ = await pipe.execute()
            return int(unlinked)

        return await self._attempt(op, 0)

    async def check(self) -> str:
        """``"ok: redis"`` if Redis answers PING within ``op_timeout``, else the reason.

        This always asks Redis, even while the store is marked down: it is the readiness probe.
        """
        failure: list[BaseException] = []

        async def op(client: redis.asyncio.Redis) -> bool:
            return bool(await client.ping())

        if await self._attempt(op, False, force=True, failure=failure):
            return "ok: redis"
        if failure and isinstance(failure[0], redis.exceptions.ResponseError):
            # Redis answered, but refuses (NOAUTH, LOADING, ...): reachable, not usable.
            return f"degraded: {self._describe(failure[0])}"
        return f"unreachable: {self._describe(failure[0]) if failure else 'no answer'}"

    async def aclose(self) -> None:
        """Close the connections to Redis."""
        client, self._client = self._client, None
        if client is not None:
            await close_quietly(
                client, within=self._op_timeout, logger=logger, what="redis cache client"
            )

    def _key(self, key: str | bytes) -> str:
        return f"{self._namespace}:k:{_text(key)}"

    def _record(self, key: str | bytes) -> str:
        return f"{self._namespace}:r:{_text(key)}"

    def _tag(self, tag: str) -> str:
        return f"{self._namespace}:t:{tag}"

    def _connect(self) -> redis.asyncio.Redis:
        if self._client is None:
            # No retries inside redis-py: the store's own down window replaces them.
            self._client = connect(
                self._url, timeout=self._op_timeout, socket_timeout=self._op_timeout
            )
        return self._client

    async def _attempt(
        self,
        op: Callable[[redis.asyncio.Redis], Awaitable[_T]],
        fallback: _T,
        *,
        force: bool = False,
        failure: list[BaseException] | None = None,
    ) -> _T:
        """Run ``op`` within ``op_timeout``; on any failure mark the store down and return
        ``fallback``. While down, return ``fallback`` at once unless it is time to probe."""
        probe = self._down and not force
        if probe:
            if self._probing or time.monotonic() < self._down_until:
                return fallback
            # Only one probe at a time: the others keep answering at once until it succeeds.
            self._probing = True
        try:
            async with asyncio.timeout(self._op_timeout):
                result = await op(self._connect())
        except Exception as exc:
            # Exception, not BaseException: a cancellation of the caller must propagate.
            # asyncio.timeout turns its own cancellation into TimeoutError, caught here.
            self._mark_down(exc)
            if failure is not None:
                failure.append(exc)
            return fallback
        finally:
            if probe:
                self._probing = False
        if self._down:
            self._down = False
            logger.info("redis is back: the cache is in use again")
        return result

    def _mark_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._retry_after
        if not self._down:
            self._down = True
            logger.warning(
                "redis cache unavailable, serving without it (next attempt in %gs): %s",
                self._retry_after,
                self._describe(exc),
            )

    def _describe(self, exc: BaseException) -> str:
        return describe(exc, self._op_timeout)


def _text(key: str | bytes) -> str:
    # Keys come back from Redis (SMEMBERS) as the UTF-8 bytes they were sent as.
    return key.decode() if isinstance(key, bytes) else key


def make_store(redis_url: str | None, *, namespace: str, max_entries: int = 10_000) -> CacheStore:
    """A :class:`RedisStore` on ``redis_url`` if one is given, else a :class:`MemoryStore`.

    ``namespace`` (with a schema version, e.g. ``"web-bff:v1"``) only matters for Redis;
    ``max_entries`` only for the in-process store.
    """
    if redis_url:
        return RedisStore(redis_url, namespace=namespace)
    return MemoryStore(max_entries=max_entries)
