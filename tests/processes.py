"""Start the project's real programs on free loopback ports for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# One client for every readiness poll and probe: ``httpx.get`` builds a client per call, and
# with it a TLS context that loads the whole CA bundle, tens of milliseconds of CPU per poll
# that a loaded 2-core machine cannot spare. No keep-alive, so a restarted server is never
# reached through a dead connection.
_PROBE = httpx.Client(
    verify=False, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
)


def probe_get(url: str, timeout: float = 1.0) -> httpx.Response:
    """``GET url`` on loopback with the shared probe client."""
    return _PROBE.get(url, timeout=timeout)


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``condition`` every ``step`` seconds until it holds (True) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


@dataclass
class RunningService:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: str

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()


@contextmanager
def run_service(
    module: str,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    ready_path: str = "/healthz",
    startup_timeout: float = 20.0,
) -> Iterator[RunningService]:
    """Run ``python -m module --host 127.0.0.1 --port P *args`` until the block ends."""
    port = port or free_port()
    # Only what the test asks for: a REDIS_URL or timeout set on the machine must not leak in.
    inherited = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BFF_TIMEOUT_MS")}
    full_env = {**inherited, **(env or {})}
    log = tempfile.NamedTemporaryFile(prefix=f"{module}-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port), *args],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    service = RunningService(module, f"http://127.0.0.1:{port}", process, log.name)
    try:
        _wait_until_ready(service, ready_path, startup_timeout)
        yield service
    finally:
        stop(service)
        log.close()
        os.unlink(log.name)


def stop(service: RunningService) -> None:
    """SIGINT, as Ctrl-C: a BFF stops at once (SIGTERM would drain it first, for
    BFF_DRAIN_MS; tests/services/test_drain.py sends that one itself)."""
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGINT)
        try:
            service.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(timeout=5)


def _wait_until_ready(service: RunningService, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited with {service.process.returncode}:\n{service.log()}"
            )
        try:
            if probe_get(service.url + path).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{service.name} not ready after {timeout} s:\n{service.log()}")
