"""Idempotency keys: a ``POST`` carried out once per key, however many instances race.

The IETF ``Idempotency-Key`` header draft's semantics, as the contract states them
(``docs/decisions/0017-writes-and-idempotency.md`` has the reasons):

- a record per (user, route, key), claimed atomically before anything is sent: in Redis by
  ``SET NX`` (one key per record, so one slot of a Redis Cluster), in process memory without
  Redis (one event loop: nothing runs between the look and the claim);
- the record holds a fingerprint of the body: the same key with another body is refused (422);
- while the first request runs, another with the key is refused (409); a record whose request
  should long have ended (its instance died mid-request) is an unknown outcome, never a second
  request;
- once the upstream answered, the record keeps that answer (status, body, type) for at least
  24 hours, and a request with the same key and body gets it again (``Idempotent-Replayed:
  true``);
- when the outcome is unknown (sent, then no answer), the record keeps the unknown-outcome
  answer: a retry with the key is told the same, and never places a second order;
- when nothing was sent (invalid, refused, breaker open), the record is released: the key may
  be used again for that request.

Record keys never name the user or the client's key: both are hashed into the key.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

from .._errors import InvalidParameter
from .._redis import AnyRedis, close_quietly, connect, parse_redis_url

__all__ = [
    "DEFAULT_IDEMPOTENCY_TTL",
    "IDEMPOTENCY_HEADER",
    "REPLAYED_HEADER",
    "Claimed",
    "Idempotency",
    "IdempotencyStore",
    "MemoryRecords",
    "RedisRecords",
    "Refused",
    "Replay",
    "check_idempotency_key",
    "fingerprint",
]

logger = logging.getLogger("bff_core.idempotency")

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: How long a record (and the answer it keeps) lives: the contract's "at least 24 hours".
DEFAULT_IDEMPOTENCY_TTL = 24 * 3600.0
#: How long past its deadline a running record is believed to be still running.
_GRACE = 30.0
_KEY = re.compile(r"[\x20-\x7e]{1,255}")


def check_idempotency_key(key: str) -> str:
    """``key`` if it is 1 to 255 printable ASCII characters; :class:`InvalidParameter` else."""
    if not _KEY.fullmatch(key):
        raise InvalidParameter(
            f"the {IDEMPOTENCY_HEADER} header must be 1 to 255 printable ASCII characters",
            parameter=IDEMPOTENCY_HEADER,
        )
    return key


def fingerprint(body: bytes | None) -> str:
    """The body's fingerprint: JSON compared by meaning (key order and spacing aside)."""
    raw = body or b""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(raw), order="sorted") if raw else b""
    except msgspec.DecodeError:
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


class _Record(msgspec.Struct, array_like=True, frozen=True):
    state: Literal["running", "done", "unknown"]
    fingerprint: str
    #: a running record's claimer (random): only it may complete or release the record
    owner: str
    #: a running record: the wall-clock time after which its request cannot still be running
    running_until: float = 0.0
    status: int = 0
    content_type: str = ""
    body: bytes = b""


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Record).decode


class IdempotencyStore(Protocol):
    """Where records live: an atomic claim, and compare-and-set by the claimer."""

    async def claim(self, key: str, record: bytes, ttl: float) -> bytes | None:
        """Store ``record`` unless ``key`` has one: ``None`` when stored, else the existing."""
        ...

    async def replace(self, key: str, expected: bytes, record: bytes | None, ttl: float) -> None:
        """Replace (``None``: delete) the record at ``key`` if it still is ``expected``."""
        ...

    async def aclose(self) -> None: ...


class MemoryRecords:
    """Records in process memory: one instance's, lost at a restart (the demo without Redis).

    Bounded: beyond ``max_records`` the oldest is dropped (its key could then be used again).
    """

    def __init__(self, max_records: int = 100_000) -> None:
        self._records: dict[str, tuple[bytes, float]] = {}
        self._max = max_records

    async def claim(self, key: str, record: bytes, ttl: float) -> bytes | None:
        now = time.monotonic()
        found = self._records.get(key)
        if found is not None and found[1] > now:
            return found[0]
        self._records.pop(key, None)
        if len(self._records) >= self._max:
            del self._records[next(iter(self._records))]
        self._records[key] = (record, now + ttl)
        return None

    async def replace(self, key: str, expected: bytes, record: bytes | None, ttl: float) -> None:
        found = self._records.get(key)
        if found is None or found[0] != expected:
            return
        if record is None:
            del self._records[key]
        else:
            self._records[key] = (record, time.monotonic() + ttl)

    async def aclose(self) -> None:
        self._records.clear()


