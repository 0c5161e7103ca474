"""The demo identity provider: its tokens verify with bff_core's own verifier, and a BFF started
with ``bff-demo --identity``'s settings accepts them and refuses forged ones."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from bff_core._guards._identity import InvalidToken, KeySet, TokenVerifier
from demo_upstreams import (
    DEMO_AUDIENCES,
    DEMO_ISSUER,
    DEMO_USERS,
    JWKS_PATH,
    TOKEN_PATH,
    DemoIdentity,
)
from demo_upstreams._demo import _UPSTREAM_ENV_VARS, identity_env
from demo_upstreams._identity import TokenRequest
from joserfc import jws

from tests.processes import run_service

from .conftest import Upstream


def header_of(token: bytes) -> dict[str, Any]:
    header: dict[str, Any] = jws.extract_compact(token).protected
    return header


async def token_request(
    upstream: Upstream, body: Any = None, *, data: Any = None
) -> tuple[int, str, Any]:
    kwargs: dict[str, Any] = {"json": body} if data is None else {"data": data}
    async with upstream.http.post(upstream.url + TOKEN_PATH, **kwargs) as response:
        return response.status, response.content_type, await response.json(content_type=None)


async def mint(upstream: Upstream, user: str = "alice", audience: str = "web-bff") -> str:
    status, _, body = await token_request(upstream, {"user": user, "audience": audience})
    assert status == 200, body
    token: str = body["access_token"]
    return token


@pytest.fixture
async def verifiers(upstream: Upstream) -> AsyncIterator[dict[str, TokenVerifier]]:
    """bff_core's verifier for each BFF's audience, as bff-demo --identity configures them."""
    made = {}
    for audience in DEMO_AUDIENCES:
        env = identity_env(upstream.url, audience)
        keys = KeySet(env["BFF_JWT_JWKS_URL"], refresh_every=3600, unknown_kid_cooldown=0)
        made[audience] = TokenVerifier(
            keys, issuer=env["BFF_JWT_ISSUER"], audience=audience, typ="at+jwt"
        )
    for verifier in made.values():
        await verifier.start()
    yield made
    for verifier in made.values():
        await verifier.aclose()


async def test_the_key_set_is_one_public_signing_key(upstream: Upstream) -> None:
    async with upstream.http.get(upstream.url + JWKS_PATH) as response:
        assert response.status == 200
        assert response.content_type == "application/jwk-set+json"
        [key] = (await response.json(content_type=None))["keys"]
    assert (key["kty"], key["crv"], key["use"], key["alg"]) == ("EC", "P-256", "sig", "ES256")
    assert key["kid"].startswith("demo-")
    assert "d" not in key


@pytest.mark.parametrize("user", list(DEMO_USERS))
async def test_a_demo_users_token_verifies_for_its_bff(
    upstream: Upstream, verifiers: dict[str, TokenVerifier], user: str
) -> None:
    for audience in DEMO_AUDIENCES:
        status, _, body = await token_request(upstream, {"user": user, "audience": audience})
        assert status == 200
        assert (body["token_type"], body["user"], body["name"]) == (
            "Bearer",
            user,
            DEMO_USERS[user],
        )
        assert 60 <= body["expires_in"] <= 3600
        identity = await verifiers[audience].verify(body["access_token"])
        assert identity.subject == user
        assert identity.claims["iss"] == DEMO_ISSUER
        assert identity.claims["exp"] - identity.claims["iat"] == body["expires_in"]
        header = header_of(body["access_token"].encode())
        assert (header["alg"], header["typ"]) == ("ES256", "at+jwt")


async def test_a_token_for_one_bff_is_refused_by_the_other(
    upstream: Upstream, verifiers: dict[str, TokenVerifier]
) -> None:
    token = await mint(upstream, audience="mobile-bff")
    with pytest.raises(InvalidToken):
        await verifiers["web-bff"].verify(token)


async def test_the_audience_defaults_to_the_web_bff(
    upstream: Upstream, verifiers: dict[str, TokenVerifier]
) -> None:
    status, _, body = await token_request(upstream, {"user": "bob"})
    assert status == 200
    assert (await verifiers["web-bff"].verify(body["access_token"])).subject == "bob"


async def test_a_form_works_as_well_as_json(
    upstream: Upstream, verifiers: dict[str, TokenVerifier]
) -> None:
    status, _, body = await token_request(
        upstream, data={"user": "carol", "audience": "mobile-bff"}
    )
    assert status == 200
    assert (await verifiers["mobile-bff"].verify(body["access_token"])).subject == "carol"
    # As curl sends it: JSON labelled as a form.
    status, _, body = await token_request(upstream, data=json.dumps({"user": "alice"}))
    assert (status, body["user"]) == (200, "alice")


async def test_a_token_signed_with_another_key_is_refused(
    upstream: Upstream, verifiers: dict[str, TokenVerifier]
) -> None:
    real = header_of((await mint(upstream)).encode())["kid"]
    forger = DemoIdentity()
    forger.kid = real  # the right key id, the wrong key
    with pytest.raises(InvalidToken):
        await verifiers["web-bff"].verify(forger.mint(TokenRequest(user="alice")))


@pytest.mark.parametrize(
    ("body", "slug", "says"),
    [
        ({"user": "mallory"}, "unknown-user", "alice, bob, carol"),
        ({"user": "alice", "audience": "admin"}, "unknown-audience", "web-bff or mobile-bff"),
        ({"audience": "web-bff"}, "invalid-body", "user"),
        ({"user": 7}, "invalid-body", "$.user"),
    ],
)
async def test_an_unknown_user_or_audience_is_refused(
    upstream: Upstream, body: dict[str, Any], slug: str, says: str
) -> None:
    status, content_type, problem = await token_request(upstream, body)
    assert (status, content_type) == (400 if "unknown" in slug else 422, "application/problem+json")
    assert problem["type"].endswith(slug)
    assert says in problem["detail"]


async def test_the_users_are_listed_and_any_page_may_call(upstream: Upstream) -> None:
    async with upstream.http.get(upstream.url + "/identity/users") as response:
        assert response.headers["access-control-allow-origin"] == "*"
        users = await response.json()
    assert users == [{"user": u, "name": n} for u, n in DEMO_USERS.items()]
    preflight = {
        "origin": "http://127.0.0.1:8000",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    async with upstream.http.options(upstream.url + TOKEN_PATH, headers=preflight) as response:
        assert response.status == 204
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "Content-Type" in response.headers["access-control-allow-headers"]


async def test_every_instance_has_its_own_key(
    server_factory: Any, http: aiohttp.ClientSession
) -> None:
    kids = set()
    for _ in range(2):
        async with server_factory(latency_scale=0) as url, http.get(url + JWKS_PATH) as response:
            kids.add((await response.json(content_type=None))["keys"][0]["kid"])
    assert len(kids) == 2


@pytest.mark.process
def test_a_bff_started_as_bff_demo_identity_starts_it_accepts_demo_tokens() -> None:
    # Real processes, as ./run demo --identity would start them.
    with run_service("demo_upstreams", ["--latency-scale", "0"]) as upstreams:
        env = {
            **dict.fromkeys(_UPSTREAM_ENV_VARS, upstreams.url),
            **identity_env(upstreams.url, "web-bff"),
        }
        with run_service("web_bff", env=env) as web, httpx.Client(timeout=10) as http:
            asked = http.post(upstreams.url + TOKEN_PATH, json={"user": "alice"})
            token = asked.json()["access_token"]
            page = web.url + "/api/aggregated/product?id=p-1001"
            answer = http.get(page, headers={"authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["product"]["id"] == "p-1001"

            kid = header_of(token.encode())["kid"]
            forger = DemoIdentity()
            forger.kid = kid
            forged = forger.mint(TokenRequest(user="alice"))
            refused = http.get(page, headers={"authorization": f"Bearer {forged}"})
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")

            mobile = http.post(
                upstreams.url + TOKEN_PATH, json={"user": "bob", "audience": "mobile-bff"}
            ).json()["access_token"]
            wrong = http.get(page, headers={"authorization": f"Bearer {mobile}"})
            assert wrong.status_code == 401
