"""GET /readyz of a real BFF process: its Redis check is asked at most about once a second,
whoever probes and however often, and while Redis is down too."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from tests.processes import run_service, wait_for
from tests.redis_server import RedisServer
from tests.services.conftest import Upstreams, bff_env

# A real BFF process and a Redis it loses.
pytestmark = pytest.mark.process


def _pings(server: RedisServer) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    ping = stats.get("cmdstat_ping")
    return int(ping["calls"]) if ping else 0


def test_readiness_asks_redis_about_once_a_second(
    upstreams: Upstreams, http: httpx.Client, redis_server: RedisServer
) -> None:
    env = bff_env(
        upstreams.url,
        BFF_CACHE="on",
        REDIS_URL=redis_server.url,
        BFF_CACHE_NAMESPACE=f"t-{uuid.uuid4().hex[:8]}",
    )
    with run_service("web_bff", env=env) as bff:
        assert http.get(bff.url + "/readyz").status_code == 200
        before = _pings(redis_server)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: http.get(bff.url + "/readyz"), range(200)))
        elapsed = time.monotonic() - started
        assert {answer.status_code for answer in answers} == {200}
        # One PING per second of probing at most, give or take the second it started in.
        assert _pings(redis_server) - before <= elapsed + 2

        redis_server.stop()
        # Within about a second, the probes see Redis gone...
        assert wait_for(lambda: http.get(bff.url + "/readyz").status_code == 503, timeout=3)
        # ... and a flood of them does not wait on Redis each: they share one check.
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: http.get(bff.url + "/readyz"), range(100)))
        assert {answer.status_code for answer in answers} == {503}
        assert answers[0].json()["checks"]["cache"].startswith("unreachable")
        assert time.monotonic() - started < 3

        redis_server.start()
        assert wait_for(lambda: http.get(bff.url + "/readyz").status_code == 200, timeout=5)
