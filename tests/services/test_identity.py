"""Identity at the edge, end to end: a real BFF (served from the test process, over real HTTP)
verifying tokens against a real JWKS endpoint on loopback, the demo upstreams recording what
reached them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

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
from tests.processes import RunningService
from tests.services.conftest import Upstreams, serve_bff

# One worker: the tests share one identity provider and one guarded BFF, whose state (keys,
# fetches, cache, rate limit) they build on in order.
pytestmark = pytest.mark.xdist_group("identity")

PRODUCT = "/api/aggregated/product"
ACCOUNT = "/api/account/product"


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    with run_identity_provider() as provider:
        provider.add_key("RS256", "rsa-1")
        provider.add_key("ES256", "ec-1")
        yield provider


@pytest.fixture(scope="module")
def guarded(upstreams_process: RunningService, provider: IdentityProvider) -> Iterator[str]:
    with serve_bff(
        upstreams_process.url,
        "tests.services.guarded_bff",
        BFF_CACHE="on",
        BFF_CACHE_NAMESPACE=f"guarded-{uuid.uuid4().hex[:8]}",
        BFF_JWT_JWKS_URL=provider.url,
        BFF_JWT_ISSUER=ISSUER,
        BFF_JWT_AUDIENCE=WEB_AUDIENCE,
        BFF_JWT_KID_COOLDOWN_S="0",
        BFF_RATE_LIMIT_ACCOUNT_PRODUCT="5/hour",
    ) as service:
        yield service.url


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_anonymous_callers_get_the_product_page_and_no_identity_reaches_an_upstream(
    guarded: str, upstreams: Upstreams, http: httpx.Client
) -> None:
    response = http.get(guarded + PRODUCT, params={"id": "p-1001"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    for service in ("product", "pricing"):
        for request in upstreams.requests(service):
            assert "authorization" not in request["headers"]
            assert "x-user-id" not in request["headers"]


def test_a_route_that_needs_a_caller_answers_401_without_a_token(
    guarded: str, http: httpx.Client
) -> None:
    response = http.get(guarded + ACCOUNT, params={"id": "p-1001"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    # RFC 6750, section 3: no credentials, no error code, the bare challenge.
    assert response.headers["www-authenticate"] == 'Bearer realm="guarded-bff"'
    assert response.json()["type"] == "urn:bff:problem:unauthorized"
    assert "x-request-id" in response.headers


def test_an_invalid_token_is_a_401_on_every_route(
    guarded: str, provider: IdentityProvider, http: httpx.Client
) -> None:
    bad = {
        "expired": provider.mint("rsa-1", lifetime=-600),
        "mobile's token": provider.mint("ec-1", audience=MOBILE_AUDIENCE),
        "wrong issuer": provider.mint("rsa-1", issuer="https://evil.example/"),
        "alg none": unsigned_token(claims_for()),
        "HS256 with the public key": hs256_with_public_key(provider, "rsa-1", claims_for()),
        "garbage": "x.y.z",
        "8 KB": "e" * 8192,
        # Each was a 500 with a traceback (issue 23): a header's field of the wrong type, JSON
        # nested deeper than the parsers recurse, a security event token for an access token.
        "alg a list": provider.sign("rsa-1", b'{"alg": [], "kid": "rsa-1"}', b"{}"),
        "header nested 1,000 deep": provider.sign(
            "rsa-1", b'{"alg": ' + b"[" * 1000 + b"]" * 1000 + b"}", b"{}"
        ),
        "claims nested 2,000 deep": provider.sign(
            "rsa-1",
            b'{"alg": "RS256", "kid": "rsa-1"}',
            b'{"x":' + b"[" * 2000 + b"]" * 2000 + b"}",
        ),
        "exp beyond any float": provider.sign(
            "rsa-1",
            b'{"alg": "RS256", "kid": "rsa-1"}',
            json.dumps(claims_for(exp=10**400)).encode(),
        ),
        "a security event token": provider.mint("rsa-1", typ="secevent+jwt"),
    }
    for path in (PRODUCT, ACCOUNT):
        for name, token in bad.items():
            response = http.get(guarded + path, params={"id": "p-1001"}, headers=bearer(token))
            assert response.status_code == 401, (path, name, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith('Bearer realm="guarded-bff", error="invalid_token"'), name
            assert "error_description=" in challenge
    other_scheme = http.get(
        guarded + PRODUCT, params={"id": "p-1001"}, headers={"authorization": "Basic dTpw"}
    )
    assert other_scheme.status_code == 401
    assert 'error="invalid_request"' in other_scheme.headers["www-authenticate"]


def test_the_identity_reaches_only_the_sources_that_declare_it(
    guarded: str, provider: IdentityProvider, upstreams: Upstreams, http: httpx.Client
) -> None:
    subject = f"ada-{uuid.uuid4().hex[:6]}"
    token = provider.mint("rsa-1", subject=subject)
    response = http.get(guarded + ACCOUNT, params={"id": "p-1002"}, headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["product"]["id"] == "p-1002" and body["pricing"] and body["reviews"]
    assert response.headers["cache-control"] == "private, no-cache"
    [pricing] = upstreams.requests("pricing")
    assert pricing["headers"]["x-user-id"] == subject
    assert "authorization" not in pricing["headers"]
    [reviews] = upstreams.requests("reviews")
    assert reviews["headers"]["authorization"] == f"Bearer {token}"
    assert "x-user-id" not in reviews["headers"]
    [product] = upstreams.requests("product")
    assert "authorization" not in product["headers"] and "x-user-id" not in product["headers"]


def test_per_user_parts_are_cached_per_user_and_shared_parts_shared(
    guarded: str, provider: IdentityProvider, upstreams: Upstreams, http: httpx.Client
) -> None:
    first, second = (provider.mint("ec-1", subject=f"u-{uuid.uuid4().hex[:6]}") for _ in "ab")
    params = {"id": "p-1003"}
    for token in (first, second, first, second):
        assert http.get(guarded + ACCOUNT, params=params, headers=bearer(token)).status_code == 200
    counts = upstreams.counts()
    # One product request for both users; one pricing request per user; the repeats are
    # each user's own cached answers.
    assert counts["product"] == 1
    assert counts["pricing"] == 2
    assert sorted(r["headers"]["x-user-id"] for r in upstreams.requests("pricing")) == sorted(
        provider_subjects(first, second)
    )


def provider_subjects(*tokens: str) -> list[str]:
    import base64
    import json

    subjects = []
    for token in tokens:
        payload = token.split(".")[1]
        subjects.append(json.loads(base64.urlsafe_b64decode(payload + "=="))["sub"])
    return subjects


def test_a_rotated_key_is_accepted_without_a_restart(
    guarded: str, provider: IdentityProvider, http: httpx.Client
) -> None:
    provider.add_key("EdDSA", f"ed-{uuid.uuid4().hex[:6]}")
    kid = list(provider.keys)[-1]
    token = provider.mint(kid, subject=f"rotated-{kid}")
    response = http.get(guarded + ACCOUNT, params={"id": "p-1004"}, headers=bearer(token))
    assert response.status_code == 200, response.text


def test_limits_count_per_verified_subject_and_per_aggregate(
    guarded: str, provider: IdentityProvider, http: httpx.Client
) -> None:
    greedy, other = (provider.mint("rsa-1", subject=f"s-{uuid.uuid4().hex[:6]}") for _ in "ab")
    statuses = [
        http.get(guarded + ACCOUNT, params={"id": "p-1005"}, headers=bearer(greedy)).status_code
        for _ in range(7)
    ]
    assert statuses == [200] * 5 + [429] * 2
    refused = http.get(guarded + ACCOUNT, params={"id": "p-1005"}, headers=bearer(greedy))
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"] == '"account_product-5-per-hour";q=5;w=3600'
    assert refused.headers["ratelimit"].startswith('"account_product-5-per-hour";r=0;t=')
    # Another caller has a budget of its own; the product page has no limit at all.
    assert http.get(guarded + ACCOUNT, params={"id": "p-1005"}, headers=bearer(other)).is_success
    assert http.get(guarded + PRODUCT, params={"id": "p-1005"}, headers=bearer(greedy)).is_success


def test_probes_and_the_schema_are_never_guarded(guarded: str, http: httpx.Client) -> None:
    broken = bearer("not-a-token")
    for path in ("/healthz", "/readyz", "/metrics", "/schema/openapi.json"):
        assert http.get(guarded + path, headers=broken).status_code == 200, path


def test_an_aggregate_that_needs_a_caller_cannot_start_without_identity() -> None:
    from bff_core import ConfigurationError

    from tests.services.guarded_bff import create_app

    with pytest.raises(ConfigurationError) as caught:
        create_app({})
    assert caught.value.setting == "BFF_JWT_JWKS_URL"
    assert "aggregate 'account_product' requires a verified identity" in str(caught.value)


def test_refusals_are_counted_by_reason(
    guarded: str, provider: IdentityProvider, http: httpx.Client
) -> None:
    def refusals() -> dict[str, float]:
        text = http.get(guarded + "/metrics").text
        return {
            line.split('reason="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("bff_edge_refusals_total{")
        }

    before = refusals()
    assert set(before) == {
        "invalid_token",
        "missing_token",
        "identity_unavailable",
        "rate_limited",
        "rate_limits_unavailable",
    }
    http.get(guarded + PRODUCT, params={"id": "p-1001"}, headers=bearer("x.y.z"))
    http.get(guarded + ACCOUNT, params={"id": "p-1001"})
    after = refusals()
    assert after["invalid_token"] == before["invalid_token"] + 1
    assert after["missing_token"] == before["missing_token"] + 1


def test_readiness_shows_the_key_set_and_the_schema_the_bearer_scheme(
    guarded: str, http: httpx.Client
) -> None:
    readiness = http.get(guarded + "/readyz").json()
    assert readiness["identity"].startswith("ok (") and "keys)" in readiness["identity"]
    schema = http.get(guarded + "/schema/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A token of the identity provider for this BFF's audience "
        "(BFF_JWT_AUDIENCE)",
    }
    assert schema["paths"][ACCOUNT]["get"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"][PRODUCT]["get"]
    assert {"401", "429", "503"} <= schema["paths"][PRODUCT]["get"]["responses"].keys()
