"""Caching of upstream parts and whole answers: freshness, stale-while-revalidate,
stale-if-error, coalescing.

Where a part's answer comes from, decided per request:

- a fresh entry held in this process (the in-process store, or the near cache in front of
  Redis): served, nothing else happens;
- otherwise the part's *lookup* for its key, one at a time per key in this instance: requests
  that want the key meanwhile all wait for the same lookup (coalescing). A lookup reads the
  store (Redis: with every other read of the same moment, in one round trip) and then:
  - a fresh entry: that is the answer;
  - a stale entry within its stale-while-revalidate window: served at once, marked stale, and
    refreshed by the lookup in the background: one refresh however many requests see it;
  - otherwise the upstream, through the resilient fetch (breaker, retries, hedges): one
    request for everyone waiting, and when it fails (timeout, connection, 5xx, the upstream's
    circuit breaker open) an entry within its stale-if-error window, marked stale with its
    age.

A lookup ends only once what it fetched is in the store (and, before that, in this process),
so a request never misses a key that a lookup of this instance has just fetched: it either
joins the lookup or reads what the lookup stored. Those waiting get the answer as soon as it
arrives; the write to the store follows, off their path.

What is stored is the upstream's 200 body, as received, with its freshness, so every BFF view
decodes it with its own type. Never stored: failures, ``no-store``/``no-cache`` answers, and
per-user data (a request with credentials, or a ``private`` answer) unless the source's policy
says ``per_user``. The upstream's ``Cache-Control`` (``max-age``, ``stale-while-revalidate``,
``stale-if-error``) can shorten the declared windows, never lengthen them.

Whole answers (the encoded view of an aggregate) are kept the same way, for as long as every
part in them is fresh, and written in the background.

The store (in-process or Redis) never fails a request: a store that is down is a cache miss,
and so is an entry read from Redis whose body does not decode as its source declares (or, for
a whole answer, as the route's view): whatever can write to Redis can write there, and such an
entry would otherwise fail every request that read it until it expired.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, TypeAlias

import msgspec

from .._deadline import Deadline
from .._declare import CachePolicy
from .._errors import CircuitOpen, ResponseTooLarge, UpstreamUnavailable
from .._transports import UpstreamResponse
from ._policy import Entry, freshness, windows

if TYPE_CHECKING:
    from .._declare import Source
    from ._stores import CacheStore

#: How the cache sends a request: the gateway's resilient fetch (breaker, retries, hedges).
Fetcher: TypeAlias = Callable[
    ["Source", str, Mapping[str, str], Deadline], Awaitable[UpstreamResponse]
]

__all__ = ["Answer", "Cache", "ChunkFetch"]

logger = logging.getLogger("bff_core.cache")

#: Headers that make a request per-user: its answer must not be shared with other users.
_CREDENTIALS = ("authorization", "cookie")
#: Leave this much before a part's deadline to fall back on a stale entry.
_FALLBACK_MARGIN = 0.002
#: The failures after which a stale-if-error entry is served instead.
_FAILURES = (TimeoutError, UpstreamUnavailable, ResponseTooLarge, CircuitOpen)


class Answer:
    """What a cached part resolves to: a response, and where it came from."""

    __slots__ = ("age", "bypassed", "fresh_for", "response", "stale")

    def __init__(
        self,
        response: UpstreamResponse,
        *,
        stale: bool = False,
        age: float | None = None,
        fresh_for: float = 0.0,
        bypassed: bool = False,
    ) -> None:
        self.response = response
        #: served from the cache past its freshness (stale-while-revalidate or stale-if-error)
        self.stale = stale
        #: seconds since the upstream produced it, when it came from the cache
        self.age = age
        #: how much longer it is fresh (0: not cacheable), for the whole-aggregate cache
        self.fresh_for = fresh_for
        #: not looked up: the policy does not share this answer (per-user data)
        self.bypassed = bypassed


#: How the items of a list are read from their upstream, a chunk of ids at a time (one
#: request): each id's answer, as if it had been read alone. Raises what a fetch raises for
#: the whole chunk.
ChunkFetch: TypeAlias = Callable[[list[str], Deadline], Awaitable[Mapping[str, UpstreamResponse]]]


class _Lookup:
    """One key's lookup in this instance: what the store held, and what the upstream said."""

    __slots__ = (
        "fetch",
        "found",
        "headers",
        "policy",
        "response",
        "settled",
        "source",
        "tags",
        "task",
        "url",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        source: Source,
        policy: CachePolicy,
        url: str,
        headers: Mapping[str, str],
        tags: list[str],
    ) -> None:
        self.source = source
        self.policy = policy
        self.url = url
        self.headers = headers
        self.tags = tags
        #: the entry the store held (``None``: none), once it answered
        self.found: asyncio.Future[Entry | None] = loop.create_future()
        #: the upstream's answer, once the lookup fetched one
        self.response: asyncio.Future[UpstreamResponse] = loop.create_future()
        self.task: asyncio.Task[None] | None = None
        #: how an item's lookup fetches (through its list's chunks); ``None``: its own request
        self.fetch: Callable[[], Awaitable[UpstreamResponse]] | None = None
        #: told when the lookup ends, fetched or not (its list's chunks wait for every item)
        self.settled: Callable[[], None] | None = None


