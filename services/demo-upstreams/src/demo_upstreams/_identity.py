"""A demo identity provider: a key set (JWKS) and a token endpoint for a few demo users.

Enough for ``bff-demo`` to run both BFFs with identity on and no set-up: the signing key is
generated at start-up and lives in memory only, so every restart invalidates the tokens minted
before it (a BFF fetches the new key set when a token names the new key). There are no
passwords: anyone who can reach the endpoint can be any demo user. Never a production provider.

- ``GET /identity/.well-known/jwks.json``: the public key (ES256).
- ``POST /identity/token`` with ``{"user": "alice", "audience": "web-bff"}`` (JSON, or the same
  fields as a form): ``{"access_token", "token_type": "Bearer", "expires_in", "user", "name"}``.
  ``audience`` defaults to ``web-bff``; a token names one BFF, so web-bff refuses a token minted
  for mobile-bff. An unknown user or audience is a 400 problem.
- ``GET /identity/users``: the demo users, for a sign-in screen.

The tokens are RFC 9068 access tokens (``typ: at+jwt``) with ``iss``, ``sub`` (the user),
``aud``, ``iat``, ``exp``, ``jti`` and ``client_id``.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import msgspec

if TYPE_CHECKING:
    from joserfc.jwk import ECKey

__all__ = [
    "DEMO_AUDIENCES",
    "DEMO_ISSUER",
    "DEMO_USERS",
    "JWKS_PATH",
    "TOKEN_LIFETIME_S",
    "TOKEN_PATH",
    "DemoIdentity",
    "TokenRequest",
    "UnknownAudience",
    "UnknownUser",
]

DEMO_ISSUER: Final = "urn:bff-demo:identity"
"""The ``iss`` of every demo token (what ``BFF_JWT_ISSUER`` must say)."""

DEMO_AUDIENCES: Final[tuple[str, ...]] = ("web-bff", "mobile-bff")
"""The audiences a token may be minted for: one per BFF (each BFF's ``BFF_JWT_AUDIENCE``)."""

DEMO_USERS: Final[Mapping[str, str]] = {"alice": "Alice", "bob": "Bob", "carol": "Carol"}
"""The demo users (their ``sub``) and their display names."""

TOKEN_LIFETIME_S: Final = 900
"""How long a demo token is valid: short, as access tokens are."""

JWKS_PATH: Final = "/identity/.well-known/jwks.json"
TOKEN_PATH: Final = "/identity/token"  # noqa: S105 (a path, not a secret)

_ALGORITHM: Final = "ES256"


class TokenRequest(msgspec.Struct, frozen=True):
    """The body of ``POST /identity/token``."""

    user: str
    audience: str = DEMO_AUDIENCES[0]


class UnknownUser(ValueError):
    """The token request names no demo user."""


class UnknownAudience(ValueError):
    """The token request names an audience that is no demo BFF's."""


class DemoIdentity:
    """The provider's key and what it mints with it.

    Args:
        issuer: the ``iss`` of the tokens.
        lifetime_s: seconds a token is valid.
    """

    def __init__(self, *, issuer: str = DEMO_ISSUER, lifetime_s: int = TOKEN_LIFETIME_S) -> None:
        # Imported here, not at the top: joserfc brings in cryptography, a quarter of a second
        # on every start of demo-upstreams, which most runs (tests, benchmarks) never need.
        from joserfc.jwk import ECKey

        self.issuer = issuer
        self.lifetime_s = lifetime_s
        # A new kid per start: a BFF that cached the last run's key fetches the new set.
        kid = f"demo-{secrets.token_hex(4)}"
        self._key: ECKey = ECKey.generate_key(
            "P-256", parameters={"kid": kid, "use": "sig", "alg": _ALGORITHM}, private=True
        )
        self.kid = kid
        self.jwks = msgspec.json.encode({"keys": [self._key.as_dict(private=False)]})

    def mint(self, request: TokenRequest) -> str:
        """A signed token for ``request``'s user and audience.

        Raises:
            UnknownUser: the user is not one of :data:`DEMO_USERS`.
            UnknownAudience: the audience is not one of :data:`DEMO_AUDIENCES`.
        """
        if request.user not in DEMO_USERS:
            raise UnknownUser(
                f"no demo user {request.user[:64]!r}; the demo users are {', '.join(DEMO_USERS)}"
            )
        if request.audience not in DEMO_AUDIENCES:
            raise UnknownAudience(
                f"no audience {request.audience[:64]!r}; tokens are minted for "
                f"{' or '.join(DEMO_AUDIENCES)}"
            )
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": request.user,
            "aud": request.audience,
            "iat": now,
            "exp": now + self.lifetime_s,
            "jti": uuid.uuid4().hex,
            "client_id": request.audience,
            "name": DEMO_USERS[request.user],
        }
        header = {"alg": _ALGORITHM, "kid": self.kid, "typ": "at+jwt"}
        from joserfc import jwt  # imported with the key, see __init__

        return jwt.encode(header, claims, self._key, algorithms=[_ALGORITHM])
