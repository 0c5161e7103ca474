"""Per-client rate limits, counted together by every instance through Redis.

The counting is the ``limits`` library's sliding window counter: each check is one atomic Lua
script in Redis (one round trip per limit), so two instances, or two workers, never both let
through the request that was one too many. Without Redis the counters are in process memory,
kept by :class:`_LocalWindows` with the same arithmetic: ``limits``' asynchronous memory
storage starts an expiry task on nearly every hit, which measured about 45 µs per request.

Who a client is: the verified subject when the request carries a valid token, else the client's
address, read from ``X-Forwarded-For`` (or ``Forwarded``) only when the peer is one of the
trusted proxies (see :func:`client_address`). An IPv6 client is counted by its network (a /64 by
default: one subscriber's link gets a /64 and picks any of its 2^64 addresses at will), an
IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, what a dual-stack socket reports) as the IPv4
address it is (see :func:`client_key`).

Memory is bounded: without Redis the counters of at most ``max_local_windows`` windows are kept,
the least recently counted dropped first (see :class:`_LocalWindows`).

When Redis cannot be reached the requests are served (fail open; the log says so once, and
again when it is back), or refused with 503 when the deployment chose to fail closed. After a
failure Redis is left alone for a second, so an outage costs no connection attempt per request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .._redis import parse_redis_url
from ._identity import Identity

__all__ = [
    "DEFAULT_IPV6_PREFIX",
    "DEFAULT_MAX_LOCAL_WINDOWS",
    "Network",
    "RateLimits",
    "Refusal",
    "client_address",
    "client_key",
    "parse_limits",
    "parse_networks",
]

logger = logging.getLogger("bff_core.ratelimit")

Network: TypeAlias = "ipaddress.IPv4Network | ipaddress.IPv6Network"

#: Seconds Redis is left alone after it failed a check.
_PAUSE_AFTER_FAILURE = 1.0

#: The IPv6 network a client is counted by: a /64 is what one subscriber's link is given
#: (RFC 6177), and a host picks any address in it (privacy addresses, RFC 8981).
DEFAULT_IPV6_PREFIX = 64
#: Windows kept in process memory (about 200 bytes each): far more than the clients one
#: instance sees within a window, far less than its memory limit.
DEFAULT_MAX_LOCAL_WINDOWS = 50_000

_FORWARDED_FOR = b"x-forwarded-for"
_FORWARDED = b"forwarded"
#: A hop's port: digits, or RFC 7239's obfuscated form (``_abc``).
_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]+")

_Address: TypeAlias = "ipaddress.IPv4Address | ipaddress.IPv6Address"


def parse_limits(text: str) -> list[RateLimitItem]:
    """``"50/second;1000/minute"`` as limits; :class:`ValueError` saying what is wrong."""
    try:
        return parse_many(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a list of limits like '50/second;1000/minute' "
            "(amount/[multiple ]second|minute|hour|day, separated by ';')"
        ) from None


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` as networks; :class:`ValueError` naming a bad one."""
    networks = []
    for piece in text.split(","):
        if piece := piece.strip():
            try:
                networks.append(ipaddress.ip_network(piece, strict=False))
            except ValueError:
                raise ValueError(f"{piece!r} is not an IP address or network") from None
    return tuple(networks)


