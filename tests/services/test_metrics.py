"""GET /metrics of a real BFF (served from the test process; a process of its own where it has
several workers): what the requests, parts, cache and upstreams did, in bounded series, added
up across worker processes."""

from __future__ import annotations

import random
import string
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import Served
from tests.services.conftest import Upstreams, run_bff, serve_bff

ROUTE = "/api/aggregated/product"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(service: Served, http: httpx.Client) -> Samples:
    response = http.get(service.url + "/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_parts_cache_and_upstreams_are_counted(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with serve_bff(
        upstreams.url, BFF_CACHE="on", BFF_BREAKER="on", BFF_RETRY_BUDGET_PERCENT="0"
    ) as web:
        upstreams.inject("reviews", status=503)
        for product_id in ("p-1001", "p-1002", "p-1001"):
            assert http.get(web.url + ROUTE, params={"id": product_id}).status_code == 200
        assert http.get(web.url + ROUTE, params={"id": "p-9999"}).status_code == 404
        assert http.get(web.url + ROUTE).status_code == 400
        assert http.get(web.url + "/no/such/route").status_code == 404
        samples = scrape(web, http)

    def requests(status: str) -> float:
        return value(
            samples,
            "bff_http_request_duration_seconds_count",
            route=ROUTE,
            method="GET",
            status=status,
        )

    assert (requests("200"), requests("404"), requests("400")) == (3, 1, 1)
    # Route templates only: never the path a client made up.
    assert not [key for key in samples if "/no/such/route" in str(key)]

    def parts(source: str, outcome: str) -> float:
        return value(
            samples,
            "bff_part_outcomes_total",
            aggregate="web_product_page",
            source=source,
            outcome=outcome,
        )

    assert parts("reviews", "upstream_status") == 3
    assert parts("reviews", "ok") == 0
    # p-1001 a second time: product, inventory and pricing from the cache (reviews failed).
    assert parts("product", "ok") == 3
    assert parts("product", "upstream_status") == 1  # p-9999: the product service's 404
    assert parts("inventory", "ok") == 3
    assert value(samples, "bff_cache_lookups_total", source="product", result="hit") == 1
    assert value(samples, "bff_cache_lookups_total", source="product", result="miss") == 3
    assert value(samples, "bff_cache_lookups_total", source="reviews", result="miss") == 3
    # Every answer had a failed part: none was cached whole.
    assert (
        value(
            samples, "bff_answer_cache_lookups_total", aggregate="web_product_page", result="miss"
        )
        == 4
    )
    assert value(samples, "bff_part_duration_seconds_count", source="product") == 4
    # Four sent; p-9999's was cut off by the critical 404, so it has no part outcome.
    assert value(samples, "bff_upstream_requests_total", service="reviews") == 4
    # 3 failures: fewer requests than the breaker's minimum (20)
    assert value(samples, "bff_upstream_breaker_state", service="reviews") == 0
    assert value(samples, "bff_upstream_breaker_state", service="product") == 0
    # Series exist before their first event, so a rate over them never misses it.
    assert (
        "bff_part_outcomes_total",
        frozenset(
            {"aggregate": "web_product_page", "source": "pricing", "outcome": "timeout"}.items()
        ),
    ) in samples


def test_breaker_state_retries_and_refusals(upstreams: Upstreams, http: httpx.Client) -> None:
    # Breakers that judge from 5 requests on (the shipped policy waits for 20).
    with serve_bff(upstreams.url, BFF_BREAKER="on", BFF_BREAKER_MIN_CALLS="5") as web:
        upstreams.inject("inventory", status=503)
        for n in range(6):
            http.get(web.url + ROUTE, params={"id": f"p-{1001 + n}"})
        samples = scrape(web, http)
    assert value(samples, "bff_upstream_breaker_state", service="inventory") == 2  # open
    assert value(samples, "bff_upstream_retries_total", service="inventory") >= 1
    assert value(samples, "bff_upstream_refused_total", service="inventory") >= 1
    outcome = value(
        samples,
        "bff_part_outcomes_total",
        aggregate="web_product_page",
        source="inventory",
        outcome="circuit_open",
    )
    assert outcome >= 1


def series(samples: Samples) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return set(samples)


