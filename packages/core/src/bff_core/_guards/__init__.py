"""The guards: who is calling (bearer tokens checked against the provider's keys) and how much
each client may ask (rate limits, in-process or shared through Redis).

- ``_identity``: :class:`KeySet`, :class:`TokenVerifier`, :class:`Identity`;
- ``_ratelimit``: :class:`RateLimits`, whom a request is counted for, trusted proxies;
- ``_idempotency``: :class:`Idempotency`, a write's ``Idempotency-Key`` claimed once across
  the fleet (records in Redis, or in process memory).
"""

from ._idempotency import (
    DEFAULT_IDEMPOTENCY_TTL,
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    Claimed,
    Idempotency,
    IdempotencyStore,
    MemoryRecords,
    RedisRecords,
    Refused,
    Replay,
    check_idempotency_key,
    fingerprint,
)
from ._identity import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_ALGORITHMS,
    Identity,
    IdentityUnavailable,
    InvalidToken,
    KeySet,
    TokenType,
    TokenVerifier,
    check_algorithms,
    check_key_set_url,
)
from ._ratelimit import (
    DEFAULT_IPV6_PREFIX,
    Network,
    RateLimits,
    Refusal,
    client_address,
    client_key,
    parse_limits,
    parse_networks,
)

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "DEFAULT_IDEMPOTENCY_TTL",
    "DEFAULT_IPV6_PREFIX",
    "IDEMPOTENCY_HEADER",
    "REPLAYED_HEADER",
    "Claimed",
    "Idempotency",
    "IdempotencyStore",
    "Identity",
    "IdentityUnavailable",
    "InvalidToken",
    "KeySet",
    "MemoryRecords",
    "Network",
    "RateLimits",
    "RedisRecords",
    "Refusal",
    "Refused",
    "Replay",
    "TokenType",
    "TokenVerifier",
    "check_algorithms",
    "check_idempotency_key",
    "check_key_set_url",
    "client_address",
    "client_key",
    "fingerprint",
    "parse_limits",
    "parse_networks",
]
