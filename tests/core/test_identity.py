"""Bearer tokens checked against a real JWKS endpoint on loopback whose keys rotate."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from bff_core._guards._identity import IdentityUnavailable, InvalidToken, KeySet, TokenVerifier

from tests.identity_provider import (
    ISSUER,
    MOBILE_AUDIENCE,
    WEB_AUDIENCE,
    IdentityProvider,
    claims_for,
    hs256_with_public_key,
    run_identity_provider,
    unsigned_token,
)


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    with run_identity_provider() as provider:
        provider.add_key("RS256", "rsa-1")
        provider.add_key("ES256", "ec-1")
        provider.add_key("EdDSA", "ed-1")
        yield provider


def verifier_for(provider: IdentityProvider, cooldown: float = 30.0) -> TokenVerifier:
    keys = KeySet(provider.url, refresh_every=3600, unknown_kid_cooldown=cooldown)
    return TokenVerifier(keys, issuer=ISSUER, audience=WEB_AUDIENCE, leeway=30)


@pytest.fixture
async def verifier(provider: IdentityProvider) -> AsyncIterator[TokenVerifier]:
    verifier = verifier_for(provider)
    await verifier.start()
    yield verifier
    await verifier.aclose()


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", "ed-1"])
async def test_tokens_of_every_accepted_algorithm_verify(
    verifier: TokenVerifier, provider: IdentityProvider, kid: str
) -> None:
    identity = await verifier.verify(provider.mint(kid, subject="ada"))
    assert identity.subject == "ada"
    assert identity.claims["aud"] == WEB_AUDIENCE
    assert identity.expires_at > time.time()


async def refusal(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(token)
    return str(refused.value)


async def test_bad_tokens_are_refused_each_with_its_reason(
    verifier: TokenVerifier, provider: IdentityProvider
) -> None:
    now = time.time()
    cases = {
        "expired": (provider.mint("rsa-1", lifetime=-120), "expired"),
        "not yet valid": (provider.mint("rsa-1", not_before=now + 600), "not valid yet"),
        "wrong issuer": (provider.mint("rsa-1", issuer="https://evil.example/"), "iss"),
        "mobile's audience": (provider.mint("ec-1", audience=MOBILE_AUDIENCE), "aud"),
        "alg none": (unsigned_token(claims_for()), "algorithm 'none'"),
        "HS256 with the public key": (
            hs256_with_public_key(provider, "rsa-1", claims_for()),
            "algorithm 'HS256'",
        ),
        "unknown kid": (_with_kid(provider, "rsa-1", "rsa-404"), "kid 'rsa-404'"),
        "malformed": ("not-a-jwt", "three dot-separated segments"),
        "bad header": ("e30x.e30.sig", "header"),
        "8 KB long": ("a" * 4000 + "." + "b" * 4000 + "." + "c" * 200, "longer than"),
        "tampered": (_tampered(provider.mint("rsa-1")), "signature"),
        "no sub": (provider.mint("ec-1", subject=""), "sub"),
    }
    for name, (token, reason) in cases.items():
        assert reason in await refusal(verifier, token), name


async def test_a_small_clock_skew_is_tolerated(
    verifier: TokenVerifier, provider: IdentityProvider
) -> None:
    # Expired 10 s ago, valid 10 s from now: within the 30 s leeway.
    assert await verifier.verify(provider.mint("rsa-1", lifetime=-10))
    assert await verifier.verify(provider.mint("rsa-1", not_before=time.time() + 10))


async def test_a_verified_token_is_not_checked_again_until_it_expires(
    verifier: TokenVerifier, provider: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from joserfc import jwt

    decoded = []
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        decoded.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    token = provider.mint("ec-1", lifetime=1)
    for _ in range(50):
        assert (await verifier.verify(token)).subject == "user-1"
    assert len(decoded) == 1
    # Past its exp and the leeway it is refused, remembered or not.
    verifier.leeway = 0
    verifier._verified[token].good_until = time.time() - 1
    assert "expired" in await refusal(verifier, token)


async def test_a_flood_of_unknown_kids_costs_at_most_one_fetch_per_cooldown(
    verifier: TokenVerifier, provider: IdentityProvider
) -> None:
    fetched = provider.fetches
    tokens = [_with_kid(provider, "rsa-1", f"random-{uuid.uuid4().hex}") for _ in range(200)]
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) for r in results)
    assert provider.fetches - fetched <= 1


async def test_a_rotated_key_is_picked_up_without_a_restart(provider: IdentityProvider) -> None:
    verifier = verifier_for(provider, cooldown=0.2)
    await verifier.start()
    try:
        assert await verifier.verify(provider.mint("rsa-1"))
        # The provider rotates: a new key signs from now on, the old one is withdrawn.
        provider.add_key("RS256", "rsa-2")
        provider.remove_key("rsa-1")
        await asyncio.sleep(0.25)  # past the cooldown of the first fetch
        identity = await verifier.verify(provider.mint("rsa-2", subject="grace"))
        assert identity.subject == "grace"
        assert verifier.keys.kids == {"rsa-2", "ec-1", "ed-1"}
    finally:
        await verifier.aclose()


async def test_a_failed_refresh_keeps_the_keys_it_had(provider: IdentityProvider) -> None:
    verifier = verifier_for(provider, cooldown=0)
    await verifier.start()
    try:
        token = provider.mint("ed-1")
        provider.failing = 500
        # A token with an unknown kid makes it fetch: the fetch fails, the keys stay.
        assert "kid" in await refusal(verifier, _with_kid(provider, "rsa-1", "rsa-9"))
        assert verifier.keys.last_error is not None
        assert (await verifier.verify(token)).subject == "user-1"
        assert verifier.keys.describe().endswith("last refresh failed")
    finally:
        await verifier.aclose()


async def test_without_any_key_yet_tokens_cannot_be_checked_until_the_provider_answers(
    provider: IdentityProvider,
) -> None:
    provider.failing = 503
    verifier = verifier_for(provider, cooldown=0)
    await verifier.start()  # does not fail: the provider may come up later
    try:
        token = provider.mint("rsa-1")
        with pytest.raises(IdentityUnavailable):
            await verifier.verify(token)
        provider.failing = 0
        assert (await verifier.verify(token)).subject == "user-1"
    finally:
        await verifier.aclose()


def test_only_asymmetric_algorithms_can_be_configured(provider: IdentityProvider) -> None:
    keys = KeySet(provider.url)
    for refused in (["HS256"], ["none"], ["RS256", "HS512"], []):
        with pytest.raises(ValueError, match="asymmetric"):
            TokenVerifier(keys, issuer=ISSUER, audience=WEB_AUDIENCE, algorithms=refused)


async def test_symmetric_and_private_keys_in_the_key_set_are_ignored() -> None:
    from bff_core._guards._identity import _parse_key_set

    _, kids = _parse_key_set(
        b'{"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},'
        b' {"kty": "EC", "kid": "private", "crv": "P-256", "d": "x", "x": "x", "y": "y"},'
        b' {"kty": "OKP", "kid": "ok", "crv": "Ed25519",'
        b' "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}'
    )
    assert kids == {"ok"}
    with pytest.raises(ValueError, match="no public signing key"):
        _parse_key_set(b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')


def _with_kid(provider: IdentityProvider, signer: str, kid: str) -> str:
    """A well-signed token whose header names ``kid`` instead of the signer's."""
    from joserfc import jwt

    alg, key = provider.keys[signer]
    return jwt.encode({"alg": alg, "kid": kid}, claims_for(), key, algorithms=[alg])


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


