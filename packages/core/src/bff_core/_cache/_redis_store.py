"""The cache store in Redis (one server or a Redis Cluster), shared by every instance.

Round trips: every read and write the process asks for in one turn of the event loop goes to
Redis together, in one pipeline (``GET`` per key read, the commands of each write after), so a
request whose whole answer is not cached reads all its parts in one round trip, fifty requests
arriving together share a few, and the connections in use stay few however many requests are
in flight (at most ``max_batches`` pipelines at once; what arrives meanwhile waits for the next
one, which grows instead). On a cluster the same pipeline is split by node and sent to each at
once, which is still one round trip of wall time.

Keys are hash-tagged so that what must share a slot does: an entry ``{ns}:k:{<key>}`` and the
record of its tags ``{ns}:r:{<key>}`` (same tag, same slot); the sorted set of the keys carrying
a tag ``{ns}:tz:{<tag>}`` (each scored by when its entry expires) lives wherever its tag hashes
to, and an invalidation reaches each of its entries on that entry's own slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar, cast

import redis.asyncio
import redis.asyncio.client
import redis.asyncio.cluster
import redis.exceptions

from .._redis import (
    AnyRedis,
    RedisTarget,
    close_quietly,
    connect,
    describe,
    parse_redis_url,
    refuses_credentials,
)
from ._policy import Accept, Entry, decode_entry, encode_entry

__all__ = ["RedisStore"]

logger = logging.getLogger("bff_core.cache")

_T = TypeVar("_T")

#: Deletes one entry and its tag record if the record still names the tag: atomic on the
#: entry's slot (both keys share it), so an entry set again meanwhile without that tag stays.
_DROP_IF_TAGGED = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  redis.call('UNLINK', KEYS[2])
  return redis.call('UNLINK', KEYS[1])
end
return 0
"""

#: Adds a key to a tag's sorted set, scored by when its entry expires (ARGV[2] ms from now),
#: and drops the members whose entries have expired; the set itself expires with its
#: longest-lived entry. Redis's own clock: instances' clocks never decide what is expired.
_TAG = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return redis.call('PEXPIREAT', KEYS[1], last[2])
"""

#: The keys of a tag's sorted set whose entries have not expired (the others are dropped).
_TAGGED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


class _Batch:
    """The reads and writes asked for in one turn of the loop: one pipeline."""

    __slots__ = ("give_up", "reads", "since", "writes")

    def __init__(self) -> None:
        #: entry key -> the readers waiting for it (one GET however many ask)
        self.reads: dict[str, list[asyncio.Future[bytes | None]]] = {}
        self.writes: list[tuple[str, Entry, asyncio.Future[None]]] = []
        self.give_up: asyncio.TimerHandle | None = None
        self.since = 0.0

    def wait_for_reads(self, loop: asyncio.AbstractEventLoop, budget: float, most: float) -> None:
        """Let the readers wait ``budget`` seconds of Redis's time, ``most`` in all."""
        self.since = loop.time()
        self.give_up = loop.call_later(budget, self._expire_reads, loop, budget, most)

    def _expire_reads(self, loop: asyncio.AbstractEventLoop, budget: float, most: float) -> None:
        """The readers stop waiting (a miss each); the pipeline itself goes on.

        Unless this timer itself ran late: then the loop was too busy to read Redis's answer,
        which may well be waiting in the socket. That time is not Redis's, and a miss would
        cost an upstream request where a moment's wait costs nothing: the readers get another
        budget, until ``most`` has passed.
        """
        assert self.give_up is not None
        now = loop.time()
        if now - self.give_up.when() > budget / 2 and now - self.since + budget < most:
            self.give_up = loop.call_later(budget, self._expire_reads, loop, budget, most)
            return
        for waiting in self.reads.values():
            for future in waiting:
                if not future.done():
                    future.set_result(None)

    def finish(self, values: Iterable[object] | None) -> None:
        """Hand out the values read (in the order of ``reads``), or misses; end the writes."""
        if self.give_up is not None:
            self.give_up.cancel()
        found = iter(values) if values is not None else None
        for waiting in self.reads.values():
            value = next(found, None) if found is not None else None
            raw = value if isinstance(value, bytes) else None
            for future in waiting:
                if not future.done():
                    future.set_result(raw)
        for _, _, written in self.writes:
            if not written.done():
                written.set_result(None)


