"""Circuit breaker state shared by every instance of a BFF, through Redis.

Each instance keeps its breakers in memory and decides on its own (no Redis call on the
request path). What it shares are *transitions*: when one of its breakers opens or closes, it
publishes that on a Redis channel and records it in a hash; every other instance subscribed to
the channel applies it at once, so an upstream one instance found broken is left alone by all
of them within milliseconds. A peer's ``open`` keeps the peer's opening time, so every
instance lets its own trial request through when the peer's reset timeout ends; the first
instance whose trial succeeds publishes ``closed`` for all.

An instance that starts (or reconnects) reads the hash, so it learns the breakers already
open. Redis being down never fails a request: the instance then keeps its own breakers,
logs one warning, and tries to subscribe again every second.

Keys: the channel ``{namespace}:breakers`` and the hash ``{namespace}:breakers:state``
(field: service, value: the last transition), with the namespace of the deployment.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Literal

import msgspec
import redis.asyncio

from ._redis import close_quietly, connect, describe
from ._resilience import BreakerState, Upstreams

__all__ = ["BreakerShare"]

logger = logging.getLogger("bff_core.resilience")

#: How long publishing a transition may take (in the background, never on a request's path).
_PUBLISH_TIMEOUT = 0.5
#: How long to wait before subscribing again after Redis failed.
_RETRY_AFTER = 1.0
#: Recorded transitions are forgotten after this long (an open breaker is long decided by then).
_RECORD_TTL_S = 3600


class Transition(msgspec.Struct, frozen=True):
    """One breaker transition, as published."""

    origin: str  # the instance that made it
    service: str
    state: Literal["open", "closed"]
    at: float  # wall clock of the transition (for "open": when it opened)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Transition).decode


class BreakerShare:
    """Publishes this instance's breaker transitions and applies its peers'.

    Args:
        url: the Redis URL.
        namespace: the deployment's prefix; instances share breakers when they share it.
        upstreams: this instance's breakers.
    """

    def __init__(self, url: str, *, namespace: str, upstreams: Upstreams) -> None:
        self._url = url
        self._channel = f"{namespace}:breakers"
        self._hash = f"{namespace}:breakers:state"
        self._upstreams = upstreams
        self._origin = uuid.uuid4().hex
        self._client: redis.asyncio.Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._subscribed = False
        self._problem: str | None = None
        self.received = 0
        upstreams.on_transition(self._publish_later)

    @property
    def channel(self) -> str:
        return self._channel

    def start(self) -> None:
        """Subscribe in the background (call with the serving loop running)."""
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="bff-breaker-share"
            )

    def describe(self) -> str:
        """For ``/readyz``: how breaker state is shared right now."""
        if self._subscribed:
            return f"shared through redis; transitions received from peers: {self.received}"
        if self._problem is not None:
            return f"this instance only: redis unreachable ({self._problem})"
        return "this instance only: subscribing to redis"

    def _connect(self) -> redis.asyncio.Redis:
        if self._client is None:
            # No socket timeout: the subscription waits for messages as long as it takes.
            self._client = connect(self._url, timeout=_PUBLISH_TIMEOUT, socket_timeout=None)
        return self._client

    # --- publishing --------------------------------------------------------------------------

    def _publish_later(self, service: str, state: BreakerState, opened_at: float | None) -> None:
        if state == "half-open":
            return  # each instance sends its own trial; only the verdicts are shared
        transition = Transition(
            self._origin,
            service,
            state,
            opened_at if state == "open" and opened_at is not None else time.time(),
        )
        task = asyncio.get_running_loop().create_task(self._publish(transition))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, transition: Transition) -> None:
        message = _encode(transition)
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT):
                pipe = self._connect().pipeline(transaction=False)
                pipe.hset(self._hash, transition.service, message)
                pipe.expire(self._hash, _RECORD_TTL_S)
                pipe.publish(self._channel, message)
                await pipe.execute()
        except Exception as exc:  # Redis down: this instance keeps its breakers to itself
            logger.warning(
                "could not share the %s breaker of upstream %s: %s",
                transition.state,
                transition.service,
                _describe(exc),
            )

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
                    )
                self._subscribed = False
                self._problem = problem
            await asyncio.sleep(_RETRY_AFTER)

    async def _subscribe_and_apply(self) -> None:
        pubsub = self._connect().pubsub(ignore_subscribe_messages=True)
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT):
                await pubsub.subscribe(self._channel)
                # Subscribed first, then read: a transition published in between is not lost.
                recorded = await self._connect().hgetall(self._hash)
            for raw in recorded.values():
                self._apply(raw, catching_up=True)
            if self._problem is not None:
                logger.info("breaker sharing through redis is back")
            self._subscribed, self._problem = True, None
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is not None and message.get("type") == "message":
                    self._apply(message["data"], catching_up=False)
        finally:
            self._subscribed = False
            try:
                async with asyncio.timeout(_PUBLISH_TIMEOUT):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            except Exception as exc:
                logger.debug("closing the breaker subscription failed: %s", _describe(exc))

    def _apply(self, raw: bytes | str, *, catching_up: bool) -> None:
        try:
            transition = _decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            logger.warning("ignored a malformed breaker transition on %s", self._channel)
            return
        if transition.origin == self._origin:
            return
        if catching_up and transition.state == "closed":
            return  # a fresh instance starts closed anyway
        if self._upstreams.apply_peer_transition(
            transition.service, transition.state, transition.at
        ):
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
            await close_quietly(
                client, within=_PUBLISH_TIMEOUT, logger=logger, what="breaker-share client"
            )


def _describe(exc: BaseException) -> str:
    return describe(exc, _PUBLISH_TIMEOUT)
