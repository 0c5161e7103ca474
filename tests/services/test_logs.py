"""Request ids, the JSON access log and the operational events, read from real processes'
output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.processes import RunningService, wait_for
from tests.redis_server import RedisServer
from tests.services.conftest import SERVICES, Upstreams, bff_env, run_bff

pytestmark = pytest.mark.process

ROUTE = "/api/aggregated/product"


def json_lines(service: RunningService) -> list[dict[str, Any]]:
    lines = []
    for line in service.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def events(
    service: RunningService,
    event: str,
    timeout: float = 5.0,
    until: Callable[[list[dict[str, Any]]], bool] = bool,
) -> list[dict[str, Any]]:
    """The service's `event` lines, once `until` holds of them (by default: once there is one).

    An access line is written after its answer is sent: a test holding the answer still waits."""

    def found() -> list[dict[str, Any]]:
        return [e for e in json_lines(service) if e.get("event") == event]

    wait_for(lambda: until(found()), timeout)
    return found()


def text_lines(service: RunningService, *needles: str, timeout: float = 5.0) -> list[str]:
    """The service's log lines holding every needle, once there is one."""

    def found() -> list[str]:
        return [line for line in service.log().splitlines() if all(n in line for n in needles)]

    wait_for(lambda: bool(found()), timeout)
    return found()


def test_a_request_id_is_kept_or_made_returned_and_sent_to_every_upstream(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with run_bff(upstreams.url, "mobile_bff") as mobile:
        given = http.get(
            mobile.url + ROUTE, params={"id": "p-1001"}, headers={"x-request-id": "trace-me.42"}
        )
        assert given.headers["x-request-id"] == "trace-me.42"
        made = http.get(mobile.url + ROUTE, params={"id": "p-1002"})
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
        # Not a token (spaces, too long): replaced, never echoed into a header or a log.
        for bad in ("two words", "x" * 129):
            replaced = http.get(mobile.url + "/healthz", headers={"x-request-id": bad})
            assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
        # Problem answers carry it too.
        missing = http.get(mobile.url + ROUTE, params={"id": "p-9999"})
        assert missing.status_code == 404 and "x-request-id" in missing.headers
        for service in SERVICES:
            seen = [r["headers"].get("x-request-id") for r in upstreams.requests(service)]
            assert "trace-me.42" in seen, (service, seen)
            assert made.headers["x-request-id"] in seen, (service, seen)


def test_the_json_access_log_has_one_line_per_request_with_each_part(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with run_bff(upstreams.url, BFF_CACHE="on", BFF_ACCESS_LOG="on", BFF_LOG_FORMAT="json") as web:
        upstreams.inject("reviews", status=503)
        ok = http.get(web.url + ROUTE, params={"id": "p-1001"}, headers={"x-request-id": "r1"})
        again = http.get(web.url + ROUTE, params={"id": "p-1001"}, headers={"x-request-id": "r2"})
        missing = http.get(web.url + ROUTE, params={"id": "p-9999"}, headers={"x-request-id": "r3"})
        assert (ok.status_code, again.status_code, missing.status_code) == (200, 200, 404)
        wanted = {"r1", "r2", "r3"}
        requests = events(
            web, "request", until=lambda seen: wanted <= {e["request_id"] for e in seen}
        )
        lines = {line["request_id"]: line for line in requests}
        assert wanted <= lines.keys()
    first = lines["r1"]
    assert first["logger"] == "bff.access" and first["level"] == "info"
    assert (first["method"], first["route"], first["status"]) == ("GET", ROUTE, 200)
    assert first["query"] == "id=p-1001"
    assert first["duration_ms"] > 0
    parts = {p["source"]: p for p in first["parts"]}
    assert parts.keys() == {"product", "inventory", "pricing", "reviews"}
    assert parts["product"]["outcome"] == "ok" and parts["product"]["cache"] == "miss"
    assert parts["reviews"] == {**parts["reviews"], "outcome": "upstream_status", "status": 503}
    assert first["answer_cache"] == "miss"
    cached = {p["source"]: p for p in lines["r2"]["parts"]}
    assert cached["product"]["cache"] == "hit"
    assert lines["r3"]["status"] == 404
    assert {p["source"]: p["outcome"] for p in lines["r3"]["parts"]}["product"] == "upstream_status"


def test_no_access_log_unless_asked_and_readable_text_by_default(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with run_bff(upstreams.url) as web:
        http.get(web.url + ROUTE, params={"id": "p-1001"})
        time.sleep(0.2)
        assert json_lines(web) == []
        assert "bff.access" not in web.log()
    with run_bff(upstreams.url, BFF_ACCESS_LOG="on") as web:
        http.get(web.url + ROUTE, params={"id": "p-1001"}, headers={"x-request-id": "t1"})
        (line,) = text_lines(web, "bff.access", ROUTE)
        assert f"GET {ROUTE}?id=p-1001 200" in line and " t1 " in line
        assert "product=ok" in line


def test_breaker_and_redis_changes_are_structured_events(
    upstreams: Upstreams, http: httpx.Client, redis_server: RedisServer
) -> None:
    with run_bff(
        upstreams.url,
        BFF_BREAKER="on",
        BFF_BREAKER_MIN_CALLS="5",  # the shipped policy waits for 20 requests
        BFF_CACHE="on",
        BFF_LOG_FORMAT="json",
        REDIS_URL=redis_server.url,
    ) as web:
        upstreams.inject("inventory", status=503)
        for n in range(6):
            http.get(web.url + ROUTE, params={"id": f"p-{1001 + n}"})
        (opened,) = events(web, "breaker_opened")
        assert opened["service"] == "inventory" and opened["level"] == "warning"
        assert opened["from_peer"] is False
        redis_server.stop()
        for n in range(3):
            http.get(web.url + ROUTE, params={"id": f"p-{1007 + n}"})
        (down,) = events(web, "redis_down")
        assert down["level"] == "warning" and down["error"]
        redis_server.start()
        deadline = time.monotonic() + 10
        while not events(web, "redis_up", timeout=0) and time.monotonic() < deadline:
            http.get(web.url + ROUTE, params={"id": "p-1010"})
            time.sleep(0.2)
        assert events(web, "redis_up", timeout=0)


def test_a_bad_log_format_stops_start_up_naming_it(upstreams: Upstreams) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "web_bff", "--port", "0"],
        env={**bff_env(upstreams.url), "BFF_LOG_FORMAT": "xml", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "BFF_LOG_FORMAT" in done.stderr and "'xml'" in done.stderr
