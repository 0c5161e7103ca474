"""The guards: who is calling (bearer tokens checked against the provider's keys) and how much
each client may ask (rate limits, in-process or shared through Redis).

- ``_identity``: :class:`KeySet`, :class:`TokenVerifier`, :class:`Identity`;
- ``_ratelimit``: :class:`RateLimits`, whom a request is counted for, trusted proxies.
"""

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
    "DEFAULT_IPV6_PREFIX",
    "Identity",
    "IdentityUnavailable",
    "InvalidToken",
    "KeySet",
    "Network",
    "RateLimits",
    "Refusal",
    "TokenType",
    "TokenVerifier",
    "check_algorithms",
    "check_key_set_url",
    "client_address",
    "client_key",
    "parse_limits",
    "parse_networks",
]