# --- malformed tokens: each a refusal, never another exception (issue 23) -------------------


def _segment(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def test_a_header_of_the_wrong_types_or_too_deep_is_refused(
    verifier: TokenVerifier, provider: IdentityProvider
) -> None:
    claims = json.dumps(claims_for()).encode()
    cases = {
        "alg a list": (b'{"alg": [], "kid": "ec-1"}', "alg"),
        "alg an object": (b'{"alg": {"a": 1}, "kid": "ec-1"}', "alg"),
        "kid a list": (b'{"alg": "ES256", "kid": []}', "kid"),
        "typ a number": (b'{"alg": "ES256", "kid": "ec-1", "typ": 1}', "typ"),
        "nested 1,000 deep": (b'{"alg": ' + _nested(1000) + b"}", "nested"),
        "nested 100,000 deep": (b'{"x": ' + _nested(100_000)[:6000] + b"}", "nested"),
        "not UTF-8": (b'{"alg": "ES256\xff"}', "header"),
    }
    for name, (header, reason) in cases.items():
        for token in (provider.sign("ec-1", header, claims), f"{_segment(header)}.e30.c2ln"):
            if len(token) <= 8192:
                assert reason in await refusal(verifier, token), name


async def test_claims_of_the_wrong_types_or_too_deep_are_refused_even_well_signed(
    verifier: TokenVerifier, provider: IdentityProvider
) -> None:
    header = b'{"alg": "ES256", "kid": "ec-1"}'
    now = int(time.time())
    cases: dict[str, tuple[bytes, str]] = {
        "exp beyond any float": (dumps({**claims_for(), "exp": 10**400}), "exp"),
        "exp NaN, not JSON": (dumps({**claims_for(), "exp": float("nan")}), "JSON"),
        "exp a string": (dumps({**claims_for(), "exp": "soon"}), "exp"),
        "nbf a string": (dumps({**claims_for(), "nbf": "now"}), "nbf"),
        "iat an object": (dumps({**claims_for(), "iat": {}}), "iat"),
        "iss a list": (dumps({**claims_for(), "iss": [ISSUER]}), "iss"),
        "aud a list of lists": (dumps({**claims_for(), "aud": [[WEB_AUDIENCE]]}), "aud"),
        "sub a number": (dumps({**claims_for(), "sub": 7}), "sub"),
        # json.loads takes it, and the subject's digest could then not be computed
        "sub half a surrogate pair": (dumps({**claims_for(), "sub": "\ud800"}), "JSON"),
        "claims nested 2,000 deep": (
            b'{"sub": "u", "exp": ' + str(now + 60).encode() + b', "x": ' + _nested(2000) + b"}",
            "nested",
        ),
        "claims a list": (b"[]", "claims"),
        "claims not JSON": (b"{", "claims"),
    }
    for name, (payload, reason) in cases.items():
        assert reason in await refusal(verifier, provider.sign("ec-1", header, payload)), name


async def test_a_token_over_the_size_limit_is_refused_before_it_is_decoded(
    verifier: TokenVerifier, provider: IdentityProvider
) -> None:
    fine = provider.mint("ec-1", padding="x" * 5000)
    assert 6000 < len(fine) <= 8192
    assert await verifier.verify(fine)
    huge = provider.mint("ec-1", padding="x" * 20_000)
    assert "longer than" in await refusal(verifier, huge)


# --- typ (RFC 8725, section 3.11; RFC 9068) ----------------------------------------------------


async def test_tokens_typed_as_something_else_than_an_access_token_are_refused(
    verifier: TokenVerifier, provider: IdentityProvider
) -> None:
    for typed in (None, "JWT", "jwt", "application/jwt", "at+jwt", "application/at+JWT"):
        assert await verifier.verify(provider.mint("rsa-1", typ=typed)), typed
    for other in ("secevent+jwt", "logout+jwt", "dpop+jwt", "id_token+jwt", "JOSE", ""):
        assert "typ" in await refusal(verifier, provider.mint("rsa-1", typ=other)), other


async def test_a_provider_declared_to_issue_at_jwt_must_type_every_token_so(
    provider: IdentityProvider,
) -> None:
    keys = KeySet(provider.url, refresh_every=3600)
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=WEB_AUDIENCE, typ="at+jwt")
    await verifier.start()
    try:
        for typed in ("at+jwt", "application/at+jwt", "AT+JWT"):
            assert await verifier.verify(provider.mint("ec-1", typ=typed)), typed
        for other in (None, "JWT", "secevent+jwt"):
            assert "at+jwt" in await refusal(verifier, provider.mint("ec-1", typ=other)), other
    finally:
        await verifier.aclose()