class Cache:
    """The per-gateway machinery between the engine, the store and the transport."""

    def __init__(self, store: CacheStore, fetch: Fetcher, *, refresh_timeout: float) -> None:
        self.store = store
        self._fetch = fetch
        self._refresh_timeout = refresh_timeout
        self._lookups: dict[str, _Lookup] = {}
        #: whole answers being written, by key: one write per key at a time
        self._writing: dict[str, asyncio.Task[None]] = {}
        #: lists' chunk reads under way (held here: the loop keeps only weak references)
        self._chunks: set[asyncio.Task[None]] = set()

    async def get(
        self,
        source: Source,
        policy: CachePolicy,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str],
        deadline: Deadline,
    ) -> Answer:
        """The part's answer, from the cache or the upstream, by ``deadline``.

        ``policy`` is the source's. Raises what the transport raises (or ``TimeoutError``)
        when there is no answer and no entry to fall back on.
        """
        key = _key(source, policy, url, headers)
        if key is None:  # per-user data the policy does not allow to share
            return Answer(await self._fetch(source, url, headers, deadline), bypassed=True)
        held = self.store.peek(key)
        if held is not None:
            age = time.time() - held.stored_at
            if age < held.ttl:
                return _answer(held, age, stale=False)  # the hot path: nothing else to do
        loop = asyncio.get_running_loop()
        lookup = self._lookups.get(key)
        if lookup is None:
            # Not {user}: a tag is a Redis key, and one user's entries are never dropped alone.
            tags = [f"{n}={params[n]}" for n in source.param_names if n != "user"]
            lookup = self._start(loop, key, _Lookup(loop, source, policy, url, headers, tags))
        return await self._resolve(lookup, policy, deadline, loop)

    async def get_items(
        self,
        source: Source,
        policy: CachePolicy,
        urls: Mapping[str, str],
        headers: Mapping[str, str],
        tags: Callable[[str], list[str]],
        deadline: Deadline,
        fetch: ChunkFetch,
        *,
        size: int,
        concurrency: int,
        answered: Callable[[str, Answer | Exception], None],
    ) -> None:
        """Each item's answer, from the cache or its upstream, by ``deadline``.

        ``urls`` maps each item id to the URL its entry is kept under. What the cache does
        not hold fresh is read through ``fetch`` in chunks of at most ``size`` ids, at most
        ``concurrency`` chunks at once, every id that needs the upstream in one round of
        chunks; an item another request is looking up already waits for that lookup instead.
        ``answered`` is told each item's answer (or its failure) as soon as it is known.
        """
        loop = asyncio.get_running_loop()
        now = time.time()
        waiting: list[tuple[str, _Lookup]] = []
        starting: dict[str, tuple[str, _Lookup]] = {}
        unshared: list[str] = []
        for item, url in urls.items():
            key = _key(source, policy, url, headers)
            if key is None:  # per-user data the policy does not allow to share
                unshared.append(item)
                continue
            held = self.store.peek(key)
            if held is not None and (age := now - held.stored_at) < held.ttl:
                answered(item, _answer(held, age, stale=False))
                continue
            lookup = self._lookups.get(key)
            if lookup is None:
                lookup = _Lookup(loop, source, policy, url, headers, tags(item))
                starting[item] = (key, lookup)
            waiting.append((item, lookup))
        if starting:
            chunks = _Chunks(
                loop, fetch, list(starting), size, concurrency, self._refresh_timeout, self._chunks
            )
            for item, (key, lookup) in starting.items():
                lookup.fetch = partial(chunks.want, item)
                lookup.settled = partial(chunks.settled, item)
                self._start(loop, key, lookup)

        async def resolve(item: str, lookup: _Lookup) -> None:
            try:
                answer: Answer | Exception = await self._resolve(lookup, policy, deadline, loop)
            except Exception as exc:
                answer = exc
            answered(item, answer)

        async def bypass(chunk: list[str]) -> None:
            try:
                responses = await fetch(chunk, deadline)
            except Exception as exc:
                for item in chunk:
                    answered(item, exc)
            else:
                for item in chunk:
                    answered(item, Answer(responses[item], bypassed=True))

        waits = [resolve(item, lookup) for item, lookup in waiting]
        waits += [bypass(unshared[i : i + size]) for i in range(0, len(unshared), size)]
        if len(waits) == 1:
            await waits[0]
        elif waits:
            await asyncio.gather(*waits)

    async def _resolve(
        self,
        lookup: _Lookup,
        policy: CachePolicy,
        deadline: Deadline,
        loop: asyncio.AbstractEventLoop,
    ) -> Answer:
        """What ``lookup`` means for one request: the entry, the upstream, or a stale copy."""
        found = lookup.found
        entry = found.result() if found.done() else await asyncio.shield(found)
        response = lookup.response
        if entry is not None and not _succeeded(response):
            age = max(time.time() - entry.stored_at, 0.0)
            if age < entry.ttl or response.cancelled():
                # Fresh (a lookup that found it fresh fetches nothing, even if it has turned
                # stale since by a hair).
                return _answer(entry, age, stale=age >= entry.ttl)
            if age < entry.ttl + entry.swr:
                return _answer(entry, age, stale=True)  # the lookup refreshes it
        try:
            async with asyncio.timeout_at(max(deadline.at - _FALLBACK_MARGIN, loop.time())):
                answer = await asyncio.shield(response)
        except _FAILURES:
            stale = _stale_if_error(entry)
            if stale is None:
                raise
            return stale
        if answer.status >= 500:
            stale = _stale_if_error(entry)
            if stale is not None:
                return stale
        return Answer(answer, fresh_for=freshness(policy, answer))

    def _start(self, loop: asyncio.AbstractEventLoop, key: str, lookup: _Lookup) -> _Lookup:
        self._lookups[key] = lookup
        # Owned by the cache, not by the run that started it: the runs waiting for it may end
        # (deadline, client gone) without cancelling it for the others; it is bounded by its
        # own timeout and stores what it gets.
        lookup.task = loop.create_task(
            self._look_up(key, lookup), name=f"bff-cache-lookup:{lookup.source.name}"
        )
        return lookup

    async def _look_up(self, key: str, lookup: _Lookup) -> None:
        try:
            entry = await self.store.get(key, partial(_readable, lookup.source.decoder.decode))
            lookup.found.set_result(entry)
            now = time.time()
            if entry is not None and now - entry.stored_at < entry.ttl:
                return
            refreshing = entry is not None and now - entry.stored_at < entry.ttl + entry.swr
            try:
                # The lookup's own deadline: it serves requests with deadlines of their own.
                bound = Deadline.after(self._refresh_timeout)
                async with bound.limit():
                    if lookup.fetch is not None:
                        response = await lookup.fetch()
                    else:
                        response = await self._fetch(
                            lookup.source, lookup.url, lookup.headers, bound
                        )
            except Exception as exc:
                if refreshing:
                    logger.info(
                        "background refresh of %s failed: %s",
                        lookup.source.name,
                        _failure(lookup, exc),
                    )
                lookup.response.set_exception(exc)
                lookup.response.exception()  # retrieved: nobody may be waiting any more
                return
            lookup.response.set_result(response)
            stored = _entry_of(lookup, response)
            if stored is not None:
                await self.store.set(key, stored)
        finally:
            del self._lookups[key]
            if lookup.settled is not None:
                lookup.settled()
            for future in (lookup.found, lookup.response):
                if not future.done():
                    # Nothing will come: the entry was fresh (no fetch), or the lookup itself
                    # was cancelled (shutdown).
                    future.cancel()

    async def answer(
        self, key: str, decode: Callable[[bytes], object] | None = None
    ) -> Entry | None:
        """The whole answer cached under ``key``, if it is fresh (and, read from a shared
        store, if ``decode`` takes its body)."""
        entry = self.store.peek(key)
        if entry is None:
            entry = await self.store.get(
                key, None if decode is None else partial(_readable, decode)
            )
            if entry is None:
                return None
        return entry if time.time() - entry.stored_at < entry.ttl else None

    def keep_answer(self, key: str, body: bytes, fresh_for: float, tags: Sequence[str]) -> None:
        """Cache the whole answer ``body`` for ``fresh_for`` seconds, in the background."""
        if key in self._writing:
            return  # the same answer, made by a request that ran at the same moment
        task = asyncio.get_running_loop().create_task(
            self.store.set(key, Entry.now(body, fresh_for, tags=tags)), name="bff-cache-answer"
        )
        self._writing[key] = task
        task.add_done_callback(lambda _: self._writing.pop(key, None))

    async def invalidate(self, tags: Iterable[str]) -> int:
        """Delete every entry carrying any of ``tags``; return how many were deleted."""
        count = 0
        for tag in tags:
            count += await self.store.invalidate(tag)
        return count

    async def aclose(self) -> None:
        tasks = [lookup.task for lookup in self._lookups.values() if lookup.task is not None]
        tasks += self._chunks
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._writing:
            await asyncio.gather(*self._writing.values(), return_exceptions=True)
        await self.store.aclose()


