"""CORS of a real BFF (served from the test process; start-up checks on a real process):
explicit origins, preflights, Vary: Origin on every answer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.processes import Served
from tests.services.conftest import Upstreams, bff_env, serve_bff

ROUTE = "/api/aggregated/product?id=p-1001"
SHOP = "https://shop.example"


@pytest.fixture
def web(upstreams: Upstreams) -> Iterator[Served]:
    with serve_bff(upstreams.url, BFF_CORS_ORIGINS=f"{SHOP}, http://localhost:5173") as service:
        yield service


def test_an_allowed_origin_may_read_the_answer_and_its_headers(
    web: Served, http: httpx.Client
) -> None:
    answer = http.get(web.url + ROUTE, headers={"origin": SHOP})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert "access-control-allow-credentials" not in answer.headers
    exposed = answer.headers["access-control-expose-headers"]
    assert {"etag", "server-timing", "x-request-id", "www-authenticate", "retry-after"} <= {
        h.strip() for h in exposed.split(",")
    }
    # Both reasons the answer varies, kept side by side.
    assert {v.strip() for v in ",".join(answer.headers.get_list("vary")).split(",")} >= {
        "Accept",
        "Origin",
    }


def test_another_origin_gets_no_permission_and_every_answer_varies_by_origin(
    web: Served, http: httpx.Client
) -> None:
    for headers in ({"origin": "https://evil.example"}, {}):
        answer = http.get(web.url + ROUTE, headers=headers)
        assert answer.status_code == 200  # CORS is the browser's guard, not an authorisation
        assert "access-control-allow-origin" not in answer.headers
        assert "Origin" in ",".join(answer.headers.get_list("vary"))


def test_a_preflight_is_answered_for_an_allowed_origin_and_refused_with_a_problem_otherwise(
    web: Served, http: httpx.Client
) -> None:
    allowed = http.options(
        web.url + ROUTE,
        headers={
            "origin": "http://localhost:5173",
            "access-control-request-method": "GET",
            "access-control-request-headers": "If-None-Match, Authorization, X-Request-ID",
        },
    )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    # The writes (PUT/POST, issue 24) are allowed too.
    assert allowed.headers["access-control-allow-methods"] == "GET, HEAD, PUT, POST"
    assert allowed.headers["access-control-allow-headers"] == (
        "if-none-match, authorization, x-request-id"
    )
    assert int(allowed.headers["access-control-max-age"]) > 0
    assert "Origin" in allowed.headers["vary"]
    for origin, method, asked, named in (
        ("https://evil.example", "GET", "", "origin 'https://evil.example'"),
        (SHOP, "DELETE", "", "method 'DELETE'"),
        (SHOP, "GET", "X-Evil", "header(s) x-evil"),
    ):
        headers = {"origin": origin, "access-control-request-method": method}
        if asked:
            headers["access-control-request-headers"] = asked
        refused = http.options(web.url + ROUTE, headers=headers)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert named in refused.json()["detail"]
        assert "access-control-allow-origin" not in refused.headers


def test_credentials_only_when_configured(upstreams: Upstreams, http: httpx.Client) -> None:
    with serve_bff(upstreams.url, BFF_CORS_ORIGINS=SHOP, BFF_CORS_CREDENTIALS="on") as web:
        answer = http.get(web.url + ROUTE, headers={"origin": SHOP})
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert answer.headers["access-control-allow-origin"] == SHOP  # never "*"


def test_no_cors_headers_at_all_without_the_setting(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with serve_bff(upstreams.url) as web:
        answer = http.get(web.url + ROUTE, headers={"origin": SHOP})
        assert "access-control-allow-origin" not in answer.headers


@pytest.mark.process
@pytest.mark.parametrize(
    "origins", ["*", "https://*.example", "https://shop.example/path", "shop.example", "ftp://x"]
)
def test_anything_but_explicit_origins_stops_start_up(upstreams: Upstreams, origins: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "web_bff", "--port", "0"],
        env={**bff_env(upstreams.url), "BFF_CORS_ORIGINS": origins, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "BFF_CORS_ORIGINS" in done.stderr