def client_address(
    peer: str | None,
    forwarded_for: Iterable[bytes],
    trusted: Sequence[Network],
    forwarded: Iterable[bytes] = (),
) -> str:
    """The address of the client a request comes from.

    The peer itself, unless it is a trusted proxy: then ``X-Forwarded-For`` is read from the
    right (each proxy appends the address it received the request from), skipping trusted
    proxies, and the first address that is not one is the client. A client can write anything
    at the left of the header, but never to the right of what a trusted proxy appended, so no
    client can pass for another through the header. Without ``X-Forwarded-For``, the ``for=``
    elements of RFC 7239's ``Forwarded`` are read the same way (a proxy appends one or the
    other; the trusted proxies must append ``X-Forwarded-For`` when they append anything, or a
    client could write it for them).

    A hop may carry a port (``192.0.2.1:4711``, ``[2001:db8::1]:4711``, Forwarded's quoted
    ``"[2001:db8::1]:4711"``): it is dropped. Addresses come back in one form: an IPv4-mapped
    IPv6 address as the IPv4 address it is, IPv6 compressed.
    """
    if peer is None:
        return "unknown"
    peer_address = parse_hop(peer)
    if peer_address is None:
        return peer
    if not trusted or not _within(peer_address, trusted):
        return str(peer_address)
    hops = [
        hop
        for header in forwarded_for
        for hop in header.decode("latin-1").split(",")
        if hop.strip()
    ]
    if not hops:
        hops = [hop for header in forwarded for hop in _forwarded_for_hops(header)]
    client = peer_address
    for hop in reversed(hops):
        address = parse_hop(hop)
        if address is None:
            # Not an address: something a client wrote, behind which nothing can be trusted.
            break
        client = address
        if not _within(address, trusted):
            break
    return str(client)


def parse_hop(text: str) -> _Address | None:
    """The address of one hop of ``X-Forwarded-For`` or ``Forwarded`` (``ip``, ``ip:port``,
    ``[v6]``, ``[v6]:port``, quoted or not), an IPv4-mapped one as IPv4; ``None`` for anything
    else (``unknown``, an obfuscated identifier, garbage)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and _PORT.fullmatch(rest[1:]))):
            return None
        text = host
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has two or more
        text, _, port = text.partition(":")
        if not _PORT.fullmatch(port):
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for_hops(header: bytes) -> Iterable[str]:
    """The ``for=`` value of each element of a ``Forwarded`` header, in order; an element
    without one is an empty hop (it stops the walk: no address vouched for there)."""
    for element in header.decode("latin-1").split(","):
        if not element.strip():
            continue
        value = ""
        for pair in element.split(";"):
            name, _, found = pair.partition("=")
            if name.strip().lower() == "for":
                value = found
        yield value or "unknown"


def _within(address: _Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    parsed = parse_hop(address)
    return parsed is not None and _within(parsed, trusted)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request not served: 429 (over a limit) or 503 (the limits could not be checked and
    the deployment fails closed)."""

    status: int
    retry_after: int
    detail: str
    #: the IETF ``RateLimit`` header's value for a 429, else empty
    rate_limit: str = ""


@dataclass(frozen=True, slots=True)
class _Policy:
    """The limits that apply to one route: the global ones, and the aggregate's own."""

    checks: tuple[tuple[RateLimitItem, str], ...]  # (limit, its scope in the counter's key)
    #: the ``RateLimit-Policy`` header's value
    header: str


