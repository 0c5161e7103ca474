"""The project's real programs on free loopback ports, for end-to-end tests: the one place
that starts a process (:func:`run_service`, :func:`spawn`), waits for it to answer
(:func:`wait_ready`) and stops it (:func:`stop_process`); and :func:`serve_asgi`, which serves an
app in this process instead, for tests of an app's behaviour rather than of its process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn


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
class Served:
    """A program under test, reached at ``url``: a process of its own or an app served here."""

    name: str
    url: str


@dataclass
class RunningService(Served):
    """A program in a process of its own, its output (stdout and stderr) in ``log_path``."""

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
    log_path: str | None = None,
) -> Iterator[RunningService]:
    """Run ``python -m module --host 127.0.0.1 --port P *args`` until the block ends.

    Its output goes to ``log_path`` when given (kept), else to a temporary file (removed)."""
    port = port or free_port()
    # Only what the test asks for: a REDIS_URL or timeout set on the machine must not leak in.
    inherited = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BFF_TIMEOUT_MS")}
    full_env = {**inherited, **(env or {})}
    if log_path is None:
        with tempfile.NamedTemporaryFile(prefix=f"{module}-", suffix=".log", delete=False) as log:
            path, keep = log.name, False
    else:
        path, keep = log_path, True
    process = spawn(module, [*args], host="127.0.0.1", port=port, env=full_env, log_path=path)
    service = RunningService(module, f"http://127.0.0.1:{port}", process, path)
    try:
        wait_ready(process, service.url + ready_path, module, service.log, startup_timeout)
        yield service
    finally:
        stop_process(process)
        if not keep:
            os.unlink(path)


def spawn(
    module: str,
    args: Sequence[str],
    *,
    host: str,
    port: int,
    env: Mapping[str, str],
    log_path: str,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``python -m module --host H --port P *args``, its output appended to ``log_path``;
    do not wait for it (:func:`wait_ready` does). ``new_session``: a process group of its own,
    so that one ``killpg`` takes its workers too."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module, "--host", host, "--port", str(port), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=new_session,
        )


def wait_ready(
    process: subprocess.Popen[bytes],
    url: str,
    name: str,
    log: Callable[[], str],
    timeout: float = 20.0,
) -> None:
    """Poll ``GET url`` until it answers 200; fail at once, with the log, if the process exits,
    and with the log after ``timeout`` seconds."""

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log()}")
        try:
            return probe_get(url).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_for(ready, timeout):
        raise RuntimeError(f"{name} not ready after {timeout} s:\n{log()}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGINT, as Ctrl-C: a BFF stops at once (SIGTERM would drain it first, for
    BFF_DRAIN_MS; tests/services/test_drain.py sends that one itself). SIGKILL if it is still
    there 10 s later."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class ServedApp(Served):
    """An app served from a thread of this process (:func:`serve_asgi`), with what it logged."""

    lines: list[str]

    def log(self) -> str:
        """What the app logged (``bff_core``'s loggers, INFO and up) as a process would print
        it in text format, one line per record."""
        return "".join(f"{line}\n" for line in list(self.lines))


class _ThreadLog(logging.Handler):
    """The records logged from one thread, formatted as a BFF process prints them."""

    def __init__(self, thread: threading.Thread, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        self._thread = thread
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread.ident:
            self._lines.append(self.format(record))


@contextmanager
def serve_asgi(
    name: str, app: Any, *, logger: str = "bff_core", startup_timeout: float = 20.0
) -> Iterator[ServedApp]:
    """Serve the ASGI ``app`` on a free loopback port from a thread of this process (uvicorn,
    the app's lifespan run) until the block ends: real HTTP and real sockets, without the
    second or two a process takes to start.

    For tests of what the app does. What the process does (its server, granian; its signals,
    workers, exit status and log output) is tested on real processes (:func:`run_service`)."""
    # Bound here, before the server starts: no other test (or xdist worker) can take the port
    # between choosing it and listening on it.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        # The test process's logging stays as pytest set it.
        log_config=None,
        log_level="warning",
        access_log=False,
        # As granian: no Server header, and the client is the peer (no X-Forwarded-For).
        server_header=False,
        proxy_headers=False,
        ws="none",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"{name}:{port}", daemon=True
    )
    # What the app logs (from its server's thread) is kept, as a process's output is: the tests
    # read the operational lines (a breaker opened, a peer said so, the retries so far).
    lines: list[str] = []
    handler = _ThreadLog(thread, lines)
    app_logger = logging.getLogger(logger)
    level = app_logger.level
    app_logger.setLevel(logging.INFO)
    app_logger.addHandler(handler)
    thread.start()
    try:
        if not wait_for(lambda: server.started or not thread.is_alive(), startup_timeout, 0.01):
            raise RuntimeError(f"{name} not serving after {startup_timeout} s")
        if not server.started:
            raise RuntimeError(f"{name} did not start (its lifespan failed: see the log above)")
        yield ServedApp(name, f"http://127.0.0.1:{port}", lines)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        app_logger.removeHandler(handler)
        app_logger.setLevel(level)
