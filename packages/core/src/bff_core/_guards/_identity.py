"""Who is calling: bearer JWTs verified against the identity provider's key set (JWKS).

- :class:`KeySet` keeps the provider's public keys: fetched without blocking the event loop,
  refreshed in the background, fetched again when a token names a ``kid`` it does not know (at
  most once per cooldown, so a flood of random ``kid``s is not a flood of JWKS requests). A
  failed fetch keeps the keys it had.
- :class:`TokenVerifier` checks a token (algorithm, ``typ``, signature, ``iss``, ``aud``,
  ``exp``, ``nbf``, ``sub``) and remembers the tokens it verified until they expire, so a repeat
  request pays no signature check.

Whatever a client sends as a token ends in a token or an :class:`InvalidToken`: its size is
bounded before anything is decoded, its JSON's nesting before it is parsed (the JSON parsers
recurse), and every header field and claim is checked for its type before it is used.

Only asymmetric algorithms are accepted (RS256, ES256, EdDSA and their relatives); ``none`` and
the HMAC family never, so a public key can never serve as an HMAC secret, and symmetric
(``oct``) keys in a key set are ignored. The key set comes over https (or plain http from a
loopback host), and a redirect is not followed: whoever answers at the configured URL is the
only source of keys. The JOSE work itself is joserfc's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import logging
import math
import re
import time
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

import aiohttp
import msgspec
from joserfc import jwt
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
    SecurityWarning,
)
from joserfc.jwk import KeySet as JoseKeySet

from .._errors import BFFError

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "Identity",
    "IdentityUnavailable",
    "InvalidToken",
    "KeySet",
    "TokenType",
    "TokenVerifier",
    "check_algorithms",
    "check_key_set_url",
]

logger = logging.getLogger("bff_core.identity")

#: What a deployment may accept: signatures made with a private key and checked with a public
#: one. RFC 9864 renames EdDSA to Ed25519/Ed448; providers still issue both spellings.
ASYMMETRIC_ALGORITHMS = frozenset(
    {
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512", "EdDSA", "Ed25519", "Ed448",
    }
)  # fmt: skip
DEFAULT_ALGORITHMS = ("RS256", "ES256", "EdDSA", "Ed25519")
# joserfc warns on every EdDSA token (RFC 9864 deprecates the name); accepting it is the
# deployment's choice (BFF_JWT_ALGORITHMS), made once, not a warning per request.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

#: Longer bearer tokens are refused before any parsing (real ones are a few hundred bytes to
#: a few kilobytes).
MAX_TOKEN_CHARS = 8192
#: Deeper JSON in a token's header or claims is refused before it is parsed: the JSON parsers
#: recurse (a thousand levels raise RecursionError), and real tokens nest a few levels at most
#: (Keycloak's ``resource_access.<client>.roles`` is three).
MAX_JSON_DEPTH = 32
#: The time claims are numbers of seconds within I-JSON's exact integers (RFC 7493): a larger
#: one does not even convert to a float.
_MAX_TIME = 2.0**53
#: What a token's ``typ`` may say (RFC 8725, section 3.11: a JWT of another kind, a security
#: event or a logout token, is not an access token). ``JWT``: a ``typ`` is optional (most
#: providers send ``JWT`` or none, Cognito none) but when present must be ``JWT`` or
#: ``at+jwt``; ``at+jwt``: the provider issues RFC 9068 access tokens, and every token must say
#: so. Media types are compared without case and without their ``application/`` prefix (RFC
#: 7515, section 4.1.9).
TokenType: TypeAlias = Literal["JWT", "at+jwt"]
TOKEN_TYPES: tuple[TokenType, ...] = ("JWT", "at+jwt")
_ACCEPTED_TYPES: dict[TokenType, frozenset[str | None]] = {
    "JWT": frozenset({None, "jwt", "at+jwt"}),
    "at+jwt": frozenset({"at+jwt"}),
}
_MAX_JWKS_BYTES = 1024 * 1024
_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


class InvalidToken(BFFError):
    """The bearer token cannot be accepted (RFC 6750 ``invalid_token``): malformed, signed with
    an algorithm or key that is not accepted, badly signed, expired, not yet valid, or for
    another issuer or audience. The message says which, without echoing the token."""


class IdentityUnavailable(BFFError):
    """The provider's keys could not be fetched yet, so no token can be checked (HTTP 503)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller. Its ``repr`` shows the subject's digest only: neither the bearer
    token (a credential) nor the subject (a user's id) reaches a log or a traceback by it."""

    subject: str = field(repr=False)
    #: the bearer token as received, for the upstreams that declare they need it
    token: str = field(repr=False)
    #: when the token expires (Unix time)
    expires_at: float
    claims: dict[str, Any] = field(repr=False)
    #: the subject hashed, for keys that must tell users apart without naming them (cache
    #: entries, rate-limit counters): computed once per verified token
    digest: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        digest = hashlib.blake2b(self.subject.encode(), digest_size=12).hexdigest()
        object.__setattr__(self, "digest", digest)


class KeySet:
    """The identity provider's public keys, fetched from ``url`` and kept fresh.

    Args:
        url: the provider's JWKS document.
        refresh_every: seconds between background refreshes.
        unknown_kid_cooldown: at most one fetch per this many seconds on behalf of tokens that
            name a ``kid`` the set does not have (or while no key was ever fetched).
        timeout: seconds a fetch may take.

    Raises:
        ValueError: ``url`` is neither https nor http to a loopback host.
    """

    def __init__(
        self,
        url: str,
        *,
        refresh_every: float = 300.0,
        unknown_kid_cooldown: float = 30.0,
        timeout: float = 2.0,
    ) -> None:
        check_key_set_url(url)
        self.url = url
        self.refresh_every = refresh_every
        self.unknown_kid_cooldown = unknown_kid_cooldown
        self.timeout = timeout
        self.keys: JoseKeySet | None = None
        self.kids: frozenset[str | None] = frozenset()
        self.fetches = 0
        self.last_error: str | None = None
        self._last_on_demand = -float("inf")
        self._fetching: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Fetch the keys once (a failure is logged, not raised: the provider may come up
        after the gateway) and keep refreshing them in the background."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=False
        )
        await self._fetch_shared()
        self._refresher = asyncio.get_running_loop().create_task(
            self._refresh_forever(), name="bff-jwks-refresh"
        )

    async def aclose(self) -> None:
        for task in (self._refresher, self._fetching):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def knows(self, kid: str | None) -> bool:
        return self.keys is not None and (kid in self.kids or (kid is None and len(self.kids) > 0))

    async def fetch_for(self, kid: str | None) -> None:
        """A token names ``kid``, which the set lacks: fetch again, unless a fetch on behalf
        of such a token was made less than the cooldown ago."""
        now = time.monotonic()
        if now - self._last_on_demand < self.unknown_kid_cooldown:
            if self._fetching is not None:  # one is under way: its answer may have the key
                await asyncio.shield(self._fetching)
            return
        self._last_on_demand = now
        await self._fetch_shared()

    async def _refresh_forever(self) -> None:
        failures = 0
        while True:
            # After a failure, try again sooner (up to the usual period): keys may rotate.
            wait = self.refresh_every if failures == 0 else min(self.refresh_every, 2.0**failures)
            await asyncio.sleep(wait)
            await self._fetch_shared()
            failures = 0 if self.last_error is None else failures + 1

    async def _fetch_shared(self) -> None:
        """One fetch at a time; whoever asks while one runs waits for that one."""
        if self._fetching is None:
            self._fetching = asyncio.get_running_loop().create_task(
                self._fetch(), name="bff-jwks-fetch"
            )
            self._fetching.add_done_callback(self._fetched)
        await asyncio.shield(self._fetching)

    def _fetched(self, task: asyncio.Task[None]) -> None:
        self._fetching = None

    async def _fetch(self) -> None:
        assert self._session is not None
        self.fetches += 1
        try:
            # Never redirected: keys are trusted for the URL they come from, and a redirect
            # could take them from plain http or from another host.
            async with self._session.get(
                self.url, headers={"accept": "application/json"}, allow_redirects=False
            ) as r:
                if 300 <= r.status < 400:
                    raise ValueError(f"the key set answered {r.status}: redirects are not followed")
                if r.status != 200:
                    raise ValueError(f"the key set answered {r.status}")
                body = await r.content.read(_MAX_JWKS_BYTES + 1)
                if len(body) > _MAX_JWKS_BYTES:
                    raise ValueError(f"the key set is over {_MAX_JWKS_BYTES} bytes")
            keys, kids = _parse_key_set(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self.last_error is None:
                logger.warning(
                    "fetching the identity provider's keys from %s failed (%s); %s",
                    self.url,
                    error,
                    "keeping the keys fetched before" if self.keys else "no token can be checked",
                    extra={"event": "jwks_failed", "error": error},
                )
            self.last_error = error
            return
        if self.last_error is not None or kids != self.kids:
            logger.info(
                "the identity provider's key set has %d keys: %s",
                len(kids),
                ", ".join(sorted(str(kid) for kid in kids)),
                extra={"event": "jwks_loaded", "keys": len(kids)},
            )
        self.keys, self.kids, self.last_error = keys, kids, None

    def describe(self) -> str:
        """For ``/readyz``: how many keys, or why there are none."""
        if self.keys is None:
            return f"no keys yet ({self.last_error or 'not fetched'})"
        described = f"ok ({len(self.kids)} keys)"
        return described if self.last_error is None else f"{described}, last refresh failed"


def _parse_key_set(body: bytes) -> tuple[JoseKeySet, frozenset[str | None]]:
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ValueError("the key set is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('the key set has no "keys" list')
    usable = [
        key
        for key in document["keys"]
        if isinstance(key, dict)
        and key.get("kty") in _KEY_TYPES
        and key.get("use", "sig") == "sig"
        and "d" not in key  # a private key published by mistake is not trusted either
    ]
    if not usable:
        raise ValueError("the key set has no public signing key")
    try:
        keys = JoseKeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"a key of the set cannot be read ({exc})") from None
    return keys, frozenset(key.get("kid") for key in usable)


def check_key_set_url(url: str) -> None:
    """:class:`ValueError` unless ``url`` is https, or plain http to a loopback host (a
    provider beside the gateway, or the tests'): keys fetched in clear from elsewhere could be
    anyone's."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL ({exc})") from None
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host is not None and _is_loopback(host):
        return
    raise ValueError(
        f"{url!r}: the key set must come over https (plain http only from a loopback host: "
        "localhost, 127.0.0.0/8, ::1)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_algorithms(algorithms: Collection[str]) -> None:
    """:class:`ValueError` unless ``algorithms`` are some, all asymmetric."""
    refused = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if refused or not algorithms:
        raise ValueError(
            f"{', '.join(refused) or '(none)'}: only asymmetric algorithms are accepted "
            f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); never none or HMAC"
        )


@dataclass(slots=True)
class _Verified:
    identity: Identity
    #: until when (Unix time) it is accepted without a new check: its exp plus the leeway
    good_until: float


class TokenVerifier:
    """Checks bearer tokens for one audience.

    Args:
        keys: the provider's key set.
        issuer: the ``iss`` every token must have.
        audience: the ``aud`` this BFF accepts (each BFF its own, so one client's tokens are
            refused by the other BFF).
        algorithms: the ``alg`` values accepted (asymmetric ones only).
        leeway: seconds of clock skew allowed on ``exp`` and ``nbf``.
        max_cached: verified tokens remembered at most.
        typ: ``JWT``: a token's ``typ``, if any, must be ``JWT`` or ``at+jwt``;
            ``at+jwt``: the provider issues RFC 9068 access tokens, every one must say so.
    """

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        max_cached: int = 10_000,
        typ: TokenType = "JWT",
    ) -> None:
        check_algorithms(algorithms)
        if typ not in TOKEN_TYPES:
            raise ValueError(f"typ must be one of {', '.join(TOKEN_TYPES)}")
        self.typ = typ
        self._types = _ACCEPTED_TYPES[typ]
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.max_cached = max_cached
        self._verified: dict[str, _Verified] = {}
        self._claims = jwt.JWTClaimsRegistry(
            leeway=int(leeway),
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    async def start(self) -> None:
        await self.keys.start()

    async def aclose(self) -> None:
        await self.keys.aclose()

    async def verify(self, token: str) -> Identity:
        """The identity ``token`` proves.

        Raises:
            InvalidToken: it proves none (the message says why).
            IdentityUnavailable: no key of the provider could be fetched yet.
        """
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken(f"the token is longer than {MAX_TOKEN_CHARS} characters")
        if not token.isascii():  # base64url and dots only; joserfc would fail to encode some
            raise InvalidToken("the token has characters a JWT cannot have")
        remembered = self._verified.get(token)
        if remembered is not None:
            if time.time() < remembered.good_until:
                return remembered.identity
            del self._verified[token]
            raise InvalidToken("the token has expired")
        header, claims_segment = _header_of(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise InvalidToken("the token's alg is not a string")
        if algorithm not in self.algorithms:
            raise InvalidToken(f"the token's algorithm {algorithm[:32]!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's kid is not a string")
        self._check_type(header.get("typ"))
        # Parsed here once, bounded, before joserfc parses them again (its json.loads
        # recurses): not JSON, or not an object, is refused without a signature check.
        if not isinstance(_json_of(claims_segment, "claims are"), dict):
            raise InvalidToken("the token's claims are not a JSON object")
        if not self.keys.knows(kid):
            await self.keys.fetch_for(kid)
            if self.keys.keys is None:
                raise IdentityUnavailable(
                    f"the identity provider's keys are not available ({self.keys.last_error})"
                )
            if not self.keys.knows(kid):
                raise InvalidToken(
                    f"no key of the identity provider has the token's kid {kid[:64]!r}"
                    if kid is not None
                    else "the token names no kid and the key set has several keys"
                )
        assert self.keys.keys is not None
        try:
            decoded = jwt.decode(token, self.keys.keys, algorithms=[algorithm])
        except JoseError as exc:
            raise InvalidToken(f"the token's signature does not verify ({exc.error})") from None
        claims = decoded.claims
        _check_claim_types(claims)
        try:
            self._claims.validate(claims)
        except ExpiredTokenError:
            raise InvalidToken("the token has expired") from None
        except MissingClaimError as exc:
            raise InvalidToken(f"the token lacks the claim {exc.claim}") from None
        except InvalidClaimError as exc:
            if exc.claim == "nbf":
                raise InvalidToken("the token is not valid yet (nbf)") from None
            raise InvalidToken(f"the token's {exc.claim} is not accepted here") from None
        subject, expires = claims["sub"], claims["exp"]
        if not subject:
            raise InvalidToken("the token's sub is not a non-empty string")
        identity = Identity(subject=subject, token=token, expires_at=expires, claims=claims)
        self._remember(token, _Verified(identity, expires + self.leeway))
        return identity

    def _check_type(self, typ: object) -> None:
        if typ is not None and not isinstance(typ, str):
            raise InvalidToken("the token's typ is not a string")
        kind = None if typ is None else typ.lower().removeprefix("application/")
        if kind not in self._types:
            said = "no typ" if typ is None else f"typ {typ[:32]!r}"
            raise InvalidToken(
                f"the token's {said} is not at+jwt, as this identity provider's access tokens say"
                if self.typ == "at+jwt"
                else f"the token's {said} is not an access token's (JWT or at+jwt)"
            )

    def _remember(self, token: str, verified: _Verified) -> None:
        if len(self._verified) >= self.max_cached:
            now = time.time()
            for old in [t for t, v in self._verified.items() if v.good_until <= now]:
                del self._verified[old]
            if len(self._verified) >= self.max_cached:
                # Still full of live tokens: forget the older half (insertion order).
                for old in list(self._verified)[: self.max_cached // 2]:
                    del self._verified[old]
        self._verified[token] = verified


def _header_of(token: str) -> tuple[dict[str, Any], str]:
    """The token's header, and its claims' segment (still encoded)."""
    segments = token.split(".")
    if len(segments) != 3 or not all(segments[:2]):
        raise InvalidToken("the token is not a signed JWT (three dot-separated segments)")
    header = _json_of(segments[0], "header is")
    if not isinstance(header, dict):
        raise InvalidToken("the token's header is not a JSON object")
    if "crit" in header:
        raise InvalidToken("the token's header has critical extensions this gateway lacks")
    return header, segments[1]


def _json_of(segment: str, what: str) -> Any:
    """A token's segment (``what`` names it, with its verb: "header is") decoded: base64url,
    then UTF-8 JSON no deeper than :data:`MAX_JSON_DEPTH`."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken(f"the token's {what} not base64url-encoded JSON") from None
    if _nested_deeper_than(raw, MAX_JSON_DEPTH):
        raise InvalidToken(f"the token's {what} nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, ValueError):  # ValueError: UnicodeDecodeError, not UTF-8
        raise InvalidToken(f"the token's {what} not base64url-encoded JSON") from None


#: A JSON string (in UTF-8, whose multi-byte sequences never contain ``"`` or ``\``).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _nested_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether the JSON ``raw`` nests arrays and objects deeper than ``limit``: a scan that
    recurses nowhere, of a text already bounded by :data:`MAX_TOKEN_CHARS`. Brackets in
    strings do not count; in text that is not JSON they may, which only refuses it sooner."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the usual case: not even that many openings
    depth = 0
    for byte in _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _check_claim_types(claims: dict[str, Any]) -> None:
    """The registered claims a token has are of their types (RFC 7519, section 4.1), before
    anything compares or converts them: :class:`InvalidToken` naming the first that is not."""
    for name in ("iss", "sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise InvalidToken(f"the token's {name} is not a string")
    audience = claims.get("aud")
    if audience is not None and not (
        isinstance(audience, str)
        or (isinstance(audience, list) and all(isinstance(a, str) for a in audience))
    ):
        raise InvalidToken("the token's aud is not a string or a list of strings")
    for name in ("exp", "nbf", "iat"):
        if name in claims:
            value = claims[name]
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or abs(value) > _MAX_TIME  # first: a huge int does not convert to a float
                or not math.isfinite(value)
            ):
                raise InvalidToken(f"the token's {name} is not a time (a number of seconds)")
