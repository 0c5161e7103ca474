"""Caching of upstream parts: freshness, stale-while-revalidate, stale-if-error, coalescing.

Where a part's answer comes from, decided per request:

- a fresh entry (younger than its TTL): served, no request;
- a stale entry within its stale-while-revalidate window: served at once, marked stale, and
  refreshed in the background, once per key however many requests see it stale;
- otherwise the upstream, through one *shared fetch* per key: identical requests in flight at
  the same moment in this instance wait for the same fetch (coalescing);
- when that fetch fails (timeout, connection, 5xx, the upstream's circuit breaker open) and
  an entry is within its stale-if-error window: that entry, marked stale with its age.

What is stored is the upstream's 200 body, as received, with its freshness, so every BFF view
decodes it with its own type. Never stored: failures, ``no-store``/``no-cache`` answers, and
per-user data (a request with credentials, or a ``private`` answer) unless the source's policy
says ``per_user``. The upstream's ``Cache-Control`` (``max-age``, ``stale-while-revalidate``,
``stale-if-error``) can shorten the declared windows, never lengthen them.

The store (in-process or Redis) never fails a request: a store that is down is a cache miss.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import msgspec

from ._errors import CircuitOpen, ResponseTooLarge, UpstreamUnavailable
from ._transport import UpstreamResponse

if TYPE_CHECKING:
    from ._cache_store import CacheStore
    from ._declaration import Source

#: How the cache sends a request: the gateway's resilient fetch (breaker, retries, hedges).
Fetcher: TypeAlias = Callable[
    ["Source", str, Mapping[str, str], float], Awaitable[UpstreamResponse]
]

__all__ = ["CachePolicy"]

logger = logging.getLogger("bff_core.cache")

#: Headers that make a request per-user: its answer must not be shared with other users.
_CREDENTIALS = ("authorization", "cookie")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How a source's answers may be cached (all in seconds).

    Args:
        ttl: how long an answer is fresh.
        stale_while_revalidate: how long after that it may still be served at once while a
            background request refreshes it.
        stale_if_error: how long after freshness it may be served when the upstream fails.
        per_user: the answers may be cached even for requests that carry credentials
            (``Authorization``, ``Cookie``); entries are then keyed by those credentials.
    """

    ttl: float
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    per_user: bool = False

    def __post_init__(self) -> None:
        if not self.ttl > 0:
            raise ValueError(f"CachePolicy ttl must be positive, got {self.ttl!r}")
        if self.stale_while_revalidate < 0 or self.stale_if_error < 0:
            raise ValueError("CachePolicy windows must not be negative")


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """A stored upstream answer, encoded compactly with msgpack."""

    stored_at: float  # wall clock: entries are shared between processes
    ttl: float
    swr: float
    sie: float
    body: bytes


_encode_entry = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(Entry).decode


class Answer:
    """What a cached part resolves to: a response, and where it came from."""

    __slots__ = ("age", "fresh_for", "response", "stale")

    def __init__(
        self,
        response: UpstreamResponse,
        *,
        stale: bool = False,
        age: float | None = None,
        fresh_for: float = 0.0,
    ) -> None:
        self.response = response
        #: served from the cache past its freshness (stale-while-revalidate or stale-if-error)
        self.stale = stale
        #: seconds since the upstream produced it, when it came from the cache
        self.age = age
        #: how much longer it is fresh (0: not cacheable), for the whole-aggregate cache
        self.fresh_for = fresh_for


@dataclass(frozen=True, slots=True)
class _Fetch:
    """One upstream request a cache entry comes from, and the tags its entry gets."""

    source: Source
    policy: CachePolicy
    url: str
    headers: Mapping[str, str]
    tags: list[str]

    @classmethod
    def of(
        cls,
        source: Source,
        policy: CachePolicy,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str],
    ) -> _Fetch:
        # Only made when a request must go out: a fresh hit pays for none of it.
        return cls(source, policy, url, headers, [f"{n}={params[n]}" for n in source.param_names])