class RateLimits:
    """Checks and counts the requests of each client.

    Args:
        limits: for every request of a client, whatever route.
        per_aggregate: more limits for the requests of one aggregate, by its name.
        redis_url: where the counters are shared; ``None``: in process memory.
        namespace: the deployment's prefix in a shared Redis.
        fail_closed: when Redis fails, refuse (503) instead of serving.
        timeout: seconds a Redis check may take before it counts as failed.
        ipv6_prefix: the length of the IPv6 network a client without identity is counted by.
        max_local_windows: without Redis, the counters kept in memory at most (the least
            recently counted are dropped first: such a client starts afresh).
    """

    def __init__(
        self,
        limits: Sequence[RateLimitItem],
        *,
        per_aggregate: Mapping[str, Sequence[RateLimitItem]] | None = None,
        redis_url: str | None = None,
        namespace: str = "bff",
        fail_closed: bool = False,
        timeout: float = 0.25,
        ipv6_prefix: int = DEFAULT_IPV6_PREFIX,
        max_local_windows: int = DEFAULT_MAX_LOCAL_WINDOWS,
    ) -> None:
        if not 0 <= ipv6_prefix <= 128:
            raise ValueError(f"ipv6_prefix must be within 0..128, not {ipv6_prefix}")
        if max_local_windows < 1:
            raise ValueError(f"max_local_windows must be at least 1, not {max_local_windows}")
        self.redis_url = redis_url
        self.ipv6_prefix = ipv6_prefix
        self.max_local_windows = max_local_windows
        self._warned_untrusted = False
        self.namespace = namespace
        self.fail_closed = fail_closed
        self.timeout = timeout
        self._global = self._policy([(item, "all") for item in limits])
        self._per_aggregate = {
            name: self._policy(
                [*((item, "all") for item in limits), *((item, f"agg:{name}") for item in own)]
            )
            for name, own in (per_aggregate or {}).items()
        }
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        self._local: _LocalWindows | None = None
        self._paused_until = 0.0
        self._failing = False

    @staticmethod
    def _policy(checks: Sequence[tuple[RateLimitItem, str]]) -> _Policy:
        header = ", ".join(
            f'"{_policy_name(item, s)}";q={item.amount};w={item.get_expiry()}' for item, s in checks
        )
        return _Policy(tuple(checks), header)

    async def start(self) -> None:
        if self.redis_url is None:
            self._local = _LocalWindows(self.max_local_windows)
        else:
            self._limiter = SlidingWindowCounterRateLimiter(self._storage(self.redis_url))

    def _storage(self, redis_url: str) -> RedisStorage:
        target = parse_redis_url(redis_url)
        options: dict[str, Any] = {
            "socket_connect_timeout": self.timeout,
            "socket_timeout": self.timeout,
            "retry": Retry(NoBackoff(), 0),  # a failed check is answered now, not retried
        }
        prefix = f"bff-rl:{self.namespace}"
        if target.cluster:
            # Credentials as options, not in the URL: limits would read them unescaped.
            if target.username:
                options["username"] = target.username
            if target.password:
                options["password"] = target.password
            if target.ca_file:
                options["ssl_ca_certs"] = target.ca_file
            nodes = ",".join(f"{host}:{port}" for host, port in target.cluster_nodes)
            return RedisClusterStorage(
                f"async+redis+cluster://{nodes}",
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix=prefix,
                ssl=target.tls,
                **{**options, "retry": Retry(NoBackoff(), 1)},  # follow a moved slot once
            )
        url = target.url
        if url.startswith("unix://"):
            url = "redis+unix://" + url.removeprefix("unix://")
        return RedisStorage(
            f"async+{url}",
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=prefix,
            **options,
        )

    async def aclose(self) -> None:
        self._local = None
        if self._limiter is None:
            return
        storage = self._limiter.storage
        self._limiter = None
        if isinstance(storage, RedisStorage):
            bridge: Any = storage.bridge  # limits' redis-py bridge: the client it made
            connection = bridge.get_connection()
            try:
                async with asyncio.timeout(1.0):
                    await connection.aclose()
            except Exception as exc:  # closing a broken connection must not fail a shutdown
                logger.debug("closing the rate limits' Redis client failed: %r", exc)

    def client_of(
        self,
        identity: Identity | None,
        peer: str | None,
        headers: Iterable[tuple[bytes, bytes]],
        trusted: Sequence[Network],
    ) -> str:
        """Whom a request (its verified ``identity``, its ``peer`` address and its ``headers``,
        names in lower case) is counted for: :func:`client_key` of :func:`client_address`.

        Forwarded headers from a peer that is not a trusted proxy are ignored, rightly, but
        that is also what a deployment sees whose load balancer is missing from
        ``BFF_TRUSTED_PROXIES``: every client behind it then shares one budget. It is logged,
        once per process.
        """
        forwarded_for = [v for k, v in headers if k == _FORWARDED_FOR]
        forwarded = [v for k, v in headers if k == _FORWARDED]
        address = client_address(peer, forwarded_for, trusted, forwarded)
        if (
            (forwarded_for or forwarded)
            and not self._warned_untrusted
            and peer is not None
            and not _is_trusted(peer, trusted)
        ):
            self._warned_untrusted = True
            logger.warning(
                "a request came with %s from %s, which is not a trusted proxy "
                "(BFF_TRUSTED_PROXIES): the header is ignored and the peer counted as the "
                "client, so if %s is the load balancer, every client behind it shares one rate "
                "limit; set BFF_TRUSTED_PROXIES to its addresses (said once)",
                "X-Forwarded-For" if forwarded_for else "Forwarded",
                address,
                address,
                extra={"event": "untrusted_forwarded_headers", "peer": address},
            )
        return client_key(identity, address, ipv6_prefix=self.ipv6_prefix)

    def policy_header(self, aggregate: str | None) -> str:
        """The ``RateLimit-Policy`` header's value for a route (of ``aggregate``, or not)."""
        return self._policy_of(aggregate).header

    def _policy_of(self, aggregate: str | None) -> _Policy:
        return self._per_aggregate.get(aggregate, self._global) if aggregate else self._global

    async def check(self, client: str, aggregate: str | None) -> Refusal | None:
        """Count a request of ``client`` (see :func:`client_key`); a :class:`Refusal` when it
        is over a limit, ``None`` when it may be served."""
        policy = self._policy_of(aggregate)
        if not policy.checks:
            return None
        local = self._local
        if local is not None:
            for item, scope in policy.checks:
                key = item.key_for(scope, client)
                if not local.hit(item, key):
                    return self._refusal(item, scope, local.retry_after(item, key))
            return None
        limiter = self._limiter
        assert limiter is not None, "RateLimits.start() was not awaited"
        if self._paused_until and time.monotonic() < self._paused_until:
            return self._unchecked()
        try:
            # Each a round trip to Redis: all at once.
            if len(policy.checks) == 1:
                item, scope = policy.checks[0]
                allowed = [await limiter.hit(item, scope, client)]
            else:
                allowed = await asyncio.gather(
                    *(limiter.hit(item, scope, client) for item, scope in policy.checks)
                )
        except StorageError as exc:
            return self._failed(exc)
        if self._failing:
            self._recovered()
        for (item, scope), ok in zip(policy.checks, allowed, strict=True):
            if not ok:
                return await self._over(limiter, item, scope, client)
        return None

    async def _over(
        self, limiter: SlidingWindowCounterRateLimiter, item: RateLimitItem, scope: str, client: str
    ) -> Refusal:
        try:
            stats = await limiter.get_window_stats(item, scope, client)
            wait = stats.reset_time - time.time()
        except StorageError:
            wait = item.get_expiry()
        return self._refusal(item, scope, wait)

    @staticmethod
    def _refusal(item: RateLimitItem, scope: str, wait: float) -> Refusal:
        retry_after = min(max(1, math.ceil(wait)), 2 * item.get_expiry())
        name = _policy_name(item, scope)
        return Refusal(
            status=429,
            retry_after=retry_after,
            detail=f"over the limit of {item.amount} requests per {_window_words(item)}",
            rate_limit=f'"{name}";r=0;t={retry_after}',
        )

    def _failed(self, exc: StorageError) -> Refusal | None:
        self._paused_until = time.monotonic() + _PAUSE_AFTER_FAILURE
        if not self._failing:
            self._failing = True
            cause = exc.storage_error
            logger.warning(
                "rate limits cannot be checked, Redis failed (%s: %s); %s until it is back",
                type(cause).__name__,
                cause,
                "refusing requests" if self.fail_closed else "serving requests unlimited",
                extra={"event": "rate_limits_down", "fail_closed": self.fail_closed},
            )
        return self._unchecked()

    def _unchecked(self) -> Refusal | None:
        if not self.fail_closed:
            return None
        return Refusal(
            status=503,
            retry_after=math.ceil(_PAUSE_AFTER_FAILURE),
            detail="the rate limits cannot be checked now (their store is unreachable)",
        )

    def _recovered(self) -> None:
        self._failing = False
        self._paused_until = 0.0
        logger.warning(
            "rate limits are checked again, Redis is back", extra={"event": "rate_limits_up"}
        )


