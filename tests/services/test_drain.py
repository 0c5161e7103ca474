"""Stopping a BFF: SIGTERM drains it (not ready at once, still serving for BFF_DRAIN_MS, then
what is in flight finishes and it exits 0); SIGINT stops it at once. With several workers,
since granian's main process owns the signals."""

from __future__ import annotations

import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.processes import RunningService, run_service, wait_for

from .conftest import Upstreams, bff_env

# Serial: how soon a worker process gets its drain signal is the machine's to say.
pytestmark = [pytest.mark.process, pytest.mark.serial]

ROUTE = "/api/aggregated/product?id=p-1001"
# Long enough that a worker starved of CPU for a moment (several test workers, two cores) still
# gets the drain signal, and the test its requests in, well within the drain.
DRAIN_MS = 3000


def wait_exit(service: RunningService, within: float) -> int:
    try:
        return service.process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{service.name} still running {within} s after the signal:\n{service.log()}")


@pytest.mark.parametrize("module", ["web_bff", "mobile_bff"])
def test_sigterm_drains_then_finishes_what_is_in_flight(upstreams: Upstreams, module: str) -> None:
    env = bff_env(upstreams.url, BFF_DRAIN_MS=str(DRAIN_MS), BFF_TIMEOUT_MS="3000")
    with run_service(module, ["--workers", "2"], env=env) as bff:
        assert httpx.get(f"{bff.url}/readyz").status_code == 200
        signalled = time.monotonic()
        bff.process.send_signal(signal.SIGTERM)
        # The signal reaches granian's main process, which tells each worker: on a busy
        # machine that takes a moment, well within the drain.
        flipped, in_a_row = time.monotonic() + DRAIN_MS / 2000, 0
        while in_a_row < 4 and time.monotonic() < flipped:  # both workers, seen a few times
            in_a_row = in_a_row + 1 if httpx.get(f"{bff.url}/readyz").status_code == 503 else 0
            time.sleep(0.02)
        # Not ready, from every worker (each request may land on either: new connections).
        for _ in range(6):
            ready = httpx.get(f"{bff.url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["draining"].startswith("stopping")
        # Still serving what arrives during the drain, on new connections.
        served = 0
        while time.monotonic() - signalled < DRAIN_MS / 1000 - 0.6:
            assert httpx.get(bff.url + ROUTE, timeout=5).status_code == 200
            served += 1
        assert served > 3
        # A slow request that arrives just before the drain ends is answered in full after.
        upstreams.inject("product", latency_ms=1200)
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(httpx.get, bff.url + ROUTE, timeout=10)
            answer = slow.result(timeout=10)
        assert answer.status_code == 200, answer.text
        assert "errors" not in answer.json()
        assert time.monotonic() - signalled > DRAIN_MS / 1000  # it outlived the drain
        assert wait_exit(bff, within=10) == 0
        elapsed = time.monotonic() - signalled
        assert DRAIN_MS / 1000 <= elapsed < DRAIN_MS / 1000 + 8
        log = bff.log()
        assert "draining" in log
        assert "Killing" not in log  # nothing had to be killed


def test_sigint_skips_the_drain(upstreams: Upstreams) -> None:
    env = bff_env(upstreams.url, BFF_DRAIN_MS="30000")
    with run_service("web_bff", ["--workers", "2"], env=env) as bff:
        assert httpx.get(bff.url + ROUTE).status_code == 200
        signalled = time.monotonic()
        bff.process.send_signal(signal.SIGINT)
        assert wait_exit(bff, within=10) == 0
        assert time.monotonic() - signalled < 5


def test_a_second_sigterm_ends_the_drain(upstreams: Upstreams) -> None:
    env = bff_env(upstreams.url, BFF_DRAIN_MS="30000")
    with run_service("web_bff", env=env) as bff:
        signalled = time.monotonic()
        bff.process.send_signal(signal.SIGTERM)
        # Draining (on a busy machine the signal takes a moment to reach the worker).
        assert wait_for(lambda: httpx.get(f"{bff.url}/readyz").status_code == 503, timeout=3)
        bff.process.send_signal(signal.SIGTERM)  # e.g. an impatient operator, or a supervisor
        assert wait_exit(bff, within=10) == 0
        assert time.monotonic() - signalled < 5