class PartCache:
    """The per-gateway machinery between the engine, the store and the transport."""

    def __init__(self, store: CacheStore, fetch: Fetcher, *, refresh_timeout: float) -> None:
        self.store = store
        self._fetch = fetch
        self._refresh_timeout = refresh_timeout
        self._inflight: dict[str, asyncio.Task[UpstreamResponse]] = {}
        self._refreshing: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    async def get(
        self,
        source: Source,
        policy: CachePolicy,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str],
        time_left: float,
    ) -> Answer:
        """The part's answer, from the cache or the upstream, within ``time_left`` seconds.

        ``policy`` is the source's. Raises what the transport raises (or ``TimeoutError``)
        when there is no answer and no entry to fall back on.
        """
        key = _key(source, policy, url, headers)
        if key is None:  # per-user data the policy does not allow to share
            return Answer(await self._fetch(source, url, headers, time_left))
        started = time.monotonic()
        entry = await self._read(key)
        now = time.time()
        if entry is not None:
            age = max(now - entry.stored_at, 0.0)
            if age < entry.ttl:
                return _answer(entry, age, stale=False)
            if age < entry.ttl + entry.swr:
                self._refresh_later(key, _Fetch.of(source, policy, url, headers, params))
                return _answer(entry, age, stale=True)
        shared = self._shared_fetch(key, _Fetch.of(source, policy, url, headers, params))
        remaining = time_left - (time.monotonic() - started)
        try:
            # Leave a moment before the run's deadline to fall back on a stale entry.
            async with asyncio.timeout(max(remaining - 0.002, 0.0)):
                response = await asyncio.shield(shared)
        except (TimeoutError, UpstreamUnavailable, ResponseTooLarge, CircuitOpen):
            stale = _stale_if_error(entry)
            if stale is None:
                raise
            return stale
        if response.status >= 500:
            stale = _stale_if_error(entry)
            if stale is not None:
                return stale
        return Answer(response, fresh_for=_freshness(policy, response))

    async def _read(self, key: str) -> Entry | None:
        raw = await self.store.get(key)
        if raw is None:
            return None
        try:
            return _decode_entry(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # not an entry this release can read: a miss, replaced on the next store

    def _shared_fetch(self, key: str, fetch: _Fetch) -> asyncio.Task[UpstreamResponse]:
        task = self._inflight.get(key)
        if task is None:
            # Owned by the cache, not by the run that started it: the runs waiting for it may
            # end (deadline, client gone) without cancelling it for the others; it is bounded
            # by its own timeout and stores what it gets.
            task = asyncio.get_running_loop().create_task(
                self._fetch_and_store(key, fetch), name=f"bff-cache-fetch:{fetch.source.name}"
            )
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return task

    def _forget(self, key: str, task: asyncio.Task[UpstreamResponse]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            # Retrieved here, so a failure nobody waited for any more (every run that wanted
            # it ended first) is not reported as "exception never retrieved".
            task.exception()

    async def _fetch_and_store(self, key: str, fetch: _Fetch) -> UpstreamResponse:
        async with asyncio.timeout(self._refresh_timeout):
            response = await self._fetch(
                fetch.source, fetch.url, fetch.headers, self._refresh_timeout
            )
        windows = _windows(fetch.policy, response)
        if windows is not None:
            try:
                fetch.source.decoder.decode(response.body)
            except (msgspec.ValidationError, msgspec.DecodeError):
                return response  # not what the source declares: never stored
            ttl, swr, sie = windows
            entry = Entry(time.time(), ttl, swr, sie, response.body)
            await self.store.set(key, _encode_entry(entry), ttl + max(swr, sie), fetch.tags)
        return response

    def _refresh_later(self, key: str, fetch: _Fetch) -> None:
        if key in self._refreshing or key in self._inflight:
            return  # one refresh per key, not one per request that saw it stale
        self._refreshing.add(key)
        shared = self._shared_fetch(key, fetch)

        def done(task: asyncio.Task[UpstreamResponse]) -> None:
            self._refreshing.discard(key)
            if not task.cancelled() and task.exception() is not None:
                logger.info(
                    "background refresh of %s failed: %s", fetch.source.name, task.exception()
                )

        shared.add_done_callback(done)

    async def aclose(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.aclose()


def _key(source: Source, policy: CachePolicy, url: str, headers: Mapping[str, str]) -> str | None:
    credentials = [headers[h] for h in _CREDENTIALS if h in headers]
    if not credentials:
        return f"part:{source.name}:{url}"
    if not policy.per_user:
        return None
    user = hashlib.blake2b("\n".join(credentials).encode(), digest_size=12).hexdigest()
    return f"part:{source.name}:{url}:user={user}"


def _answer(entry: Entry, age: float, *, stale: bool) -> Answer:
    response = UpstreamResponse(status=200, headers={}, body=entry.body)
    return Answer(response, stale=stale, age=age, fresh_for=max(entry.ttl - age, 0.0))


def _stale_if_error(entry: Entry | None) -> Answer | None:
    if entry is None:
        return None
    age = max(time.time() - entry.stored_at, 0.0)
    if age < entry.ttl + entry.sie:
        return _answer(entry, age, stale=True)
    return None


def _windows(policy: CachePolicy, response: UpstreamResponse) -> tuple[float, float, float] | None:
    """(ttl, stale-while-revalidate, stale-if-error) to store with, or None: do not store."""
    if response.status != 200:
        return None
    directives = _cache_control(response.headers.get("cache-control", ""))
    if "no-store" in directives or "no-cache" in directives:
        return None
    if "private" in directives and not policy.per_user:
        return None
    ttl = _capped(directives.get("max-age"), policy.ttl)
    if ttl <= 0:
        return None
    return (
        ttl,
        _capped(directives.get("stale-while-revalidate"), policy.stale_while_revalidate),
        _capped(directives.get("stale-if-error"), policy.stale_if_error),
    )


def _freshness(policy: CachePolicy, response: UpstreamResponse) -> float:
    windows = _windows(policy, response)
    return 0.0 if windows is None else windows[0]


def _capped(upstream: str | None, declared: float) -> float:
    """The upstream may shorten a declared window, never lengthen it."""
    if upstream is None:
        return declared
    try:
        return min(max(float(int(upstream)), 0.0), declared)
    except ValueError:
        return declared


def _cache_control(value: str) -> dict[str, str | None]:
    directives: dict[str, str | None] = {}
    for item in value.split(","):
        name, _, argument = item.strip().partition("=")
        if name:
            directives[name.lower()] = argument.strip('"') if argument else None
    return directives