# --- where the key set comes from ---------------------------------------------------------------


def test_the_key_set_is_fetched_over_https_or_from_a_loopback_host_only() -> None:
    for allowed in (
        "https://idp.example/.well-known/jwks.json",
        "http://127.0.0.1:8080/jwks",
        "http://127.9.9.9/jwks",
        "http://localhost:8080/jwks",
        "http://[::1]:8080/jwks",
    ):
        KeySet(allowed)
    for refused in (
        "http://idp.example/.well-known/jwks.json",
        "http://10.0.0.5/jwks",
        "http://localhost.evil.example/jwks",
        "ftp://idp.example/jwks",
    ):
        with pytest.raises(ValueError, match="https"):
            KeySet(refused)


async def test_a_redirect_from_the_key_set_url_is_not_followed(
    provider: IdentityProvider,
) -> None:
    keys = KeySet(provider.redirecting_url, refresh_every=3600, unknown_kid_cooldown=0)
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=WEB_AUDIENCE)
    await verifier.start()
    try:
        with pytest.raises(IdentityUnavailable, match="302"):
            await verifier.verify(provider.mint("rsa-1"))
        assert provider.fetches == 0  # the key set itself was never asked for
    finally:
        await verifier.aclose()


# --- what an identity shows ----------------------------------------------------------------------


async def test_an_identity_shows_neither_its_token_nor_its_subject(
    verifier: TokenVerifier, provider: IdentityProvider
) -> None:
    token = provider.mint("ec-1", subject="ada.lovelace@example.com")
    identity = await verifier.verify(token)
    shown = repr(identity) + str(identity)
    assert token not in shown
    assert token.split(".")[2] not in shown
    assert "ada.lovelace" not in shown
    assert identity.digest in shown
