"""Where cache entries live: in this process, in Redis shared by every instance, or both.

A store keeps :class:`~bff_core._cache._policy.Entry` objects under string keys, each for as
long as it may be served (its freshness and its stale windows), findable by its tags; what is
cached, under which key, and whether an entry is fresh or stale is decided above it
(``_lookups``), the same way whichever store held the entry.

- :class:`MemoryStore`: a bounded in-process LRU. The store of an instance without Redis, and
  the *near cache* in front of Redis (then it keeps an entry no longer than a short hold and
  never past its freshness).
- :class:`~bff_core._cache._redis_store.RedisStore`: Redis (one server or a cluster), shared
  by every instance of a deployment.
- :class:`TieredStore`: the near cache in front of Redis, so a hot key costs no round trip.

A cache is an optimisation, never a dependency: no store operation raises or blocks a request
for long.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ._policy import Accept, Entry
from ._redis_store import RedisStore

__all__ = ["CacheStore", "MemoryStore", "TieredStore", "make_store"]

#: How long the near cache in front of Redis keeps an entry, by default (``BFF_CACHE_NEAR_MS``).
DEFAULT_NEAR_HOLD = 1.0


@runtime_checkable
class CacheStore(Protocol):
    """Entries under string keys, each kept as long as it may be served, found by its tags."""

    #: what ``/readyz`` and the logs call this store: ``"in-process"``, ``"redis"``, ...
    name: str

    def peek(self, key: str) -> Entry | None:
        """The entry held in this process for ``key``, if any: no I/O, no waiting."""
        ...

    async def get(self, key: str, accept: Accept | None = None) -> Entry | None:
        """The entry under ``key``, or ``None`` when there is none (or it expired, or the store
        is unreachable). A store shared with other processes gives an entry only if
        ``accept`` takes it (its body decodes as what it should be): what another process
        wrote, or anything with access to that store, is checked before it is used."""
        ...

    async def set(self, key: str, entry: Entry) -> None:
        """Keep ``entry`` under ``key`` as long as it may be served, replacing any previous
        entry; ``invalidate`` of any of ``entry.tags`` deletes it earlier."""
        ...

    async def invalidate(self, tag: str) -> int:
        """Delete every live entry that carries ``tag``; return how many were deleted."""
        ...

    def forget(self, tags: Iterable[str]) -> None:
        """Drop the copies this process holds of entries carrying any of ``tags`` (another
        instance invalidated them where they are shared)."""
        ...

    async def start(self) -> None:
        """Get ready before the first request (connect to Redis), briefly; never raises."""
        ...

    async def check(self) -> str:
        """For ``/readyz``: ``"ok: ..."`` when the store is usable, otherwise a short reason
        starting with ``"unreachable"`` or ``"degraded"``."""
        ...

    async def aclose(self) -> None:
        """Release connections. The store is not used afterwards."""
        ...


@dataclass(slots=True)
class _Held:
    entry: Entry
    expires_at: float  # time.monotonic() deadline


class MemoryStore:
    """An in-process LRU store, bounded both by entry count and by the total size of bodies.

    Args:
        max_entries: at most this many entries.
        max_bytes: at most this many bytes of bodies in all.
        hold: ``None``: an entry is kept as long as it may be served, stale windows included
            (the store of an instance without Redis). A number of seconds: at most that long
            and never past its freshness (the near cache in front of Redis: a copy that may
            lag the shared store by ``hold`` at most, and is never served stale from here).

    Every operation is synchronous underneath (no ``await`` inside), so it is atomic with
    respect to other tasks and never blocks. Expired entries are dropped when they are read,
    invalidated or reach the old end of the LRU order; until then they count towards the bounds
    but are never returned.
    """

    name = "in-process"

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        hold: float | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        if hold is not None and not hold > 0:
            raise ValueError(f"hold must be positive, not {hold}")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._hold = hold
        # Least recently used first: reads and writes move an entry to the end, eviction pops
        # the front.
        self._entries: OrderedDict[str, _Held] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        """How many entries are held, including expired ones not yet dropped."""
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """The total size of the bodies held."""
        return self._bytes

    def peek(self, key: str) -> Entry | None:
        """The entry under ``key``, or ``None``; a hit becomes the most recently used entry."""
        held = self._entries.get(key)
        if held is None:
            return None
        if held.expires_at <= time.monotonic() or (
            # Held near only while fresh, by the clock entries are stamped with.
            self._hold is not None and held.entry.fresh_left(time.time()) <= 0
        ):
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return held.entry

    async def get(self, key: str, accept: Accept | None = None) -> Entry | None:
        """Like :meth:`peek`: nothing here waits. ``accept`` is not asked: what is held here
        was written by this process."""
        return self.peek(key)

    def put(self, key: str, entry: Entry) -> None:
        """Keep ``entry`` (see :meth:`set`), synchronously."""
        self._remove(key)
        now = time.time()
        if self._hold is None:
            keep = entry.life_left(now)
        else:
            keep = min(self._hold, entry.fresh_left(now))
        if keep <= 0 or len(entry.body) > self._max_bytes:
            return
        self._entries[key] = _Held(entry, time.monotonic() + keep)
        self._bytes += len(entry.body)
        for tag in entry.tags:
            self._tags.setdefault(tag, set()).add(key)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            # The new entry is at the end and fits by itself, so it is never the one evicted.
            self._remove(next(iter(self._entries)))

    async def set(self, key: str, entry: Entry) -> None:
        """Keep ``entry``, evicting least recently used entries as needed.

        An entry with nothing left to keep, or larger than ``max_bytes``, is not stored; the
        previous entry under ``key`` is dropped all the same, so a reader never gets it back.
        """
        self.put(key, entry)

    async def invalidate(self, tag: str) -> int:
        """Delete every entry carrying ``tag``; return how many of them had not expired."""
        keys = self._tags.pop(tag, None)
        if not keys:
            return 0
        now = time.monotonic()
        removed = 0
        for key in keys:
            held = self._remove(key)
            if held is not None and held.expires_at > now:
                removed += 1
        return removed

    def forget(self, tags: Iterable[str]) -> None:
        for tag in tags:
            for key in self._tags.pop(tag, ()):
                self._remove(key)

    async def start(self) -> None:
        """Nothing to prepare."""

    async def check(self) -> str:
        """Always usable: ``"ok: in-process (N entries, M bytes)"``."""
        return f"ok: in-process ({len(self._entries)} entries, {self._bytes} bytes)"

    async def aclose(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._tags.clear()
        self._bytes = 0

    def _remove(self, key: str) -> _Held | None:
        """Drop ``key`` and its place in the tag index; return what it held, if anything."""
        held = self._entries.pop(key, None)
        if held is None:
            return None
        self._bytes -= len(held.entry.body)
        for tag in held.entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
        return held


class TieredStore:
    """A near cache in this process in front of a shared store (Redis).

    A read looks in the near cache first, then in the shared store; what the shared store
    gives is kept near for the near cache's hold (never past its freshness). A write goes to
    both. So a hot key costs a round trip to Redis once per hold at most, and two instances
    never disagree for longer than that, or less: an invalidation clears the near caches of
    every instance at once (the peers' channel calls :meth:`forget`). Only fresh entries are
    held near: a stale one is always read from the shared store, where a refresh lands.
    """

    def __init__(self, near: MemoryStore, shared: RedisStore) -> None:
        self.near = near
        self.shared = shared
        self.name = shared.name

    def peek(self, key: str) -> Entry | None:
        return self.near.peek(key)

    async def get(self, key: str, accept: Accept | None = None) -> Entry | None:
        entry = self.near.peek(key)
        if entry is not None:
            return entry  # accepted when it was read, or written here
        entry = await self.shared.get(key, accept)
        if entry is not None:
            self.near.put(key, entry)
        return entry

    async def set(self, key: str, entry: Entry) -> None:
        self.near.put(key, entry)
        await self.shared.set(key, entry)

    async def invalidate(self, tag: str) -> int:
        self.near.forget((tag,))
        return await self.shared.invalidate(tag)

    def forget(self, tags: Iterable[str]) -> None:
        self.near.forget(tags)

    async def start(self) -> None:
        await self.shared.start()

    async def check(self) -> str:
        return await self.shared.check()

    async def aclose(self) -> None:
        await self.near.aclose()
        await self.shared.aclose()


def make_store(
    redis_url: str | None,
    *,
    namespace: str,
    max_entries: int = 10_000,
    near_hold: float | None = DEFAULT_NEAR_HOLD,
) -> CacheStore:
    """The store of a gateway: in-process without ``redis_url``; with it, Redis (one server or
    a cluster) behind a near cache holding entries for ``near_hold`` seconds at most (``None``
    or 0: Redis alone).

    ``namespace`` (with a schema version, e.g. ``"web-bff:v1"``) only matters for Redis;
    ``max_entries`` bounds whatever this process holds.
    """
    if not redis_url:
        return MemoryStore(max_entries=max_entries)
    shared = RedisStore(redis_url, namespace=namespace)
    if not near_hold:
        return shared
    return TieredStore(MemoryStore(max_entries=max_entries, hold=near_hold), shared)
