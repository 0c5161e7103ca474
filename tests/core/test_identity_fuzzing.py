"""Whatever a client sends as a bearer token, the verifier answers with an identity or a typed
refusal (``InvalidToken``, ``IdentityUnavailable``), never another exception (which the edge
would turn into a 500): arbitrary strings and bytes, base64 of arbitrary JSON, headers and
claims of every type, deep nesting, huge tokens, and all of these well signed by the provider's
real keys, as only the provider itself could send them.

Hypothesis generates the tokens; the examples are bounded so the module runs in seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from bff_core._guards import Identity, IdentityUnavailable, InvalidToken, KeySet, TokenVerifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.identity_provider import ISSUER, WEB_AUDIENCE, IdentityProvider, run_identity_provider

pytestmark = pytest.mark.fuzzing

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written to the work tree; a failure prints its example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Fuzzed:
    provider: IdentityProvider
    verifier: TokenVerifier
    loop: asyncio.AbstractEventLoop

    def outcome(self, token: str) -> Identity | None:
        """The identity ``token`` proves, or ``None`` when it is refused as it must be."""
        try:
            return self.loop.run_until_complete(self.verifier.verify(token))
        except (InvalidToken, IdentityUnavailable):
            return None


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    # A loop of its own: Hypothesis drives synchronous tests, each example one verify().
    loop = asyncio.new_event_loop()
    with run_identity_provider() as provider:
        provider.add_key("ES256", "ec-1")
        provider.add_key("RS256", "rsa-1")
        provider.add_key("EdDSA", "ed-1")
        keys = KeySet(provider.url, refresh_every=3600, unknown_kid_cooldown=3600)
        verifier = TokenVerifier(keys, issuer=ISSUER, audience=WEB_AUDIENCE)
        loop.run_until_complete(verifier.start())
        try:
            yield Fuzzed(provider, verifier, loop)
        finally:
            loop.run_until_complete(verifier.aclose())
            loop.close()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def dumps(value: Any) -> bytes:
    # NaN and Infinity come out as the non-JSON words json.dumps writes: inputs too.
    return json.dumps(value).encode()


#: Any JSON value, including numbers no float holds.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**53 + 1, 10**400, -(10**400)])
    | st.floats()
    | st.text(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

#: Headers with the fields a verifier reads, each either plausible or anything at all.
headers = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(
            ["ES256", "ES384", "RS256", "PS256", "EdDSA", "Ed25519", "Ed448", "none", "HS256"]
        )
        | json_values,
        "kid": st.sampled_from(["ec-1", "rsa-1", "ed-1", "unknown"]) | json_values,
        "typ": st.sampled_from(["JWT", "at+jwt", "application/at+jwt", "secevent+jwt"])
        | json_values,
        "crit": json_values,
        "b64": json_values,
        "zip": json_values,
        "jwk": json_values,
    },
)


def claims() -> st.SearchStrategy[dict[str, Any]]:
    """Claims that are right but for some registered ones, which may be anything."""
    now = int(time.time())
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "iss": st.just(ISSUER),
        "aud": st.sampled_from([WEB_AUDIENCE, [WEB_AUDIENCE, "other"]]),
        "sub": st.text(max_size=12),
        "exp": st.integers(now - 600, now + 600),
        "nbf": st.integers(now - 600, now + 600),
        "iat": st.integers(now - 600, now + 600),
        "jti": st.text(max_size=8),
    }
    each = {
        name: st.one_of(value, json_values) | st.just(_ABSENT) for name, value in plausible.items()
    }
    return st.fixed_dictionaries(each).map(
        lambda found: {name: value for name, value in found.items() if value is not _ABSENT}
    )


_ABSENT = object()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@given(token=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
@FUZZ
def test_any_string_is_refused(fuzzed: Fuzzed, token: str) -> None:
    assert fuzzed.outcome(token) is None


@given(
    kid=st.sampled_from(["ec-1", "rsa-1", "ed-1"]),
    # st.text() never makes half a surrogate pair: characters joined by hand do.
    inserted=st.lists(
        st.characters() | st.characters(categories=["Cs"]), min_size=1, max_size=8
    ).map("".join),
    where=st.integers(0, 10_000),
)
@FUZZ
def test_a_good_token_with_any_text_put_into_it_is_refused_or_verified(
    fuzzed: Fuzzed, kid: str, inserted: str, where: int
) -> None:
    # Any character at all, half surrogate pairs included: a str the HTTP layer would never
    # hand over, but the verifier's API takes any str.
    token = fuzzed.provider.mint(kid)
    at = where % (len(token) + 1)
    fuzzed.outcome(token[:at] + inserted + token[at:])


@given(segments=st.lists(st.binary(max_size=120).map(b64), min_size=1, max_size=5))
@FUZZ
def test_any_base64_segments_are_refused(fuzzed: Fuzzed, segments: list[str]) -> None:
    assert fuzzed.outcome(".".join(segments)) is None


@given(header=json_values | headers, payload=json_values, signature=st.binary(max_size=80))
@FUZZ
def test_any_json_unsigned_is_refused(
    fuzzed: Fuzzed, header: Any, payload: Any, signature: bytes
) -> None:
    token = f"{b64(dumps(header))}.{b64(dumps(payload))}.{b64(signature)}"
    assert fuzzed.outcome(token) is None


@given(
    header=headers,
    payload=claims() | json_values,
    kid=st.sampled_from(["ec-1", "rsa-1", "ed-1"]),
)
@FUZZ
def test_well_signed_tokens_of_any_header_and_claims_verify_or_are_refused(
    fuzzed: Fuzzed, header: dict[str, Any], payload: Any, kid: str
) -> None:
    token = fuzzed.provider.sign(kid, dumps(header), dumps(payload))
    identity = fuzzed.outcome(token)
    if identity is not None:
        # Only what the verifier was told to accept is ever an identity.
        assert header["alg"] in ("ES256", "RS256", "EdDSA", "Ed25519")
        assert header.get("kid") in ("ec-1", "rsa-1", "ed-1")
        assert isinstance(identity.subject, str) and identity.subject
        assert identity.claims["iss"] == ISSUER


@given(
    depth=st.integers(1, 4000),
    where=st.sampled_from(["header", "claims"]),
    opening=st.sampled_from([b"[", b"{"]),
)
@FUZZ
def test_nesting_of_any_depth_is_refused_or_verified(
    fuzzed: Fuzzed, depth: int, where: str, opening: bytes
) -> None:
    deep = nested(depth) if opening == b"[" else b'{"a":' * depth + b"1" + b"}" * depth
    now = int(time.time())
    claims = dumps({"iss": ISSUER, "aud": WEB_AUDIENCE, "sub": "u", "exp": now + 60})
    header = b'{"alg": "ES256", "kid": "ec-1"}'
    if where == "header":
        header = header[:-1] + b', "x": ' + deep + b"}"
    else:
        claims = claims[:-1] + b', "x": ' + deep + b"}"
    token = fuzzed.provider.sign("ec-1", header, claims)
    identity = fuzzed.outcome(token)
    if where == "claims" and len(token) <= 8192:
        # Within the bound (the object around it is one more level), the token is good. (A
        # header field joserfc does not know, like this "x", is refused whatever its depth.)
        assert (identity is None) == (depth + 1 > 32)


@given(size=st.integers(8000, 64_000), signed=st.booleans())
@FUZZ
def test_huge_tokens_are_refused(fuzzed: Fuzzed, size: int, signed: bool) -> None:
    if signed:
        token = fuzzed.provider.sign("ec-1", b'{"alg": "ES256"}', dumps({"pad": "x" * size}))
    else:
        token = "e" * size
    if len(token) > 8192:
        assert fuzzed.outcome(token) is None
