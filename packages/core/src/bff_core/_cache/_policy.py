"""What may be cached and for how long: a declared :class:`CachePolicy` (``_declare``) capped by
the upstream's ``Cache-Control``, and the entry every store keeps."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeAlias

import msgspec

from .._declare import CachePolicy
from .._transports import UpstreamResponse

__all__ = ["Accept", "Entry", "decode_entry", "encode_entry", "freshness", "windows"]


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """A cached answer: the upstream's 200 body (or a whole encoded answer), when it was
    produced, its windows and the tags an invalidation finds it by. Encoded compactly with
    msgpack where it leaves the process."""

    stored_at: float  # wall clock: entries are shared between processes
    ttl: float
    swr: float
    sie: float
    body: bytes
    tags: tuple[str, ...] = ()

    @classmethod
    def now(
        cls, body: bytes, ttl: float, swr: float = 0.0, sie: float = 0.0, tags: Sequence[str] = ()
    ) -> Entry:
        return cls(time.time(), ttl, swr, sie, body, tuple(tags))

    def fresh_left(self, now: float) -> float:
        """Seconds it stays fresh after ``now`` (wall clock); 0 or less: it is not."""
        return self.stored_at + self.ttl - now

    def life_left(self, now: float) -> float:
        """Seconds it may still be served at all, stale windows included."""
        return self.stored_at + self.ttl + max(self.swr, self.sie) - now


#: Whether an entry read from a shared store is usable (see ``CacheStore.get``).
Accept: TypeAlias = Callable[[Entry], bool]

encode_entry = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(Entry).decode


def decode_entry(raw: bytes) -> Entry | None:
    """The entry in ``raw``, or ``None`` when it is not one this release can read (a miss,
    replaced on the next store)."""
    try:
        return _decode_entry(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def windows(policy: CachePolicy, response: UpstreamResponse) -> tuple[float, float, float] | None:
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


def freshness(policy: CachePolicy, response: UpstreamResponse) -> float:
    """How long ``response`` may be served as fresh (0: not cacheable)."""
    found = windows(policy, response)
    return 0.0 if found is None else found[0]


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
