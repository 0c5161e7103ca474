"""What every Redis client of bff-core shares: which Redis a URL names (one server or a
cluster), how a client connects, subscribes, closes and describes its failures.

The cache store (``_cache``) and the peers' channel (``_peers``) each keep their own client,
because they use it differently (short batched operations; a long-lived subscription). Both
work unchanged on a single Redis and on a Redis Cluster: the client is either
``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``, which speak the same commands and
pipelines, and the keys they use are hash-tagged so that what must share a slot does.

URLs:

- ``redis://[user:password@]host:port[/db]``, ``rediss://...`` (TLS), ``unix:///path``: one
  server (or a managed service's single endpoint);
- ``redis+cluster://[user:password@]host:port[,host:port...]``, ``rediss+cluster://...``: a
  Redis Cluster, found through any of the nodes named (the others are discovered).

Redis is a trust boundary: a password (percent-encoded in the URL) and TLS are what keep
whatever else runs in the network from reading the cache or writing into it. With TLS the
server's certificate is verified, against the system's authorities or against the one of
``?ssl_ca_certs=/path/ca.pem`` in the URL (what ``BFF_REDIS_CA_FILE`` adds, see
:func:`with_ca_file`), for a server and a cluster alike. Nothing here repeats a URL's password
in an error or a log line.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis.asyncio
import redis.asyncio.client
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = [
    "AnyRedis",
    "RedisTarget",
    "close_pubsub_quietly",
    "close_quietly",
    "connect",
    "describe",
    "parse_redis_url",
    "redacted",
    "refuses_credentials",
    "sharded_pubsub",
    "with_ca_file",
]

#: A client of one server or of a cluster: the same commands and pipelines.
AnyRedis: TypeAlias = "redis.asyncio.Redis | redis.asyncio.RedisCluster"

_SINGLE_SCHEMES = ("redis", "rediss", "unix")
_CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
_EXAMPLES = "e.g. redis://127.0.0.1:6379/0 or redis+cluster://10.0.0.1:7000,10.0.0.2:7000"


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A Redis URL, checked: one server, or the seed nodes of a cluster."""

    url: str
    #: the seed nodes (host, port) of a cluster; empty for a single server
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    tls: bool = False
    #: the certificate authority a TLS server's certificate is verified against (else the
    #: system's)
    ca_file: str | None = None

    @property
    def cluster(self) -> bool:
        return bool(self.cluster_nodes)

    def describe(self) -> str:
        """``redis`` or ``redis cluster``, for ``/readyz`` and the logs."""
        return "redis cluster" if self.cluster else "redis"


def parse_redis_url(url: str) -> RedisTarget:
    """The Redis ``url`` names; :class:`ValueError` saying what is wrong with it otherwise
    (naming the URL without its password)."""
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    shown = redacted(url)
    if not separator:
        raise ValueError(f"{shown!r} is not a Redis URL, {_EXAMPLES}")
    query = parse_qs(urlsplit(url).query)
    ca_file = query.get("ssl_ca_certs", [None])[0]  # the first, as redis-py reads it
    if ca_file is not None and scheme not in ("rediss", "rediss+cluster"):
        raise ValueError(f"{shown!r} names a CA (ssl_ca_certs) without TLS: use rediss://")
    if scheme in _SINGLE_SCHEMES:
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"{shown!r} has an invalid port ({exc})") from None
        if scheme != "unix" and not parts.hostname:
            raise ValueError(f"{shown!r} has no host, {_EXAMPLES}")
        return RedisTarget(
            url,
            username=unquote(parts.username or "") or None,
            password=unquote(parts.password or "") or None,
            tls=scheme == "rediss",
            ca_file=ca_file,
        )
    if scheme not in _CLUSTER_SCHEMES:
        raise ValueError(f"{shown!r} is not a Redis URL, {_EXAMPLES}")
    userinfo, at, hosts = rest.rpartition("@")
    if not at:
        userinfo = ""
    hosts = hosts.split("/", 1)[0].split("?", 1)[0]
    nodes = []
    for address in hosts.split(","):
        host, colon, port_text = address.strip().rpartition(":")
        if not colon or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(
                f"{shown!r}: {address.strip() or '(empty)'!r} is not host:port; a cluster URL "
                "names one or more nodes, e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000"
            )
        nodes.append((host.strip("[]"), int(port_text)))
    username, _, password = userinfo.partition(":")
    return RedisTarget(
        url,
        cluster_nodes=tuple(nodes),
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=_CLUSTER_SCHEMES[scheme],
        ca_file=ca_file,
    )


def with_ca_file(url: str, ca_file: str | None) -> str:
    """``url`` with ``ca_file`` as the authority its TLS server's certificate is verified
    against (``ssl_ca_certs``, which redis-py reads from a URL's query itself)."""
    if ca_file is None:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}ssl_ca_certs={quote(ca_file, safe='')}"