def test_a_thousand_distinct_ids_add_no_series(upstreams: Upstreams, http: httpx.Client) -> None:
    with serve_bff(upstreams.url, "mobile_bff", BFF_CACHE="on") as mobile:
        # Every kind of answer once: known ids, unknown ones (404), a bad one (400).
        for product_id in ("p-1001", "p-1004", "nope"):
            http.get(mobile.url + ROUTE, params={"id": product_id})
        http.get(mobile.url + ROUTE, params={"id": "x" * 200})
        scrape(mobile, http)  # the scrape's own series
        before = series(scrape(mobile, http))
        ids = [f"p-{1001 + n % 12}" if n % 2 else f"unknown-{n}" for n in range(1000)]
        with ThreadPoolExecutor(8) as pool:  # eight at a time: the suite's time, not the point
            list(pool.map(lambda i: http.get(mobile.url + ROUTE, params={"id": i}), ids))
        after = scrape(mobile, http)
    assert series(after) == before
    assert (
        value(
            after,
            "bff_http_request_duration_seconds_count",
            route=ROUTE,
            method="GET",
            status="404",
        )
        >= 500
    )
    assert not [key for key in after if "unknown-" in str(key) or "p-10" in str(key)]


@pytest.mark.process
def test_with_several_workers_every_scrape_adds_up_all_of_them(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with run_bff(upstreams.url, "web_bff", "--workers", "2") as web:
        # New connections (eight at a time), so both workers take some.
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda n: httpx.get(web.url + ROUTE, params={"id": f"p-{1001 + n % 12}"}),
                    range(200),
                )
            )
        assert all(answer.is_success for answer in answers)
        # Each worker writes its totals every second: give the other one that long.
        time.sleep(1.5)
        counts = set()
        for _ in range(10):
            samples = httpx.get(web.url + "/metrics").text
            parsed = {
                (s.name, frozenset(s.labels.items())): s.value
                for f in text_string_to_metric_families(samples)
                for s in f.samples
            }
            counts.add(
                value(
                    parsed,
                    "bff_http_request_duration_seconds_count",
                    route=ROUTE,
                    method="GET",
                    status="200",
                )
            )
            counts.add(
                value(
                    parsed,
                    "bff_part_outcomes_total",
                    aggregate="web_product_page",
                    source="product",
                    outcome="ok",
                )
            )
    assert counts == {200.0}


def test_metrics_can_be_turned_off(upstreams: Upstreams, http: httpx.Client) -> None:
    with serve_bff(upstreams.url, BFF_METRICS="off") as web:
        assert http.get(web.url + ROUTE, params={"id": "p-1001"}).status_code == 200
        assert http.get(web.url + "/metrics").status_code == 404


def _invented(n: int) -> list[str]:
    """``n`` methods no server knows (httpx sends a method in upper case)."""
    rng = random.Random(n)
    return ["".join(rng.choices(string.ascii_uppercase, k=8)) for _ in range(n)]


def _requests(web: Served, http: httpx.Client, methods: list[str]) -> set[int]:
    """Every kind of request a client controls: invented methods on every kind of route,
    invented paths under every prefix, with both; the statuses they got."""
    statuses = set()
    for n, method in enumerate(methods):
        for path in (
            f"{ROUTE}?id=p-1001",
            "/healthz",
            "/metrics",
            f"/no/such/route-{n}",
            f"/api/aggregated/made-up-{n}",
            f"/admin/made-up-{n}",
            f"/schema/made-up-{n}",
        ):
            statuses.add(http.request(method, web.url + path).status_code)
        statuses.add(http.get(f"{web.url}/made-up-{n}/{method}").status_code)
    return statuses


# A real process: what an invented method gets (a 405 from the router, not a 400 from the
# HTTP server) is granian's and the app's together, as a client meets them.
@pytest.mark.process
@pytest.mark.parametrize("limits", ["", "2/minute"], ids=["no-limits", "limits"])
def test_invented_methods_and_paths_add_no_series(
    upstreams: Upstreams, http: httpx.Client, limits: str
) -> None:
    with run_bff(upstreams.url, BFF_RATE_LIMIT=limits) as web:
        # The first of each kind may add its series (route "unmatched", method OTHER, 405,
        # 429), and the scrape its own; none after that.
        _requests(web, http, _invented(3))
        scrape(web, http)
        before = scrape(web, http)
        statuses = _requests(web, http, _invented(200))
        after = scrape(web, http)
    assert series(after) == series(before)
    assert {404, 405} <= statuses
    if limits:
        assert 429 in statuses
    methods = {dict(labels)["method"] for _, labels in after if "method" in dict(labels)}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
    routes = {dict(labels)["route"] for _, labels in after if "route" in dict(labels)}
    assert not [route for route in routes if "made-up" in route or "no/such" in route]
    assert "unmatched" in routes
    # Counted, under their bounded labels.
    counted = value(
        after,
        "bff_http_request_duration_seconds_count",
        route="unmatched",
        method="GET",
        status="404",
    )
    assert counted >= 200