class _Chunks:
    """The upstream reads of one list's items that the cache did not hold: once every item's
    lookup has said whether it needs the upstream, those that do go out together, in chunks.

    Owned by the cache like the lookups it serves: a request that stops waiting does not
    cancel a chunk that other requests' items, or the store, are waiting for.
    """

    __slots__ = (
        "_fetch",
        "_loop",
        "_sem",
        "_size",
        "_tasks",
        "_timeout",
        "_undecided",
        "_wanted",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fetch: ChunkFetch,
        items: list[str],
        size: int,
        concurrency: int,
        timeout: float,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self._loop = loop
        self._tasks = tasks
        self._fetch = fetch
        self._size = size
        self._timeout = timeout
        self._undecided = set(items)
        self._wanted: dict[str, asyncio.Future[UpstreamResponse]] = {}
        chunks = -(-len(items) // size)
        self._sem = asyncio.Semaphore(concurrency) if chunks > concurrency else None

    def want(self, item: str) -> asyncio.Future[UpstreamResponse]:
        """The upstream's answer for ``item``, read with the others' in a chunk."""
        future = self._wanted[item] = self._loop.create_future()
        self._decided(item)
        return future

    def settled(self, item: str) -> None:
        """``item``'s lookup has ended; if it never asked for the upstream, no chunk waits."""
        self._decided(item)

    def _decided(self, item: str) -> None:
        undecided = self._undecided
        if item in undecided:
            undecided.discard(item)
            if not undecided and self._wanted:
                wanted = list(self._wanted)
                for i in range(0, len(wanted), self._size):
                    task = self._loop.create_task(
                        self._read(wanted[i : i + self._size]), name="bff-cache-chunk"
                    )
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _read(self, chunk: list[str]) -> None:
        futures = [self._wanted[item] for item in chunk]
        try:
            bound = Deadline.after(self._timeout)
            async with bound.limit():
                if self._sem is None:
                    responses = await self._fetch(chunk, bound)
                else:
                    async with self._sem:
                        responses = await self._fetch(chunk, bound)
        except Exception as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
        else:
            for item, future in zip(chunk, futures, strict=True):
                if not future.done():
                    future.set_result(responses[item])
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()


def _entry_of(lookup: _Lookup, response: UpstreamResponse) -> Entry | None:
    """What to store of ``response``, or ``None``: not cacheable, or not what the source
    declares (a body that would fail every request that read it back)."""
    found = windows(lookup.policy, response)
    if found is None:
        return None
    try:
        lookup.source.decoder.decode(response.body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    ttl, swr, sie = found
    return Entry.now(response.body, ttl, swr, sie, lookup.tags)


def _readable(decode: Callable[[bytes], object], entry: Entry) -> bool:
    """Whether ``entry``'s body decodes (as its source declares, or as its route's view)."""
    try:
        decode(entry.body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        logger.warning(
            "ignored a cached entry that does not decode as it should (%s): fetched again",
            str(exc)[:200],
            extra={"event": "cache_entry_unreadable"},
        )
        return False
    return True


def _failure(lookup: _Lookup, error: Exception) -> str:
    """``error`` as a log line says it: a transport's error names the URL, which names the
    user when the path has ``{user}``."""
    text = str(error) or type(error).__name__
    return text.replace(lookup.url, "<its URL for one user>") if lookup.source.uses_user else text


def _succeeded(future: asyncio.Future[UpstreamResponse]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _key(source: Source, policy: CachePolicy, url: str, headers: Mapping[str, str]) -> str | None:
    if source.uses_user:
        # The URL names the caller's subject ({user}): the key names the URL's digest, so no
        # user's id is a key in Redis; still one entry per URL, so per user as before.
        url = "url=" + hashlib.blake2b(url.encode(), digest_size=16).hexdigest()
    credentials = [headers[h] for h in _CREDENTIALS if h in headers]
    if source.subject_header is not None and source.subject_header in headers:
        credentials.append(headers[source.subject_header])
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
