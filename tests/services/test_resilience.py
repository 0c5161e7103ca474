"""Circuit breakers, retries, hedges and deadlines, end to end: real BFFs (served from the test
process, over real HTTP), the real demo upstreams with injected faults (and their request log
to see what really reached them), and a real Redis through which breaker state is shared
between instances."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from tests.processes import Served

from .conftest import SERVICES, Upstreams, serve_bff

# Serial in ./run tests: deadlines of 300 ms, "at once" within 250 ms and hedges after 100 ms
# are measured here, which three other xdist workers on two cores can stretch.
pytestmark = pytest.mark.serial

ROUTE = "/api/aggregated/product"
CIRCUIT_OPEN = "circuit_open"


def get(service: Served, http: httpx.Client, query: str = "id=p-1001") -> httpx.Response:
    return http.get(f"{service.url}{ROUTE}?{query}")


def readyz(service: Served, http: httpx.Client) -> dict[str, Any]:
    response = http.get(f"{service.url}/readyz")
    # An open breaker never makes the instance unready: it serves what it can without it.
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "ready"
    return body


def upstream(service: Served, http: httpx.Client, name: str) -> dict[str, Any]:
    """What ``/readyz`` says of one upstream: breaker state and counters."""
    status: dict[str, Any] = readyz(service, http)["upstreams"][name]
    return status


def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def request_log(upstreams: Upstreams) -> dict[str, Any]:
    """The upstreams' whole request log: per service count, requests, abandoned, gave_up."""
    log: dict[str, Any] = upstreams.get("/admin/requests")
    return log


def reset_log(upstreams: Upstreams) -> None:
    upstreams.client.delete(f"{upstreams.url}/admin/requests").raise_for_status()


def clear_fault(upstreams: Upstreams, service: str) -> None:
    upstreams.client.delete(f"{upstreams.url}/admin/faults/{service}").raise_for_status()


def sharing(service: Served, http: httpx.Client) -> bool:
    """Whether the instance is subscribed to its peers' breaker transitions."""
    described: str = readyz(service, http)["breaker_sharing"]
    return described.startswith("shared through redis")


def wait_until_trial_allowed(service: Served, http: httpx.Client, name: str) -> None:
    """Until the open breaker's reset timeout has passed (``opens_for`` reaches 0)."""
    assert wait_for(lambda: upstream(service, http, name)["opens_for"] == 0, timeout=5)


#: Breakers that judge from 5 requests on (the shipped policy waits for 20 in 10 s): every
#: test here that opens one sends few requests, each one upstream request (retries off).
FEW = {"BFF_BREAKER_MIN_CALLS": "5"}


def trip(service: Served, http: httpx.Client, name: str, ids: list[str]) -> None:
    """One request per product id, each failing ``name``; its breaker is open afterwards."""
    for product_id in ids:
        get(service, http, f"id={product_id}")
    assert upstream(service, http, name)["breaker"] == "open"


