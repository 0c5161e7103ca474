"""The instances of a BFF deployment telling each other what changed, through Redis.

Two things travel, on one sharded pub/sub channel per deployment (``SPUBLISH`` and
``SSUBSCRIBE``, Redis 7: the same on a single server and on a cluster, where only the shard
that owns the channel carries it):

- **breaker transitions.** Each instance keeps its breakers in memory and decides on its own
  (no Redis call on the request path). When one of its breakers opens or closes, it publishes
  that and records it in a hash; every other instance applies it at once, so an upstream one
  instance found broken is left alone by all of them within milliseconds. A peer's ``open``
  keeps the peer's opening time, so every instance lets its own trial request through when the
  peer's reset timeout ends; the first instance whose trial succeeds publishes ``closed`` for
  all. An instance that starts (or reconnects) reads the hash, so it learns the breakers
  already open.
- **cache invalidations.** An operator's invalidation deletes the entries in Redis and is
  published, so every instance drops its near-cache copies at once instead of serving them
  until their hold ends.

Redis being down never fails a request: the instance then keeps its own breakers, its near
cache holds entries for its short hold at most, it logs one warning, and it tries to subscribe
again every second.

What a peer says is checked before it is believed: whatever can write to Redis can write a
transition, and one ``open`` with an opening time far in the future would keep a breaker open
on every instance until then. An opening time later than this instance's clock plus
``_MAX_CLOCK_SKEW`` is no real peer's (a peer stamps its own clock when its breaker opens) and
is ignored, with a warning; one within that skew counts as opened now; one older than the reset
timeout is over already (``Upstreams.apply_peer_transition`` ignores it). So a forged record
can at worst open a breaker for one reset timeout, as a real peer could.

Keys: the channel ``{namespace}:peers`` and the hash ``{namespace}:breakers`` (field: service,
value: the last transition), with the namespace of the deployment, hash-tagged so both live on
one slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Literal, TypeAlias

import msgspec

from .._redis import (
    AnyRedis,
    RedisTarget,
    close_pubsub_quietly,
    close_quietly,
    connect,
    describe,
    parse_redis_url,
    sharded_pubsub,
)
from .._upstream import BreakerState, Upstreams

__all__ = ["Peers"]

logger = logging.getLogger("bff_core.resilience")
cache_logger = logging.getLogger("bff_core.cache")

#: How long publishing may take (in the background, or for an operator's invalidation).
_PUBLISH_TIMEOUT = 0.5
#: How long to wait before subscribing again after Redis failed.
_RETRY_AFTER = 1.0
#: Recorded transitions are forgotten after this long (an open breaker is long decided by then).
_RECORD_TTL_S = 3600
#: How far ahead of this instance's clock a peer's may be (NTP keeps them within milliseconds).
_MAX_CLOCK_SKEW = 5.0


class Transition(msgspec.Struct, frozen=True, tag="breaker"):
    """One breaker transition, as published."""

    origin: str  # the instance that made it
    service: str
    state: Literal["open", "closed"]
    at: float  # wall clock of the transition (for "open": when it opened)


class Invalidation(msgspec.Struct, frozen=True, tag="invalidation"):
    """An operator's invalidation: every instance drops its copies of these tags' entries."""

    origin: str
    tags: list[str]


Message: TypeAlias = Transition | Invalidation

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Message).decode
_decode_transition = msgspec.json.Decoder(Transition).decode


class Peers:
    """Publishes this instance's breaker transitions and invalidations; applies its peers'.

    Args:
        url: the Redis URL (one server or a cluster).
        namespace: the deployment's prefix; instances are peers when they share it.
        upstreams: this instance's breakers, to share; ``None``: breakers are not shared.
        forget: called with the tags of a peer's invalidation, to drop the copies this
            instance holds; ``None``: nothing to drop.
    """

    def __init__(
        self,
        url: str | RedisTarget,
        *,
        namespace: str,
        upstreams: Upstreams | None = None,
        forget: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self._target = url if isinstance(url, RedisTarget) else parse_redis_url(url)
        self._channel = f"{{{namespace}}}:peers"
        self._hash = f"{{{namespace}}}:breakers"
        self._upstreams = upstreams
        self._forget = forget
        self._origin = uuid.uuid4().hex
        self._client: AnyRedis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._subscribed = False
        self._problem: str | None = None
        #: breaker transitions received from peers and applied
        self.received = 0
        #: invalidations received from peers
        self.invalidations = 0
        if upstreams is not None:
            upstreams.on_transition(self._publish_transition)

    @property
    def channel(self) -> str:
        return self._channel

    def start(self) -> None:
        """Subscribe in the background (call with the serving loop running)."""
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="bff-peers"
            )

    def describe(self) -> str:
        """For ``/readyz``: how breaker state is shared right now."""
        if self._subscribed:
            return f"shared through redis; transitions received from peers: {self.received}"
        if self._problem is not None:
            return f"this instance only: redis unreachable ({self._problem})"
        return "this instance only: subscribing to redis"

    def _connect(self) -> AnyRedis:
        if self._client is None:
            self._client = connect(self._target, timeout=_PUBLISH_TIMEOUT, socket_timeout=None)
        return self._client

    # --- publishing --------------------------------------------------------------------------

    def _publish_transition(
        self, service: str, state: BreakerState, opened_at: float | None
    ) -> None:
        if state == "half-open":
            return  # each instance sends its own trial; only the verdicts are shared
        transition = Transition(
            self._origin,
            service,
            state,
            opened_at if state == "open" and opened_at is not None else time.time(),
        )
        task = asyncio.get_running_loop().create_task(self._share_transition(transition))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _share_transition(self, transition: Transition) -> None:
        message = _encode(transition)
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT):
                pipe = self._connect().pipeline(transaction=False)
                pipe.hset(self._hash, transition.service, message)
                pipe.expire(self._hash, _RECORD_TTL_S)
                pipe.spublish(self._channel, message)
                await pipe.execute()
        except Exception as exc:  # Redis down: this instance keeps its breakers to itself
            logger.warning(
                "could not share the %s breaker of upstream %s: %s",
                transition.state,
                transition.service,
                _describe(exc),
            )

    async def invalidated(self, tags: Sequence[str]) -> int | None:
        """Tell every peer that the entries of ``tags`` were invalidated; return how many
        instances (this one included) received it, or ``None`` when Redis could not be told
        (their near caches then drop those entries when their short hold ends)."""
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT):
                message = _encode(Invalidation(self._origin, list(tags)))
                return int(await self._connect().spublish(self._channel, message))
        except Exception as exc:
            cache_logger.warning(
                "could not tell the other instances of an invalidation of %s: %s",
                ", ".join(tags),
                _describe(exc),
            )
            return None

    # --- receiving ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                await self._subscribe_and_apply()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                problem = _describe(exc)
                if self._subscribed or self._problem is None:
                    logger.warning(
                        "breaker sharing through redis interrupted, each instance decides "
                        "alone meanwhile (retrying every %g s): %s",
                        _RETRY_AFTER,
                        problem,
                        extra={"event": "peers_down", "error": problem},
                    )
                self._subscribed = False
                self._problem = problem
            await asyncio.sleep(_RETRY_AFTER)

    async def _subscribe_and_apply(self) -> None:
        client = self._connect()
        async with asyncio.timeout(_PUBLISH_TIMEOUT):
            pubsub, node_client = await sharded_pubsub(client, self._target, self._channel)
        try:
            if self._upstreams is not None:
                async with asyncio.timeout(_PUBLISH_TIMEOUT):
                    # Subscribed first, then read: a transition published in between is not lost.
                    recorded = await client.hgetall(self._hash)
                for raw in recorded.values():
                    self._apply_transition(raw, catching_up=True)
            if self._problem is not None:
                logger.info("breaker sharing through redis is back", extra={"event": "peers_up"})
            self._subscribed, self._problem = True, None
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is not None and message.get("type") == "smessage":
                    self._apply(message["data"])
        finally:
            self._subscribed = False
            await close_pubsub_quietly(pubsub, node_client, within=_PUBLISH_TIMEOUT, logger=logger)

    def _apply(self, raw: bytes | str) -> None:
        try:
            message = _decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            logger.warning("ignored a malformed message on %s", self._channel)
            return
        if message.origin == self._origin:
            return
        if isinstance(message, Invalidation):
            self.invalidations += 1
            if self._forget is not None:
                self._forget(message.tags)
            return
        self._apply_known(message, catching_up=False)

    def _apply_transition(self, raw: bytes | str, *, catching_up: bool) -> None:
        try:
            transition = _decode_transition(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            logger.warning("ignored a malformed breaker transition in %s", self._hash)
            return
        if transition.origin != self._origin:
            self._apply_known(transition, catching_up=catching_up)

    def _apply_known(self, transition: Transition, *, catching_up: bool) -> None:
        if self._upstreams is None:
            return
        if catching_up and transition.state == "closed":
            return  # a fresh instance starts closed anyway
        at = transition.at
        if transition.state == "open":
            now = time.time()
            if not at <= now + _MAX_CLOCK_SKEW:  # "not <=": NaN is no time either
                logger.warning(
                    "ignored a breaker opening of upstream %s dated %.0f s ahead of this "
                    "instance's clock (no peer's clock is that far off: a forged or corrupt "
                    "record in %s)",
                    transition.service,
                    at - now,
                    self._hash,
                    extra={"event": "peer_transition_ignored", "service": transition.service},
                )
                return
            at = min(at, now)
        if self._upstreams.apply_peer_transition(transition.service, transition.state, at):
            self.received += 1

    async def aclose(self) -> None:
        """Stop listening, finish publishing, close the connections."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await close_quietly(client, within=_PUBLISH_TIMEOUT, logger=logger, what="peers client")


def _describe(exc: BaseException) -> str:
    return describe(exc, _PUBLISH_TIMEOUT)