def redacted(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: for messages and logs."""
    scheme, separator, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not separator or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{hosts}"


class _RoutedCluster(redis.asyncio.RedisCluster):
    """A cluster client whose first commands go to the node that owns their key.

    redis-py (8.1) chooses where a command goes before it initializes a new client, when it
    knows no node yet: the first commands of a fresh client then go to whichever node it
    learns first and come back ``MOVED``. It follows the redirection, but every fifth one
    closes the whole client, under the commands still in flight on it, which then fail
    with ``AttributeError: 'NoneType' object has no attribute 'writelines'`` (four fresh
    clients with five concurrent first commands each: once in 100 to 300 rounds).
    Initializing first, as every later command finds it, routes each by its key's slot from
    the start.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def connect(target: RedisTarget, *, timeout: float, socket_timeout: float | None) -> AnyRedis:
    """A client that fails within ``timeout`` to connect, and never retries by itself.

    redis-py retries 3 times with backoff by default: that would stretch one failed operation
    far past the caller's own deadline. Each caller has its own way to try again later (a
    cluster client still follows the cluster's redirections when slots move).
    ``socket_timeout=None`` suits a subscription, which waits for messages indefinitely.
    """
    if not target.cluster:
        return redis.asyncio.from_url(
            target.url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=timeout,
            health_check_interval=0,
            retry=Retry(NoBackoff(), 0),
        )
    return _RoutedCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.cluster_nodes],
        username=target.username,
        password=target.password,
        ssl=target.tls,
        ssl_ca_certs=target.ca_file,
        socket_timeout=socket_timeout,
        socket_connect_timeout=timeout,
        # One retry: what a cluster client needs to follow a moved slot after a failover;
        # the caller bounds the whole operation anyway.
        retry=Retry(NoBackoff(), 1),
        # Start (and keep working) while some slots have no master: the others are usable.
        require_full_coverage=False,
    )


async def sharded_pubsub(
    client: AnyRedis, target: RedisTarget, channel: str
) -> tuple[redis.asyncio.client.PubSub, redis.asyncio.Redis | None]:
    """A pub/sub connection subscribed (``SSUBSCRIBE``) to the shard channel ``channel``.

    Sharded pub/sub (Redis 7) works on a single server as on a cluster: on a cluster the
    subscription must be made on the node that owns the channel's slot, so it is a plain
    connection to that node. Returns the pub/sub and, on a cluster, that node's client, for
    the caller to close with it.
    """
    if isinstance(client, redis.asyncio.RedisCluster):
        await client.initialize()
        node = client.get_node_from_key(channel)
        if node is None:
            raise redis.exceptions.ClusterDownError(f"no node serves the slot of {channel!r}")
        node_client: redis.asyncio.Redis | None = redis.asyncio.Redis(
            host=node.host,
            port=int(node.port),
            username=target.username,
            password=target.password,
            ssl=target.tls,
            ssl_ca_certs=target.ca_file,
            socket_connect_timeout=client.connection_kwargs.get("socket_connect_timeout"),
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
        )
        assert node_client is not None
        pubsub = node_client.pubsub(ignore_subscribe_messages=True)
    else:
        node_client = None
        pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.ssubscribe(channel)
    except BaseException:
        await _close_pubsub(pubsub, node_client)
        raise
    return pubsub, node_client


async def _close_pubsub(
    pubsub: redis.asyncio.client.PubSub, node_client: redis.asyncio.Redis | None
) -> None:
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    finally:
        if node_client is not None:
            await node_client.aclose()


async def close_pubsub_quietly(
    pubsub: redis.asyncio.client.PubSub,
    node_client: redis.asyncio.Redis | None,
    *,
    within: float,
    logger: logging.Logger,
) -> None:
    """Close what :func:`sharded_pubsub` opened, within ``within`` seconds, never raising."""
    try:
        async with asyncio.timeout(within):
            await _close_pubsub(pubsub, node_client)
    except Exception as exc:
        logger.debug("closing a subscription failed: %s", describe(exc, within))


async def close_quietly(
    client: AnyRedis, *, within: float, logger: logging.Logger, what: str
) -> None:
    """Close ``client`` within ``within`` seconds; a failure is logged at debug level, not raised:
    closing a broken connection must not fail a shutdown."""
    try:
        async with asyncio.timeout(within):
            await client.aclose()
    except Exception as exc:
        logger.debug("closing the %s failed: %s", what, describe(exc, within))


#: What Redis and redis-py say when credentials are wrong or missing (a cluster client wraps
#: the error in its own, keeping the text).
_CREDENTIALS_REFUSED = (
    "WRONGPASS",
    "NOAUTH",
    "invalid username-password pair",
    "Authentication required",
    "invalid password",
    "must be called with the client already authenticated",  # HELLO without AUTH
)


def refuses_credentials(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing the URL's credentials (a wrong or missing password):
    a configuration error, not an outage, and said as such."""
    seen: BaseException | None = exc
    for _ in range(5):  # the exception and what it was raised from
        if seen is None:
            break
        if isinstance(seen, redis.exceptions.AuthenticationError):
            return True
        if any(marker in str(seen) for marker in _CREDENTIALS_REFUSED):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe(exc: BaseException, timeout: float) -> str:
    """A short reason for logs and ``/readyz``: a bare timeout says how long it waited."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout * 1000:g} ms"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
