"""Rate limits, end to end: web-bff instances (served from the test process, over real HTTP)
sharing one real Redis, clients behind (and pretending to be behind) proxies, and Redis stopped
under them."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest

from tests.processes import RunningService, ServedApp, wait_for
from tests.redis_server import RedisServer
from tests.services.conftest import serve_bff

PRODUCT = "/api/aggregated/product"


@contextmanager
def limited_bffs(
    upstreams_url: str, redis_url: str | None, count: int, **extra: str
) -> Iterator[list[ServedApp]]:
    env = {
        "BFF_CACHE_NAMESPACE": f"limits-{uuid.uuid4().hex[:8]}",
        **({"REDIS_URL": redis_url} if redis_url else {}),
        **extra,
    }
    with ExitStack() as stack:
        yield [stack.enter_context(serve_bff(upstreams_url, **env)) for _ in range(count)]


@pytest.fixture
def two_sharing(upstreams_process: RunningService, redis_url: str) -> Iterator[list[str]]:
    # Per hour: a window boundary in the middle of the test is (nearly) impossible, so the
    # count is exact.
    with limited_bffs(upstreams_process.url, redis_url, 2, BFF_RATE_LIMIT="10/hour") as bffs:
        yield [b.url for b in bffs]


def test_two_instances_behind_one_redis_share_one_budget_exactly(
    two_sharing: list[str], http: httpx.Client
) -> None:
    statuses = [
        http.get(url + PRODUCT, params={"id": "p-1001"}).status_code
        for url in itertools.islice(itertools.cycle(two_sharing), 30)
    ]
    assert statuses.count(200) == 10, statuses
    assert statuses[:10] == [200] * 10 and set(statuses[10:]) == {429}
    for url in two_sharing:
        refused = http.get(url + PRODUCT, params={"id": "p-1001"})
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "urn:bff:problem:too-many-requests"
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        assert refused.headers["ratelimit-policy"] == '"10-per-hour";q=10;w=3600'
        assert refused.headers["ratelimit"] == (
            f'"10-per-hour";r=0;t={refused.headers["retry-after"]}'
        )
        assert refused.headers["cache-control"] == "no-store"
    # Probes are never limited.
    assert all(http.get(url + "/readyz").status_code == 200 for url in two_sharing)


@pytest.fixture
def behind_a_proxy(upstreams_process: RunningService) -> Iterator[tuple[str, str]]:
    """Two instances with 3/hour in memory: one trusting 127.0.0.1 as its proxy, one not."""
    with ExitStack() as stack:
        trusting = stack.enter_context(
            serve_bff(
                upstreams_process.url, BFF_RATE_LIMIT="3/hour", BFF_TRUSTED_PROXIES="127.0.0.1"
            )
        )
        untrusting = stack.enter_context(serve_bff(upstreams_process.url, BFF_RATE_LIMIT="3/hour"))
        yield trusting.url, untrusting.url


def status(http: httpx.Client, url: str, forwarded_for: str | None) -> int:
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    return http.get(url + PRODUCT, params={"id": "p-1001"}, headers=headers).status_code


def test_x_forwarded_for_cannot_be_spoofed_past_the_limit(
    behind_a_proxy: tuple[str, str], http: httpx.Client
) -> None:
    trusting, untrusting = behind_a_proxy
    # From an untrusted peer the header is ignored: every "address" is the peer's.
    assert [status(http, untrusting, f"198.51.100.{n}") for n in range(5)] == [200] * 3 + [429] * 2
    # Behind the trusted proxy, the address it appended is the client's...
    assert [status(http, trusting, "203.0.113.7") for _ in range(4)] == [200] * 3 + [429]
    # ...and what the client wrote to its left changes nothing.
    assert status(http, trusting, "198.51.100.1, 203.0.113.7") == 429
    assert status(http, trusting, "garbage, 203.0.113.7") == 429
    # Another client behind the proxy has its own budget.
    assert status(http, trusting, "203.0.113.8") == 200


@pytest.mark.parametrize(("mode", "while_down"), [("open", 200), ("closed", 503)])
def test_with_redis_stopped_limits_fail_open_or_closed_as_configured(
    upstreams_process: RunningService,
    redis_server: RedisServer,
    http: httpx.Client,
    mode: str,
    while_down: int,
) -> None:
    with limited_bffs(
        upstreams_process.url,
        redis_server.url,
        1,
        BFF_RATE_LIMIT="1000/hour",
        BFF_RATE_LIMIT_FAIL=mode,
        BFF_CACHE="off",
    ) as [bff]:
        assert status(http, bff.url, None) == 200
        redis_server.stop()
        answers = [http.get(bff.url + PRODUCT, params={"id": "p-1001"}) for _ in range(20)]
        assert {a.status_code for a in answers} == {while_down}
        if while_down == 503:
            assert answers[0].json()["type"] == "urn:bff:problem:rate-limits-unavailable"
            assert answers[0].headers["retry-after"] == "1"
        # Said once, not once per request.
        assert bff.log().count("rate limits cannot be checked") == 1
        redis_server.start()

        def checked_again() -> bool:
            return status(http, bff.url, None) == 200 and "checked again" in bff.log()

        assert wait_for(checked_again, timeout=10, step=0.2), bff.log()


def test_limits_count_in_a_redis_cluster_too(
    upstreams_process: RunningService, redis_cluster_url: str, http: httpx.Client
) -> None:
    with limited_bffs(upstreams_process.url, redis_cluster_url, 2, BFF_RATE_LIMIT="4/hour") as bffs:
        urls = itertools.islice(itertools.cycle([b.url for b in bffs]), 10)
        statuses = [http.get(url + PRODUCT, params={"id": "p-1001"}).status_code for url in urls]
        assert statuses == [200] * 4 + [429] * 6


def test_ipv6_clients_of_one_network_behind_the_proxy_share_a_budget(
    behind_a_proxy: tuple[str, str], http: httpx.Client
) -> None:
    trusting, _ = behind_a_proxy
    # Three addresses of one /64, written as proxies do (with a port, in brackets): one budget.
    hops = ["[2001:db8:1:2::1]:50000", "2001:db8:1:2::ab", "[2001:db8:1:2:ffff::1]:443"]
    assert [status(http, trusting, hop) for hop in hops] == [200] * 3
    assert status(http, trusting, "2001:db8:1:2::ffff") == 429
    # The next /64 is another subscriber.
    assert status(http, trusting, "2001:db8:1:3::1") == 200
    # An IPv4 client seen through an IPv4-mapped address is that IPv4 client.
    assert [status(http, trusting, "198.51.100.77:1234") for _ in range(3)] == [200] * 3
    assert status(http, trusting, "::ffff:198.51.100.77") == 429