class RedisStore:
    """A store in Redis (7.0 or later, or a Redis Cluster), shared by every instance that uses
    the same namespace.

    Args:
        url: a Redis URL (``redis://``, ``rediss://``, ``unix://``) or a cluster URL
            (``redis+cluster://host:port[,host:port...]``); see ``bff_core._redis``.
        namespace: the prefix of every key: put the deployment, its release and a digest of
            its declarations in it (``"web-bff:1.2.0:3fa2c1d0"``), so releases never read each
            other's entries and the old ones simply expire.
        op_timeout: how long a read may keep its caller waiting for Redis: past that it is a
            miss for the caller (the pipeline goes on, and a late answer is not an error).
            Time this process was too busy to read an answer does not count.
        down_after: how long a pipeline may go unanswered before Redis is taken for down.
        retry_after: how long, once Redis failed, every operation answers at once as a miss
            (or a no-op) without touching the network; then one pipeline probes.
        max_batches: pipelines in flight at once.

    Tags: each tag is a Redis sorted set of the keys set with it, each scored by when its entry
    expires (by Redis's clock). Every write with the tag drops the members whose entries have
    expired, and the set expires with the last of its entries, so a tag set holds the keys of
    live entries only (plus, until their old expiry, keys overwritten without the tag or
    invalidated): it is bounded by the entries alive at once, not by every key ever set with
    the tag, and an invalidation walks only those. ``invalidate`` checks each entry's own tag
    record, atomically on that entry's slot, so it deletes and counts exactly the live entries
    that carry the tag. An invalidation never removes members, so an entry set again with the
    tag while it runs is never left out of the set.

    Failures: a connection failure, an error reply or a pipeline unanswered for
    ``down_after`` marks the store down and logs one warning; for the next ``retry_after``
    seconds every operation returns at once as a miss (``get`` gives ``None``, ``invalidate``
    gives 0, ``set`` does nothing). A read Redis takes longer than ``op_timeout`` to answer is
    a miss for its callers, not a failure; a read this process was too busy to pick up in
    time is not even that: its callers wait on (up to ``down_after``), because a miss would
    send them to the upstream. Nothing here ever raises to the caller. An invalidation lost
    that way leaves its entries in place until their time ends.
    """

    def __init__(
        self,
        url: str | RedisTarget,
        *,
        namespace: str = "bff",
        op_timeout: float = 0.05,
        down_after: float = 0.5,
        retry_after: float = 1.0,
        max_batches: int = 8,
    ) -> None:
        if not namespace:
            raise ValueError("namespace must not be empty")
        if op_timeout <= 0:
            raise ValueError(f"op_timeout must be positive, not {op_timeout}")
        if down_after < op_timeout:
            raise ValueError(f"down_after must be at least op_timeout, not {down_after}")
        if retry_after < 0:
            raise ValueError(f"retry_after must not be negative, not {retry_after}")
        if max_batches < 1:
            raise ValueError(f"max_batches must be at least 1, not {max_batches}")
        self._target = url if isinstance(url, RedisTarget) else parse_redis_url(url)
        self.name = self._target.describe()
        self._namespace = namespace
        self._op_timeout = op_timeout
        self._down_after = down_after
        self._retry_after = retry_after
        self._max_batches = max_batches
        # Created on first use, so that its connections belong to the loop that serves requests.
        self._client: AnyRedis | None = None
        self._batch: _Batch | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._down = False
        self._down_until = 0.0
        self._probing = False
        self._closing = False
        #: called with False when Redis is taken for down, True when it is back (metrics)
        self.on_health: Callable[[bool], None] | None = None

    @property
    def namespace(self) -> str:
        """The prefix (without the trailing colon) of every key this store touches."""
        return self._namespace

    @property
    def healthy(self) -> bool:
        """False from a failed operation until the next successful one."""
        return not self._down

    def peek(self, key: str) -> Entry | None:
        """Nothing is held in this process (see :class:`~bff_core._cache.TieredStore`)."""
        return None

    async def get(self, key: str, accept: Accept | None = None) -> Entry | None:
        """The entry under ``key``; ``None`` on a miss, when Redis is down or slow, or when
        the value is not an entry or ``accept`` refuses it (anything that can write to Redis
        could have written it)."""
        if not self._admit():
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        batch = self._current_batch(loop)
        waiting = batch.reads.get(name := self._entry(key))
        if waiting is None:
            batch.reads[name] = [future]
        else:
            waiting.append(future)
        if batch.give_up is None:
            batch.wait_for_reads(loop, self._op_timeout, self._down_after)
        raw = await future
        entry = None if raw is None else decode_entry(raw)
        if entry is None or accept is None or accept(entry):
            return entry
        return None

    async def set(self, key: str, entry: Entry) -> None:
        """Store ``entry`` for as long as it may be served, with the next pipeline; returns
        once Redis has it (or gave up). Does nothing when Redis is down."""
        if not self._admit():
            return
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        self._current_batch(loop).writes.append((key, entry, written))
        await asyncio.shield(written)

    async def invalidate(self, tag: str) -> int:
        """Delete the entries carrying ``tag``; return how many existed. 0 when Redis is down."""
        tag_set = self._tag(tag)

        async def op(client: AnyRedis) -> int:
            # Members are bare cache keys; some may since have expired, been invalidated or
            # been overwritten without this tag: their tag record says which still carry it.
            members = cast("list[bytes]", await client.eval(_TAGGED, 1, tag_set))
            if not members:
                return 0
            pipe = client.pipeline(transaction=False)
            for member in members:
                pipe.eval(_DROP_IF_TAGGED, 2, self._entry(member), self._record(member), tag)
            return sum(int(n) for n in await pipe.execute())

        return await self._attempt(op, 0)

    def forget(self, tags: Iterable[str]) -> None:
        """Nothing is held in this process."""

    async def start(self) -> None:
        """Connect now, within ``down_after``: a cluster client's first connection reads the
        cluster's layout and its command table (tens of milliseconds of CPU), which must not
        turn the first requests' reads into misses. Redis down is logged, not raised; Redis
        refusing the password is logged as the configuration error it is (and ``/readyz``
        says so until it is fixed)."""
        answer = await self.check()
        if answer.startswith("refused"):
            logger.error(
                "%s: the cache is not used, and /readyz answers 503",
                answer,
                extra={"event": "redis_credentials_refused", "redis": self.name},
            )

    async def check(self) -> str:
        """``"ok: redis"`` (``"ok: redis cluster (N masters)"``) if Redis answers PING (every
        master of a cluster does) within ``down_after``, else the reason.

        This always asks Redis, even while the store is marked down: it is the readiness probe.
        """
        failure: list[BaseException] = []

        async def op(client: AnyRedis) -> str:
            if isinstance(client, redis.asyncio.RedisCluster):
                await client.ping(target_nodes=redis.asyncio.RedisCluster.PRIMARIES)
                return f"ok: redis cluster ({len(client.get_primaries())} masters)"
            await client.ping()
            return "ok: redis"

        answer = await self._attempt(op, "", force=True, failure=failure)
        if answer:
            return answer
        if failure and refuses_credentials(failure[0]):
            return (
                f"refused: {self.name} refuses the credentials of REDIS_URL (wrong or missing "
                f"password): {self._describe(failure[0])}"
            )
        if failure and isinstance(failure[0], redis.exceptions.ResponseError):
            # Redis answered, but refuses (NOAUTH, LOADING, CLUSTERDOWN...): reachable, not usable.
            return f"degraded: {self._describe(failure[0])}"
        return f"unreachable: {self._describe(failure[0]) if failure else 'no answer'}"

    async def aclose(self) -> None:
        """Send what was asked for, finish the pipelines in flight, then close the
        connections to Redis. Operations asked for afterwards do nothing."""
        self._closing = True
        while self._batch is not None or self._sending:
            self._send_next()
            if self._sending:
                await asyncio.gather(*self._sending, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await close_quietly(
                client, within=self._down_after, logger=logger, what="redis cache client"
            )

    # -- keys ----------------------------------------------------------------------------------

    def _entry(self, key: str | bytes) -> str:
        return f"{self._namespace}:k:{{{_text(key)}}}"

    def _record(self, key: str | bytes) -> str:
        return f"{self._namespace}:r:{{{_text(key)}}}"

    def _tag(self, tag: str) -> str:
        # "tz": a sorted set; "t" held plain sets in earlier releases.
        return f"{self._namespace}:tz:{{{tag}}}"

    # -- batching ------------------------------------------------------------------------------

    def _current_batch(self, loop: asyncio.AbstractEventLoop) -> _Batch:
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch()
            # Sent once this turn of the loop is over: what else is asked for meanwhile joins.
            loop.call_soon(self._send_next)
        return batch

    def _send_next(self) -> None:
        if self._batch is None or len(self._sending) >= self._max_batches:
            return  # a pipeline that ends sends the waiting batch, grown meanwhile
        batch, self._batch = self._batch, None
        task = asyncio.get_running_loop().create_task(self._send(batch), name="bff-cache-redis")
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if self._batch is not None:
            self._send_next()

    async def _send(self, batch: _Batch) -> None:
        values: list[object] | None = None
        try:
            client = self._connect()
            pipe = client.pipeline(transaction=False)
            for name in batch.reads:
                pipe.get(name)
            for key, entry, _ in batch.writes:
                self._write(pipe, key, entry)
            async with asyncio.timeout(self._down_after):
                results = await pipe.execute(raise_on_error=False)
            # An error reply in place of a result: the first one is the failure to report.
            failed = next((r for r in results if isinstance(r, Exception)), None)
            if failed is not None:
                raise failed
            values = results[: len(batch.reads)]
        except Exception as exc:
            # Exception, not BaseException: a cancellation (shutdown) must propagate.
            # asyncio.timeout turns its own cancellation into TimeoutError, caught here.
            self._mark_down(exc)
        else:
            self._mark_up()
        finally:
            batch.finish(values)

    def _write(
        self,
        pipe: redis.asyncio.client.Pipeline | redis.asyncio.cluster.ClusterPipeline,
        key: str,
        entry: Entry,
    ) -> None:
        name, record = self._entry(key), self._record(key)
        life = entry.life_left(time.time())
        # UNLINK as a raw command: a cluster client splits the multi-key form across slots
        # outside the pipeline; these keys share one slot anyway.
        if life <= 0:
            pipe.execute_command("UNLINK", name, record)
            return
        ttl_ms = max(1, round(life * 1000))
        pipe.set(name, encode_entry(entry), px=ttl_ms)
        # The record of the entry's current tags lives exactly as long as the entry, and an
        # overwrite replaces it: invalidate deletes only entries that still carry the tag.
        pipe.execute_command("UNLINK", record)
        tags = list(dict.fromkeys(entry.tags))
        if tags:
            pipe.sadd(record, *tags)
            pipe.pexpire(record, ttl_ms)
        for tag in tags:
            pipe.eval(_TAG, 1, self._tag(tag), key, ttl_ms)

    # -- connection and health -----------------------------------------------------------------

    def _connect(self) -> AnyRedis:
        if self._client is None:
            self._client = connect(
                self._target, timeout=self._down_after, socket_timeout=self._down_after
            )
        return self._client

    def _admit(self) -> bool:
        """Whether an operation may go to Redis now: always while it is up; while down, one
        probe at a time once ``retry_after`` has passed."""
        if self._closing:
            return False
        if not self._down:
            return True
        if self._probing or time.monotonic() < self._down_until:
            return False
        self._probing = True  # the next pipeline probes; it clears this when it ends
        return True

    async def _attempt(
        self,
        op: Callable[[AnyRedis], Awaitable[_T]],
        fallback: _T,
        *,
        force: bool = False,
        failure: list[BaseException] | None = None,
    ) -> _T:
        """Run ``op`` (not batched) within ``down_after``; on any failure mark the store down and
        return ``fallback``. While down, return ``fallback`` at once unless it is time to probe."""
        if not force and not self._admit():
            return fallback
        try:
            async with asyncio.timeout(self._down_after):
                result = await op(self._connect())
        except Exception as exc:
            self._mark_down(exc)
            if failure is not None:
                failure.append(exc)
            return fallback
        self._mark_up()
        return result

    def _mark_up(self) -> None:
        self._probing = False
        if self._down:
            self._down = False
            logger.info(
                "redis is back: the cache is in use again",
                extra={"event": "redis_up", "redis": self.name},
            )
            if self.on_health is not None:
                self.on_health(True)

    def _mark_down(self, exc: BaseException) -> None:
        self._probing = False
        self._down_until = time.monotonic() + self._retry_after
        if not self._down:
            self._down = True
            if self.on_health is not None:
                self.on_health(False)
            logger.warning(
                "redis cache unavailable, serving without it (next attempt in %gs): %s",
                self._retry_after,
                self._describe(exc),
                extra={"event": "redis_down", "redis": self.name, "error": self._describe(exc)},
            )

    def _describe(self, exc: BaseException) -> str:
        return describe(exc, self._down_after)


def _text(key: str | bytes) -> str:
    # Keys come back from Redis (ZRANGE) as the UTF-8 bytes they were sent as.
    return key.decode() if isinstance(key, bytes) else key