def test_404s_never_open_a_breaker_and_half_the_requests_failing_do(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    # No retries: every request is exactly one upstream request, one breaker count.
    with serve_bff(upstreams.url, BFF_BREAKER="on", BFF_RETRY_BUDGET_PERCENT="0", **FEW) as web:
        # 404s are answers ("no such thing"), not failures: the breaker stays closed.
        upstreams.inject("inventory", status=404)
        for _ in range(8):
            body = get(web, http).json()
            assert body["errors"] == [
                {"source": "inventory", "reason": "upstream_status", "status": 404}
            ]
        state = upstream(web, http, "inventory")
        assert (state["breaker"], state["failures"], state["calls"]) == ("closed", 0, 8)
        assert upstreams.counts()["inventory"] == 8

        # 503s: it opens when they are half the window's requests (8 of 16).
        upstreams.inject("inventory", status=503)
        for expected_failures in range(1, 8):
            response = get(web, http)
            assert response.json()["errors"] == [
                {"source": "inventory", "reason": "upstream_status", "status": 503}
            ]
            state = upstream(web, http, "inventory")
            assert (state["breaker"], state["failures"]) == ("closed", expected_failures)
            assert state["failure_rate"] == round(expected_failures / (8 + expected_failures), 3)
        assert "circuit breaker of upstream inventory opened" not in web.log()
        get(web, http)  # the eighth 503: 8 of 16
        state = upstream(web, http, "inventory")
        assert state["breaker"] == "open"
        assert 0 < state["opens_for"] <= 10
        assert "circuit breaker of upstream inventory opened" in web.log()
        assert "8 of its last 16 requests (in 10 s) failed" in web.log()

        # Open: inventory is left alone, the page is served without it, fast.
        reset_log(upstreams)
        for _ in range(5):
            started = time.monotonic()
            response = get(web, http)
            assert time.monotonic() - started < 0.5
            assert response.status_code == 200
            body = response.json()
            assert body["inventory"] is None
            assert body["errors"] == [{"source": "inventory", "reason": CIRCUIT_OPEN}]
            assert body["product"]["id"] == "p-1001"
            assert body["pricing"] is not None
            assert body["reviews"] is not None
        assert upstreams.counts() == {**dict.fromkeys(SERVICES, 5), "inventory": 0}
        ready = readyz(web, http)
        assert ready["upstreams"]["inventory"]["breaker"] == "open"
        assert ready["upstreams"]["inventory"]["refused"] == 5
        for other in ("product", "pricing", "reviews"):
            assert ready["upstreams"][other]["breaker"] == "closed"
            assert ready["upstreams"][other]["refused"] == 0
        assert ready["breaker_sharing"].startswith("this instance only")


def test_dropped_connections_and_timeouts_count_as_failures_too(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    env = {"BFF_BREAKER": "on", "BFF_RETRY_BUDGET_PERCENT": "0", "BFF_TIMEOUT_MS": "300", **FEW}
    with serve_bff(upstreams.url, **env) as web:
        upstreams.inject("reviews", drop=True)
        for _ in range(3):
            errors = get(web, http).json()["errors"]
            assert errors == [{"source": "reviews", "reason": "unavailable"}]
        upstreams.inject("reviews", latency_ms=2000)
        for _ in range(2):
            errors = get(web, http).json()["errors"]
            assert errors == [{"source": "reviews", "reason": "timeout"}]
        state = upstream(web, http, "reviews")
        assert state["breaker"] == "open"  # 5 of 5 failed
        reset_log(upstreams)
        started = time.monotonic()
        assert get(web, http).json()["errors"] == [{"source": "reviews", "reason": CIRCUIT_OPEN}]
        assert time.monotonic() - started < 0.25  # no longer waits for the deadline
        assert upstreams.counts()["reviews"] == 0


def test_a_half_open_breaker_lets_one_trial_through_which_decides(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    env = {"BFF_BREAKER": "on", "BFF_RETRY_BUDGET_PERCENT": "0", "BFF_BREAKER_RESET_MS": "500"}
    env.update(FEW)
    with serve_bff(upstreams.url, **env) as web:
        upstreams.inject("inventory", status=503)
        trip(web, http, "inventory", ["p-1001"] * 5)

        # A failed trial: one request reaches the upstream, and the breaker opens again.
        wait_until_trial_allowed(web, http, "inventory")
        reset_log(upstreams)
        body = get(web, http).json()
        assert body["errors"] == [
            {"source": "inventory", "reason": "upstream_status", "status": 503}
        ]
        state = upstream(web, http, "inventory")
        assert state["breaker"] == "open"
        assert state["opens_for"] > 0
        assert get(web, http).json()["errors"] == [{"source": "inventory", "reason": CIRCUIT_OPEN}]
        assert upstreams.counts()["inventory"] == 1
        assert web.log().count("circuit breaker of upstream inventory opened") == 2

        # A successful trial. While it runs (the upstream is slow, not failing), concurrent
        # requests are still refused: exactly one request reaches the upstream.
        upstreams.inject("inventory", latency_ms=300)
        wait_until_trial_allowed(web, http, "inventory")
        reset_log(upstreams)
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda _: get(web, http).json(), range(6)))
        assert upstreams.counts()["inventory"] == 1
        served = [a for a in answers if "errors" not in a]
        refused = [a for a in answers if a.get("errors")]
        assert len(served) == 1
        assert served[0]["inventory"]["product_id"] == "p-1001"
        assert all(
            a["errors"] == [{"source": "inventory", "reason": CIRCUIT_OPEN}] for a in refused
        )
        # The trial's success closed the breaker: requests reach the upstream again.
        state = upstream(web, http, "inventory")
        assert (state["breaker"], state["failures"]) == ("closed", 0)
        clear_fault(upstreams, "inventory")
        assert "errors" not in get(web, http).json()
        assert upstreams.counts()["inventory"] == 2
        log = web.log()
        assert "circuit breaker of upstream inventory half-open" in log
        assert "circuit breaker of upstream inventory closed" in log


def test_an_open_breaker_of_the_critical_part_answers_502_at_once(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    # Retries and hedges off (a budget of 0): every request is one upstream request.
    env = {"BFF_BREAKER": "on", "BFF_RETRY_BUDGET_PERCENT": "0", **FEW}
    with serve_bff(upstreams.url, "mobile_bff", **env) as mobile:
        upstreams.inject("product", status=503)
        for _ in range(5):
            failed = get(mobile, http)
            assert failed.status_code == 502
            assert {"source": "product", "reason": "upstream_status", "status": 503} in (
                failed.json()["errors"]
            )
        assert upstreams.counts()["product"] == 5
        assert upstream(mobile, http, "product")["breaker"] == "open"

        reset_log(upstreams)
        for _ in range(3):
            started = time.monotonic()
            response = get(mobile, http)
            elapsed = time.monotonic() - started
            assert response.status_code == 502
            assert response.headers["content-type"].startswith("application/problem+json")
            problem = response.json()
            assert problem["status"] == 502
            assert problem["type"] == "urn:bff:problem:upstream-failed"
            assert "circuit open" in problem["detail"]
            assert {"source": "product", "reason": CIRCUIT_OPEN} in problem["errors"]
            # Well below even the upstreams' usual latency: nothing was waited for.
            assert elapsed < 0.25, elapsed
        assert upstreams.counts()["product"] == 0
        assert upstream(mobile, http, "product")["refused"] == 3


@pytest.mark.parametrize("redis", ["redis", "redis-cluster"])
def test_breakers_are_shared_through_redis_by_the_instances_of_one_namespace(
    upstreams: Upstreams,
    http: httpx.Client,
    redis_namespace: str,
    request: pytest.FixtureRequest,
    redis: str,
) -> None:
    redis_url: str = request.getfixturevalue(
        "redis_cluster_url" if redis == "redis-cluster" else "redis_url"
    )
    shared = {
        "BFF_BREAKER": "on",
        "BFF_RETRY_BUDGET_PERCENT": "0",
        "BFF_BREAKER_RESET_MS": "2000",
        "REDIS_URL": redis_url,
        **FEW,
    }
    with ExitStack() as stack:
        first, second, other = (
            stack.enter_context(serve_bff(upstreams.url, **shared, BFF_CACHE_NAMESPACE=namespace))
            for namespace in (redis_namespace, redis_namespace, redis_namespace + "-other")
        )
        for service in (first, second, other):
            assert wait_for(lambda s=service: sharing(s, http), timeout=5)  # type: ignore[misc]
        upstreams.inject("inventory", status=503)
        trip(first, http, "inventory", ["p-1001"] * 5)
        tripped = time.monotonic()
        reset_log(upstreams)

        # The second instance, which never saw a failure, learns it within a second...
        assert wait_for(
            lambda: upstream(second, http, "inventory")["breaker"] == "open", timeout=1.0
        )
        assert time.monotonic() - tripped < 1.0
        # ... and leaves the upstream alone, while still calling the others.
        body = get(second, http).json()
        assert body["errors"] == [{"source": "inventory", "reason": CIRCUIT_OPEN}]
        assert upstreams.counts() == {**dict.fromkeys(SERVICES, 1), "inventory": 0}
        ready = readyz(second, http)
        assert (
            ready["breaker_sharing"] == "shared through redis; transitions received from peers: 1"
        )
        assert ready["upstreams"]["inventory"]["breaker"] == "open"
        assert ready["upstreams"]["inventory"]["refused"] == 1
        assert (
            "circuit breaker of upstream inventory opened (as a peer instance said)" in second.log()
        )

        # Another deployment (namespace) is not affected: it still calls inventory itself.
        assert get(other, http).json()["errors"] == [
            {"source": "inventory", "reason": "upstream_status", "status": 503}
        ]
        assert upstreams.counts()["inventory"] == 1
        assert upstream(other, http, "inventory")["breaker"] == "closed"

        # Recovery: the first instance's trial succeeds, and the second closes with it.
        clear_fault(upstreams, "inventory")
        wait_until_trial_allowed(first, http, "inventory")
        assert "errors" not in get(first, http).json()
        closed = time.monotonic()
        assert upstream(first, http, "inventory")["breaker"] == "closed"
        assert wait_for(
            lambda: upstream(second, http, "inventory")["breaker"] == "closed", timeout=1.0
        )
        assert time.monotonic() - closed < 1.0
        assert "circuit breaker of upstream inventory closed (as a peer instance said)" in (
            second.log()
        )
        reset_log(upstreams)
        assert "errors" not in get(second, http).json()
        assert upstreams.counts()["inventory"] == 1
        assert "as a peer instance said" not in other.log()


def test_a_retry_heals_a_single_503(upstreams: Upstreams, http: httpx.Client) -> None:
    with serve_bff(upstreams.url) as web:
        upstreams.inject("pricing", status=503, count=1)
        response = get(web, http)
        assert response.status_code == 200
        body = response.json()
        assert "errors" not in body
        assert body["pricing"]["product_id"] == "p-1001"
        assert upstreams.counts() == {**dict.fromkeys(SERVICES, 1), "pricing": 2}
        assert upstream(web, http, "pricing")["retries"] == 1


def test_the_retry_budget_bounds_the_extra_requests_to_a_failing_upstream(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    requests = 100
    with serve_bff(upstreams.url) as web:  # breakers off: nothing but the budget limits the retries
        upstreams.inject("pricing", status=503)
        for _ in range(requests):
            body = get(web, http, "id=p-1001&fields=pricing").json()
            assert body["errors"] == [
                {"source": "pricing", "reason": "upstream_status", "status": 503}
            ]
        sent = upstreams.counts()["pricing"]
        # Ten tokens at start, a tenth of a token per request since.
        assert requests + 10 <= sent <= requests + 10 + requests // 10 + 1
        state = upstream(web, http, "pricing")
        assert state["requests"] == requests
        assert state["retries"] == sent - requests
        # Every first attempt failed: each was either retried or refused a retry.
        assert state["over_budget"] == requests - state["retries"] > 0
        assert state["budget"] < 1
        # The periodic summary (at most one every 10 s per upstream): the first one.
        assert re.search(r"upstream pricing,? since start-up: .*retries", web.log())
        assert upstreams.counts()["product"] == 0  # not asked for


def test_retries_stay_within_the_deadline(upstreams: Upstreams, http: httpx.Client) -> None:
    requests = 4
    with serve_bff(upstreams.url, BFF_TIMEOUT_MS="300") as web:
        assert "errors" not in get(web, http).json()  # connections made, the BFF warmed up
        reset_log(upstreams)
        # A 503 after ~270 ms of a 300 ms deadline: a retry needs as long as the failed
        # attempt took, and only ~30 ms are left. None is sent; the client sees the 503.
        upstreams.inject("pricing", latency_ms=270, status=503)
        for _ in range(requests):
            started = time.monotonic()
            body = get(web, http, "id=p-1001&fields=pricing").json()
            assert time.monotonic() - started < 0.3 + 0.25
            assert body["errors"] == [
                {"source": "pricing", "reason": "upstream_status", "status": 503}
            ]
        assert upstream(web, http, "pricing")["retries"] == 0
        assert wait_for(lambda: upstreams.counts()["pricing"] == requests)
        # A quick 503 leaves time: it is retried once, and the retry is told the time left.
        reset_log(upstreams)
        upstreams.inject("pricing", status=503)
        body = get(web, http, "id=p-1001&fields=pricing").json()
        assert body["errors"] == [{"source": "pricing", "reason": "upstream_status", "status": 503}]
        assert upstream(web, http, "pricing")["retries"] == 1
        first, retry = (
            int(r["headers"]["x-request-timeout-ms"]) for r in upstreams.requests("pricing")
        )
        assert 0 < retry < first <= 300


@pytest.mark.parametrize("client", ["aiohttp", "pyreqwest"])
def test_a_slow_product_answer_is_hedged_and_the_loser_cancelled(
    upstreams: Upstreams, http: httpx.Client, client: str
) -> None:
    with serve_bff(upstreams.url, BFF_HTTP_CLIENT=client) as web:
        # In time: no hedge.
        assert "errors" not in get(web, http).json()
        assert upstreams.counts()["product"] == 1
        assert upstream(web, http, "product")["hedges"] == 0

        reset_log(upstreams)
        upstreams.inject("product", latency_ms=2000, count=1)
        started = time.monotonic()
        response = get(web, http)
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert response.json()["product"]["id"] == "p-1001"
        assert "errors" not in response.json()
        assert elapsed < 0.6, elapsed  # the hedge (sent after 100 ms) answered
        assert upstreams.counts()["product"] == 2
        state = upstream(web, http, "product")
        assert (state["hedges"], state["hedges_won"]) == (1, 1)

        def log() -> dict[str, Any]:
            product: dict[str, Any] = request_log(upstreams)["product"]
            return product

        if client == "aiohttp":
            # The slow first request was cancelled: the upstream sees its client go at once.
            assert wait_for(lambda: log()["abandoned"] == 1, timeout=0.5)
        else:
            # pyreqwest cannot abort it (decision 0002): it goes on until the deadline, which
            # the upstream was told in x-request-timeout-ms, so it stops working then.
            assert log()["abandoned"] == log()["gave_up"] == 0
            assert wait_for(lambda: log()["gave_up"] == 1, timeout=1.5)


def test_upstreams_are_told_the_time_left_and_give_up_when_it_ends(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with serve_bff(upstreams.url, BFF_TIMEOUT_MS="300") as web:
        assert "errors" not in get(web, http).json()
        for service in SERVICES:
            [sent] = upstreams.requests(service)
            assert 1 <= int(sent["headers"]["x-request-timeout-ms"]) <= 300

        reset_log(upstreams)
        upstreams.inject("inventory", latency_ms=2000)
        started = time.monotonic()
        body = get(web, http).json()
        assert time.monotonic() - started < 0.3 + 0.25
        assert body["errors"] == [{"source": "inventory", "reason": "timeout"}]
        assert body["product"]["id"] == "p-1001"
        # The upstream stopped working when the BFF stopped waiting, not 2 s later.
        assert wait_for(lambda: request_log(upstreams)["inventory"]["gave_up"] == 1, timeout=1.5)
        assert request_log(upstreams)["inventory"]["count"] == 1


def test_an_open_breaker_falls_back_on_a_stale_cached_part(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    env = {"BFF_CACHE": "on", "BFF_BREAKER": "on", "BFF_RETRY_BUDGET_PERCENT": "0", **FEW}
    with serve_bff(upstreams.url, **env) as web:
        upstreams.inject(
            "inventory", cache_control="max-age=1, stale-while-revalidate=0, stale-if-error=60"
        )
        fresh = get(web, http).json()
        cached = time.monotonic()
        assert "errors" not in fresh
        # The breaker is per service: five other products (failures are not cached) open it.
        upstreams.inject("inventory", status=503)
        trip(web, http, "inventory", [f"p-100{n}" for n in range(2, 7)])
        time.sleep(max(0.0, cached + 1.2 - time.monotonic()))  # p-1001's inventory is stale

        reset_log(upstreams)
        body = get(web, http).json()
        assert body["inventory"] == fresh["inventory"]
        assert "errors" not in body
        [stale] = body["stale"]
        assert stale["source"] == "inventory"
        assert 1.0 <= stale["age"] < 10
        assert upstreams.counts()["inventory"] == 0
        assert upstream(web, http, "inventory")["refused"] >= 1
