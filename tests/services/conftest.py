"""The real programs on free loopback ports.

One demo-upstreams and one of each BFF (default configuration, pointed at the upstreams), each
in its own process, are shared by the whole session (by each xdist worker); every test starts
with no fault injected and an empty request log. A test that needs a BFF of its own gets one
with :func:`serve_bff` (served from this process: for what the app does) or :func:`run_bff` (a
process of its own: for what the process does, its signals, workers, exit status and output).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from bff_core._redis import connect, parse_redis_url

from tests.processes import RunningService, ServedApp, run_service, serve_asgi

SERVICES = ("product", "inventory", "pricing", "reviews")
URL_VARIABLES = {
    "product": "PRODUCT_SERVICE_URL",
    "inventory": "INVENTORY_SERVICE_URL",
    "pricing": "PRICING_SERVICE_URL",
    "reviews": "REVIEWS_SERVICE_URL",
    "category": "CATEGORY_SERVICE_URL",
    "recommendations": "RECOMMENDATIONS_SERVICE_URL",
    "cart": "CART_SERVICE_URL",
    "orders": "ORDERS_SERVICE_URL",
}


@dataclass
class Upstreams:
    """The demo upstreams, driven through their admin API."""

    url: str
    client: httpx.Client

    def inject(self, service: str, **fault: Any) -> None:
        response = self.client.put(f"{self.url}/admin/faults/{service}", json=fault)
        assert response.status_code == 200, response.text

    def clear(self) -> None:
        self.client.delete(f"{self.url}/admin/faults").raise_for_status()
        self.client.delete(f"{self.url}/admin/requests").raise_for_status()

    def requests(self, service: str) -> list[dict[str, Any]]:
        log = self.client.get(f"{self.url}/admin/requests").json()
        requests: list[dict[str, Any]] = log[service]["requests"]
        return requests

    def counts(self) -> dict[str, int]:
        log = self.client.get(f"{self.url}/admin/requests").json()
        return {service: log[service]["count"] for service in SERVICES}

    def get(self, path: str) -> Any:
        return self.client.get(self.url + path).json()


def bff_env(upstreams_url: str, **extra: str) -> dict[str, str]:
    """The BFF's environment: these upstreams, with the cache and the circuit breakers off
    unless ``extra`` turns them on.

    The contract tests count upstream calls and inject one fault after another into the same
    BFF: with breakers on, the fifth failure of a service would open its breaker and change
    the next tests' outcomes to ``circuit_open``. tests/services/test_cache.py covers the
    cache, tests/services/test_resilience.py the breakers."""
    return {
        **dict.fromkeys(URL_VARIABLES.values(), upstreams_url),
        "BFF_CACHE": "off",
        "BFF_BREAKER": "off",
        **extra,
    }


@contextmanager
def run_bff(
    upstreams_url: str, module: str = "web_bff", *args: str, **env: str
) -> Iterator[RunningService]:
    """``python -m module *args``, a BFF process of its own on these upstreams (:func:`bff_env`:
    cache and breakers off unless ``env`` turns them on)."""
    with run_service(module, args, env=bff_env(upstreams_url, **env)) as service:
        yield service


@contextmanager
def serve_bff(upstreams_url: str, module: str = "web_bff", **env: str) -> Iterator[ServedApp]:
    """The BFF ``module`` (its ``create_app``) served from this process on these upstreams,
    configured by :func:`bff_env` alone (the process's own environment plays no part)."""
    create_app = importlib.import_module(module).create_app
    with serve_asgi(module, create_app(bff_env(upstreams_url, **env))) as served:
        yield served


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client


@pytest.fixture(scope="session")
def upstreams_process() -> Iterator[RunningService]:
    with run_service("demo_upstreams") as service:
        yield service


@pytest.fixture
def upstreams(upstreams_process: RunningService, http: httpx.Client) -> Iterator[Upstreams]:
    upstreams = Upstreams(upstreams_process.url, http)
    upstreams.clear()
    yield upstreams
    upstreams.clear()


def _warm(service: ServedApp, upstreams: RunningService, http: httpx.Client) -> None:
    """One first answer, so that no test pays for a new instance's first request (its
    connections, what it imports lazily): on a busy machine that one can be slow enough to
    hedge, and a test counting upstream requests would count the hedge. The upstreams' request
    log is cleared after it."""
    assert http.get(f"{service.url}/api/aggregated/product?id=p-1001").status_code == 200
    Upstreams(upstreams.url, http).clear()


@pytest.fixture(scope="session")
def web_bff(upstreams_process: RunningService, http: httpx.Client) -> Iterator[ServedApp]:
    """web-bff in its default configuration (:func:`bff_env`), served from this process."""
    with serve_bff(upstreams_process.url, "web_bff") as service:
        _warm(service, upstreams_process, http)
        yield service


@pytest.fixture(scope="session")
def mobile_bff(upstreams_process: RunningService, http: httpx.Client) -> Iterator[ServedApp]:
    """mobile-bff in its default configuration (:func:`bff_env`), served from this process."""
    with serve_bff(upstreams_process.url, "mobile_bff") as service:
        _warm(service, upstreams_process, http)
        yield service


@pytest.fixture(params=["web", "mobile"])
def bff(request: pytest.FixtureRequest) -> ServedApp:
    """Each BFF in turn, for the rules both must keep."""
    service: ServedApp = request.getfixturevalue(f"{request.param}_bff")
    return service


@pytest.fixture(scope="session")
def web_bff_process(upstreams_process: RunningService) -> Iterator[RunningService]:
    """``python -m web_bff`` (granian) in its default configuration, for the whole session."""
    with run_bff(upstreams_process.url, "web_bff") as service:
        yield service


@pytest.fixture(scope="session")
def mobile_bff_process(upstreams_process: RunningService) -> Iterator[RunningService]:
    """``python -m mobile_bff`` (granian) in its default configuration, for the whole session."""
    with run_bff(upstreams_process.url, "mobile_bff") as service:
        yield service


@pytest.fixture(params=["web", "mobile"])
def bff_process(request: pytest.FixtureRequest) -> RunningService:
    """Each BFF's process in turn, for what its server does (request sizes, raw HTTP)."""
    service: RunningService = request.getfixturevalue(f"{request.param}_bff_process")
    return service


@pytest.fixture(params=["redis", "redis-cluster"])
def shared_url(request: pytest.FixtureRequest) -> str:
    """A single Redis, then a Redis Cluster: the same behaviour from the same code."""
    url: str = request.getfixturevalue(
        "redis_cluster_url" if request.param == "redis-cluster" else "redis_url"
    )
    return url


def stored_entries(url: str, namespace: str) -> int:
    """How many entries a deployment has in Redis (whichever master holds them)."""

    async def count() -> int:
        client = connect(parse_redis_url(url), timeout=2.0, socket_timeout=2.0)
        try:
            return len([k async for k in client.scan_iter(match=f"{namespace}:*:k:*")])
        finally:
            await client.aclose()

    return asyncio.run(count())
