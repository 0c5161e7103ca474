"""Several instances of each BFF behind a real HAProxy share one cache and their breakers,
with a single Redis and with a Redis Cluster."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from tests.fleet.fleet import ADMIN_TOKEN, Fleet, Load, check_answer
from tests.processes import wait_for

# Serial, and one worker for every fleet under xdist alone (see test_redis_outage.py).
pytestmark = [
    pytest.mark.fleet,
    pytest.mark.serial,
    pytest.mark.xdist_group("fleet"),
    pytest.mark.parametrize("fleet", ["redis", "redis-cluster"], indirect=True),
]

ROUTE = "/api/aggregated/product"


def product_requests(fleet: Fleet, product_id: str) -> int:
    requests = fleet.request_log()["product"]["requests"]
    return sum(1 for request in requests if request["path"] == f"/products/{product_id}")


def test_every_answer_through_the_balancer_is_correct_with_faults_injected(
    fleet: Fleet,
) -> None:
    fleet.inject("reviews", status=503, rate=0.3)
    fleet.inject("pricing", latency_ms=150, rate=0.2)
    before = {backend: fleet.balancer.sessions(backend) for backend in ("web-bff", "mobile-bff")}
    with Load(fleet, threads=6, max_requests=600, max_seconds=20) as load:
        assert wait_for(lambda: load.count() >= 600, timeout=25)
    assert load.failures() == [], load.summary()
    # Round robin: every instance took its share.
    for backend, sessions in before.items():
        for address, served in fleet.balancer.sessions(backend).items():
            assert served - sessions[address] >= 50, (backend, address, served)
    reasons = {
        error["reason"]
        for instance in fleet.web
        for error in [httpx.get(instance.url + ROUTE, params={"id": "p-1001"}).json()].pop().get(
            "errors", []
        )
    }
    assert reasons <= {"upstream_status", "circuit_open"}


def test_a_cold_product_costs_the_product_service_at_most_one_request_per_instance(
    fleet: Fleet,
) -> None:
    for frontend, instances, bffs in (
        (fleet.balancer.web_url, 3, fleet.web),
        (fleet.balancer.mobile_url, 2, fleet.mobile),
    ):
        # The admin API is on the instances' operations port (one of them tells the others).
        dropped = fleet.http.post(
            f"{bffs[0].ops_url}/admin/cache/invalidate?id=p-1007",
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert dropped.status_code == 200, dropped.text
        fleet.reset_request_log()

        def get(_: int, frontend: str = frontend) -> str | None:
            with httpx.Client(timeout=10) as client:
                response = client.get(frontend + ROUTE, params={"id": "p-1007"})
            return check_answer("fleet", "p-1007", response)

        # A burst of 30 at once, spread by the balancer over every instance.
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            problems = [p for p in pool.map(get, range(30)) if p is not None]
        assert problems == []
        assert 1 <= product_requests(fleet, "p-1007") <= instances


def test_the_balancer_never_passes_on_the_operations_endpoints(fleet: Fleet) -> None:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    for frontend in (fleet.balancer.web_url, fleet.balancer.mobile_url):
        for _ in range(3):  # whichever instance would take it
            assert fleet.http.get(frontend + "/metrics").status_code == 404
            assert fleet.http.get(frontend + "/%6detrics").status_code == 404
            refused = fleet.http.post(
                frontend + "/admin/cache/invalidate", params={"id": "p-1001"}, headers=admin
            )
            assert refused.status_code == 404
            assert fleet.http.get(frontend + "/readyz").status_code == 200
    for instance in fleet.instances:
        # Each instance: 404 on its serving port, answered on its operations port.
        assert httpx.get(instance.url + "/metrics").status_code == 404
        assert httpx.get(instance.ops_url + "/metrics").status_code == 200


def test_an_invalidation_on_one_instance_reaches_every_instance(fleet: Fleet) -> None:
    for instance in fleet.web:
        for product_id in ("p-1003", "p-1004"):
            assert httpx.get(instance.url + ROUTE, params={"id": product_id}).status_code == 200
    fleet.reset_request_log()
    response = fleet.http.post(
        f"{fleet.web[-1].ops_url}/admin/cache/invalidate?id=p-1003",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["instances_told"] == len(fleet.web)
    # The product service is down now. Every instance still holds p-1004 in its near cache,
    # and none may hold p-1003 any more: each asks the upstream and fails (502), as it would
    # if the broadcast had missed it only by serving a copy it was told to drop.
    fleet.inject("product", status=503)
    for instance in fleet.web:
        kept = httpx.get(instance.url + ROUTE, params={"id": "p-1004"})
        assert kept.status_code == 200, (instance.name, kept.text)
        dropped = httpx.get(instance.url + ROUTE, params={"id": "p-1003"})
        assert dropped.status_code == 502, (instance.name, dropped.text)
    assert product_requests(fleet, "p-1003") >= len(fleet.web)
    assert product_requests(fleet, "p-1004") == 0


def test_a_breaker_opened_through_one_instance_stops_the_calls_of_all_of_them(
    fleet: Fleet,
) -> None:
    first, *others = fleet.web
    fleet.inject("inventory", status=503)
    # The shipped breakers judge from 20 requests in 10 s on (decision record 0015).
    for n in range(40):
        httpx.get(first.url + ROUTE, params={"id": f"p-{1001 + n % 10}"})
        if first.readyz()["upstreams"]["inventory"]["breaker"] == "open":
            break
    opened = time.monotonic()
    assert first.readyz()["upstreams"]["inventory"]["breaker"] == "open"
    assert wait_for(
        lambda: all(o.readyz()["upstreams"]["inventory"]["breaker"] == "open" for o in others),
        timeout=1.0,
        step=0.02,
    ), [o.readyz()["upstreams"]["inventory"] for o in others]
    assert time.monotonic() - opened < 1.0
    fleet.reset_request_log()
    for n in range(12):
        answer = fleet.http.get(fleet.balancer.web_url + ROUTE, params={"id": f"p-{1001 + n}"})
        assert answer.status_code == 200
        # Served from the cache where a copy is still fresh (or stale-if-error), else refused
        # by the open breaker; never asked of the failing service.
        reasons = {e["reason"] for e in answer.json().get("errors", [])}
        assert reasons <= {"circuit_open"}, answer.json()["errors"]
    assert fleet.request_log()["inventory"]["count"] == 0