#: Compare-and-set of one key (so one slot): only the claimer changes its running record.
_REPLACE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"""


class RedisRecords:
    """Records in Redis (one server or a cluster): shared by every instance, kept across
    restarts. A Redis failure is raised (the edge answers 503): a write is never carried out
    without its key being claimed."""

    def __init__(self, redis_url: str, *, timeout: float = 1.0) -> None:
        self._client: AnyRedis = connect(
            parse_redis_url(redis_url), timeout=timeout, socket_timeout=timeout
        )
        self._replace = self._client.register_script(_REPLACE)

    async def claim(self, key: str, record: bytes, ttl: float) -> bytes | None:
        stored = await self._client.set(key, record, nx=True, px=int(ttl * 1000), get=True)
        # SET NX GET (Redis 7): the previous value, or None when this one was stored.
        if stored is None:
            return None
        assert isinstance(stored, bytes)  # a client without decode_responses
        return stored

    async def replace(self, key: str, expected: bytes, record: bytes | None, ttl: float) -> None:
        await self._replace(
            keys=[key], args=[expected, b"" if record is None else record, int(ttl * 1000)]
        )

    async def aclose(self) -> None:
        await close_quietly(self._client, within=1.0, logger=logger, what="idempotency store")


@dataclass(frozen=True, slots=True)
class Replay:
    """The stored answer of the key's first request (``unknown``: its outcome is unknown)."""

    status: int
    content_type: str
    body: bytes
    unknown: bool


@dataclass(frozen=True, slots=True)
class Refused:
    """Another request's record: ``running`` (409), ``mismatch`` (another body, 422), or
    ``abandoned`` (its instance stopped mid-request: the outcome is unknown, 504)."""

    why: Literal["running", "mismatch", "abandoned"]


class Claimed:
    """This request holds the key: carry it out, then say how it ended (exactly once)."""

    __slots__ = ("_idempotency", "_key", "_record")

    def __init__(self, idempotency: Idempotency, key: str, record: bytes) -> None:
        self._idempotency = idempotency
        self._key = key
        self._record = record

    async def done(self, status: int, content_type: str, body: bytes) -> None:
        """The upstream answered: keep the answer, to replay."""
        await self._finish("done", status, content_type, body)

    async def unknown(self, status: int, content_type: str, body: bytes) -> None:
        """Sent, then no answer: keep the unknown-outcome answer, never carry it out again."""
        await self._finish("unknown", status, content_type, body)

    async def release(self) -> None:
        """Nothing was sent: the key may be used again."""
        store = self._idempotency.store
        await store.replace(self._key, self._record, None, 0)

    async def _finish(
        self, state: Literal["done", "unknown"], status: int, content_type: str, body: bytes
    ) -> None:
        claimed = _decode(self._record)
        record = _Record(state, claimed.fingerprint, "", 0.0, status, content_type, body)
        ttl = self._idempotency.ttl
        await self._idempotency.store.replace(self._key, self._record, _encode(record), ttl)


class Idempotency:
    """Idempotency keys for one gateway (see the module documentation).

    Args:
        store: where records live (:class:`RedisRecords` for a fleet, else
            :class:`MemoryRecords`).
        ttl: seconds a record lives (at least 24 hours by the contract).
        namespace: the deployment's prefix in a shared Redis.
    """

    def __init__(
        self,
        store: IdempotencyStore | None = None,
        *,
        ttl: float = DEFAULT_IDEMPOTENCY_TTL,
        namespace: str = "bff",
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be positive, got {ttl!r}")
        self.store: IdempotencyStore = store if store is not None else MemoryRecords()
        self.ttl = ttl
        self._prefix = f"{namespace}:idem:"

    def record_key(self, user: str, route: str, key: str) -> str:
        digest = hashlib.sha256("\0".join((user, route, key)).encode()).hexdigest()
        # One key per record: a hash tag is not needed for one slot, but keeps the record's
        # slot stable should it ever gain a companion key.
        return f"{self._prefix}{{{digest[:40]}}}"

    async def claim(
        self, *, user: str, route: str, key: str, body: bytes | None, running_for: float
    ) -> Claimed | Replay | Refused:
        """Claim ``key`` for this request, or say why it cannot be carried out.

        ``running_for``: the seconds the request may take at most (its deadline); a record
        still running well past that is an abandoned one.
        """
        record_key = self.record_key(user, route, check_idempotency_key(key))
        printed = fingerprint(body)
        mine = _encode(
            _Record("running", printed, secrets.token_hex(8), time.time() + running_for + _GRACE)
        )
        # One atomic operation: stored, or the record that was there (never both, never none).
        found = await self.store.claim(record_key, mine, self.ttl)
        if found is None:
            return Claimed(self, record_key, mine)
        try:
            record = _decode(found)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # Not a record of ours (another version, corruption): refuse rather than run.
            return Refused("running")
        if record.fingerprint != printed:
            return Refused("mismatch")
        if record.state == "running":
            return Refused("running" if time.time() < record.running_until else "abandoned")
        return Replay(record.status, record.content_type, record.body, record.state == "unknown")

    async def aclose(self) -> None:
        await self.store.aclose()
