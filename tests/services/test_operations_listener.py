"""BFF_OPS_PORT on real BFF processes: /metrics and /admin/* answer on the operations port
only, 404 on the serving port, with one worker and with several."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import free_port, run_service
from tests.redis_server import RedisServer
from tests.services.conftest import Upstreams, bff_env

# Real BFF processes: the listener and its port are the server's, not the app's.
pytestmark = pytest.mark.process

ROUTE = "/api/aggregated/product"
TOKEN = "ops-listener-admin-token-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


def _fresh(url: str, method: str = "GET", **kwargs: object) -> httpx.Response:
    """A request on a connection of its own: with several workers, any of them answers."""
    with httpx.Client(timeout=10.0) as client:
        return client.request(method, url, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("module", "workers"), [("web_bff", "1"), ("mobile_bff", "1"), ("web_bff", "2")]
)
def test_metrics_and_admin_answer_on_the_operations_port_only(
    upstreams: Upstreams, module: str, workers: str
) -> None:
    ops_port = free_port()
    env = bff_env(upstreams.url, BFF_OPS_PORT=str(ops_port), BFF_ADMIN_TOKEN=TOKEN)
    with run_service(module, ["--workers", workers], env=env) as bff:
        ops = f"http://127.0.0.1:{ops_port}"
        # New connections, so that every worker answers some of each.
        for _ in range(6):
            # The serving port: the product and the probes; no metrics, no admin API.
            assert _fresh(bff.url + ROUTE, params={"id": "p-1001"}).status_code == 200
            assert _fresh(bff.url + "/healthz").status_code == 200
            assert _fresh(bff.url + "/readyz").status_code == 200
            assert _fresh(bff.url + "/metrics").status_code == 404
            refused = _fresh(
                bff.url + "/admin/cache/invalidate", "POST", params={"id": "p-1001"}, headers=ADMIN
            )
            assert refused.status_code == 404
            assert refused.headers["content-type"] == "application/problem+json"
            assert _fresh(bff.url + "/admin/anything", "POST", headers=ADMIN).status_code == 404
            # The operations port: those two, nothing else.
            scraped = _fresh(ops + "/metrics")
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert "bff_http_request_duration_seconds" in scraped.text
            invalidated = _fresh(
                ops + "/admin/cache/invalidate", "POST", params={"id": "p-1001"}, headers=ADMIN
            )
            assert invalidated.status_code == 200, invalidated.text
            assert invalidated.json()["tags"] == ["id=p-1001"]
            unauthorized = _fresh(ops + "/admin/cache/invalidate", "POST", params={"id": "p-1"})
            assert unauthorized.status_code == 401
            assert unauthorized.headers["www-authenticate"] == "Bearer"
            for path in ("/healthz", "/readyz", ROUTE + "?id=p-1001", "/schema/openapi.json"):
                assert _fresh(ops + path).status_code == 404, path
        # The OpenAPI document of the serving port does not offer what it does not serve.
        paths = _fresh(bff.url + "/schema/openapi.json").json()["paths"]
        assert "/metrics" not in paths
        assert "/admin/cache/invalidate" not in paths
        # One connection, several requests (a scraper keeps its connection).
        with httpx.Client(timeout=10.0) as client:
            for _ in range(3):
                assert client.get(ops + "/metrics").status_code == 200


def test_with_two_workers_the_operations_port_adds_up_and_reaches_every_worker(
    upstreams: Upstreams, redis_server: RedisServer
) -> None:
    ops_port = free_port()
    env = bff_env(
        upstreams.url,
        BFF_OPS_PORT=str(ops_port),
        BFF_ADMIN_TOKEN=TOKEN,
        BFF_CACHE="on",
        REDIS_URL=redis_server.url,
        BFF_CACHE_NAMESPACE=f"t-{uuid.uuid4().hex[:8]}",
    )
    with run_service("web_bff", ["--workers", "2"], env=env) as bff:
        ops = f"http://127.0.0.1:{ops_port}"
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda n: _fresh(bff.url + ROUTE, params={"id": f"p-{1001 + n % 12}"}),
                    range(100),
                )
            )
        assert all(answer.status_code == 200 for answer in answers)
        time.sleep(1.5)  # each worker writes its totals every second
        counts = set()
        for _ in range(8):
            families = text_string_to_metric_families(_fresh(ops + "/metrics").text)
            counts.add(
                sum(
                    sample.value
                    for family in families
                    for sample in family.samples
                    if sample.name == "bff_http_request_duration_seconds_count"
                    and sample.labels.get("route") == ROUTE
                )
            )
        assert counts == {100.0}
        # Whichever worker takes it, the invalidation reaches both (through Redis).
        for _ in range(4):
            told = _fresh(
                ops + "/admin/cache/invalidate", "POST", params={"id": "p-1001"}, headers=ADMIN
            )
            assert told.status_code == 200
            assert told.json()["instances_told"] == 2


def _start(env: dict[str, str], port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "web_bff", "--port", str(port)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_serving_port_as_operations_port_stops_start_up() -> None:
    port = free_port()
    completed = _start({"BFF_OPS_PORT": str(port)}, port)
    assert completed.returncode == 2
    assert "configuration error: BFF_OPS_PORT: " in completed.stderr
    assert "serving port" in completed.stderr


def test_an_operations_port_another_program_holds_stops_start_up() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ops_port = taken.getsockname()[1]
        completed = _start({"BFF_OPS_PORT": str(ops_port)}, free_port())
    assert completed.returncode == 2
    assert f"configuration error: BFF_OPS_PORT: cannot listen on 127.0.0.1:{ops_port}" in (
        completed.stderr
    )