class _LocalWindows:
    """Sliding window counters in this process, weighted as ``limits`` weighs them: a
    request is allowed while ``floor(previous * (share of this window still to come) +
    current) + 1`` stays within the limit. Synchronous: nothing here waits, so nothing needs a
    lock, and no task is started.

    Bounded: the counters are kept in the order they were last counted, windows long over are
    swept every ``_SWEEP_EVERY`` hits, and past ``max_windows`` the least recently counted tenth
    is dropped at once (one scan for many evictions: a dict's first items are found by walking
    over the holes earlier deletions left). A client dropped that way had been idle longer
    than every other one kept, and starts afresh; a client hitting its limit is counted
    constantly and so is never the one dropped.
    """

    __slots__ = ("_counts", "_hits", "_max")

    #: Forget the counters of windows that have ended once every this many hits.
    _SWEEP_EVERY = 10_000

    def __init__(self, max_windows: int = DEFAULT_MAX_LOCAL_WINDOWS) -> None:
        # key -> (window length, window number, count of the window before, count of this one)
        self._counts: dict[str, tuple[int, int, int, int]] = {}
        self._hits = 0
        self._max = max_windows

    def _state(self, key: str, expiry: int, now: float) -> tuple[int, int, int, float]:
        window = int(now // expiry)
        previous = current = 0
        found = self._counts.get(key)
        if found is not None:
            if found[1] == window:
                previous, current = found[2], found[3]
            elif found[1] == window - 1:
                previous = found[3]
        # The previous window weighs as much as is left of this one.
        weight = 1.0 - (now - window * expiry) / expiry
        return window, previous, current, weight

    def hit(self, item: RateLimitItem, key: str) -> bool:
        expiry, now = item.get_expiry(), time.time()
        window, previous, current, weight = self._state(key, expiry, now)
        allowed = math.floor(previous * weight + current) + 1 <= item.amount
        counts = self._counts
        # Out and in again: the dict stays in the order of last use.
        counts.pop(key, None)
        counts[key] = (expiry, window, previous, current + allowed)
        self._hits += 1
        if self._hits % self._SWEEP_EVERY == 0:
            self._sweep(now)
        if len(counts) > self._max:
            self._sweep(now)
            if len(counts) > self._max:
                for oldest in list(itertools.islice(counts, len(counts) - self._max * 9 // 10)):
                    del counts[oldest]
        return allowed

    def retry_after(self, item: RateLimitItem, key: str) -> float:
        """Seconds until one more request of ``key`` would be allowed (an estimate that
        assumes no other request meanwhile)."""
        expiry, now = item.get_expiry(), time.time()
        window, previous, current, weight = self._state(key, expiry, now)
        left = (window + 1) * expiry - now
        # One more is allowed once previous * weight + current falls below the limit.
        if current < item.amount and previous:
            # Within this window, as the previous one's weight shrinks.
            return max(0.0, (weight - (item.amount - current) / previous) * expiry)
        # In the next window, where this one's count is the previous one's (at most the
        # limit, so it falls below it at once).
        return left

    def _sweep(self, now: float) -> None:
        stale = [k for k, (e, w, _, _) in self._counts.items() if (w + 2) * e <= now]
        for key in stale:
            del self._counts[key]


def client_key(
    identity: Identity | None, address: str, *, ipv6_prefix: int = DEFAULT_IPV6_PREFIX
) -> str:
    """Whom a request is counted for: the verified subject (hashed: no user id in Redis
    keys), else the address (as :func:`client_address` gives it), an IPv6 one by its network
    of ``ipv6_prefix`` bits: the addresses of one host, or of one subscriber, share a budget
    however many of them it uses."""
    if identity is not None:
        return "sub:" + identity.digest
    if ":" in address:  # IPv6 (or something that is no address: counted as it is)
        try:
            network = ipaddress.IPv6Network((address, ipv6_prefix), strict=False)
        except ValueError:
            return "addr:" + address
        return f"addr:{network}"
    return "addr:" + address


def _policy_name(item: RateLimitItem, scope: str) -> str:
    every = (
        f"{item.multiples}-{item.GRANULARITY.name}"
        if item.multiples > 1
        else (item.GRANULARITY.name)
    )
    prefix = "" if scope == "all" else scope.removeprefix("agg:") + "-"
    return f"{prefix}{item.amount}-per-{every}"


def _window_words(item: RateLimitItem) -> str:
    name = item.GRANULARITY.name
    return f"{item.multiples} {name}s" if item.multiples > 1 else name
