"""Load generation for the gateway benchmark: ``wrk``, or a built-in fallback.

:func:`run_load` drives one closed-loop run (N keep-alive connections for S seconds against one
URL) in a separate process pinned to the load core and returns a :class:`LoadResult`: requests,
requests/s, latency percentiles and every kind of error. ``wrk`` (C, one thread) is the
preferred generator; when it is not on PATH, :mod:`bench._loadgen` (aiohttp on uvloop) stands in
and the report says so, because a Python client adds its own latency and runs out of CPU sooner.

Both also count *partial* answers: 200s whose body reports a failed part (``"errors":``), which
a status check alone would count as successes, and the *failed parts* themselves: the objects
of an answer's ``errors`` (each names its ``reason``), in a 200 or in an error answer whose
critical part failed. Given ``paths``, both rotate the requests over them (one after another
across the connections), so that the requests in flight at once ask for different ids.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ._procs import REPO_ROOT, BenchError, Children, child_environment

__all__ = ["LoadResult", "generator_name", "parse_wrk", "run_load", "wrk_version"]

WRK_SCRIPT = REPO_ROOT / "bench" / "wrk_partial.lua"
#: How long a load run may overrun its duration before it is killed and the bench fails.
OVERRUN_GRACE = 30.0
#: How often the harness looks at a running load generator (and samples memory, if asked).
POLL_INTERVAL = 0.25


@dataclass
class LoadResult:
    """One load run, as the generator reported it."""

    generator: str
    connections: int
    duration_s: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    #: wrk's socket errors (connect, read, write, timeout) or the fallback's client errors
    socket_errors: dict[str, int] = field(default_factory=dict)
    partial: int = 0
    #: failed parts named in the answers' ``errors`` (200s and error answers alike)
    failed_parts: int = 0
    raw: str = ""

    @property
    def errors(self) -> int:
        """Every answer that was not a complete success."""
        return self.non_2xx + sum(self.socket_errors.values()) + self.partial


def generator_name(requested: str) -> str:
    """``wrk`` or ``builtin``: what ``auto`` resolves to on this machine."""
    if requested == "auto":
        return "wrk" if shutil.which("wrk") else "builtin"
    if requested == "wrk" and not shutil.which("wrk"):
        raise BenchError("--generator wrk: wrk is not on PATH")
    return requested


def wrk_version() -> str | None:
    path = shutil.which("wrk")
    if path is None:
        return None
    try:
        done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (done.stdout or done.stderr).splitlines()
    return first[0].strip() if first else "unknown"


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_PARTIAL = re.compile(r"^Partial answers:\s+(\d+)", re.M)
_FAILED_PARTS = re.compile(r"^Failed parts:\s+(\d+)", re.M)


def parse_wrk(text: str, connections: int) -> LoadResult:
    """Parse ``wrk --latency`` output (with ``wrk_partial.lua``'s last line)."""
    percentiles = {q: float(v) * _UNITS_MS[unit] for q, v, unit in _PERCENTILE.findall(text)}
    requests = _REQUESTS.search(text)
    rate = _RATE.search(text)
    if requests is None or rate is None or len(percentiles) < 4:
        raise BenchError(f"cannot parse wrk's output:\n{text}")
    socket = _SOCKET.search(text)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True))
        if socket
        else {}
    )
    non_2xx = _NON_2XX.search(text)
    partial = _PARTIAL.search(text)
    failed_parts = _FAILED_PARTS.search(text)
    return LoadResult(
        generator="wrk",
        connections=connections,
        duration_s=float(requests.group(2)) * _UNITS_MS[requests.group(3)] / 1000,
        requests=int(requests.group(1)),
        requests_per_s=float(rate.group(1)),
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors={k: v for k, v in socket_errors.items() if v},
        partial=int(partial.group(1)) if partial else 0,
        failed_parts=int(failed_parts.group(1)) if failed_parts else 0,
        raw=text,
    )


def run_load(
    children: Children,
    generator: str,
    url: str,
    connections: int,
    seconds: float,
    *,
    on_start: Callable[[], None] | None = None,
    on_poll: Callable[[], None] | None = None,
    headers: Sequence[tuple[str, str]] = (),
    method: str = "GET",
    body: bytes = b"",
    paths: Sequence[str] = (),
) -> LoadResult:
    """One closed-loop run against ``url``, the generator pinned to the load core.

    ``paths``: request paths (each starting with ``/``) on ``url``'s host to rotate over,
    instead of ``url``'s own path.

    ``on_start`` is called right before the load begins (after the built-in generator's
    start-up, which takes longer than its first requests), ``on_poll`` about every
    :data:`POLL_INTERVAL` seconds while it runs.
    """
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the benchmark only loads 127.0.0.1, not {url}")
    builtin = generator != "wrk"
    paths_file = None
    env = None
    if paths:
        if not all(p.startswith("/") for p in paths):
            raise ValueError("each rotating path starts with /")
        with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as listing:
            listing.write("\n".join(paths) + "\n")
        paths_file = listing.name
        env = child_environment({"WRK_PATHS_FILE": paths_file})
    if not builtin:
        # wrk takes whole seconds only.
        whole = max(1, math.ceil(seconds - 1e-9))
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{whole}s", "--latency"]
        for name, value in headers:
            argv += ["-H", f"{name}: {value}"]
        argv += ["-s", str(WRK_SCRIPT), url]
        if method != "GET" or body:
            argv += [method, body.decode()]  # to the script's init(args)
        # wrk is up in a millisecond: the readings may be taken before it starts.
        if on_start is not None:
            on_start()
    else:
        argv = [sys.executable, "-m", "bench._loadgen", "--url", url]
        argv += ["--connections", str(connections), "--duration", f"{seconds:g}", "--wait-go"]
        for name, value in headers:
            argv += ["--header", f"{name}: {value}"]
        argv += ["--method", method, "--body", body.decode()]
        if paths_file is not None:
            argv += ["--paths-file", paths_file]
    try:
        child = children.spawn(
            f"load-{generator}",
            argv,
            core=children.layout.load_core,
            env=env,
            stdin_pipe=builtin,
            stdout_pipe=True,
        )
    except BaseException:
        if paths_file is not None:
            os.unlink(paths_file)
        raise
    try:
        stdout, stdin = child.process.stdout, child.process.stdin
        assert stdout is not None
        if builtin:
            # Python and aiohttp take a while to import: start the clock when it is ready.
            assert stdin is not None
            ready, _, _ = select.select([stdout], [], [], OVERRUN_GRACE)
            if not ready or stdout.readline().strip() != b"ready":
                raise BenchError(f"the built-in load generator did not start:\n{child.log_tail()}")
            if on_start is not None:
                on_start()
            stdin.write(b"go\n")
            stdin.flush()
        deadline = time.monotonic() + seconds + OVERRUN_GRACE
        while child.alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"the load generator ran past {seconds + OVERRUN_GRACE:.0f} s")
            if on_poll is not None:
                on_poll()
            # wait() returns the moment it exits: the harness's readings after the run must
            # not include idle time, or short runs would understate CPU use.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=min(POLL_INTERVAL, remaining))
        # Its whole output is a few hundred bytes, so it fit in the pipe while it ran.
        output = stdout.read().decode(errors="replace")
        if child.process.returncode != 0:
            raise BenchError(
                f"{generator} exited with status {child.process.returncode}:\n"
                f"{output}\n{child.log_tail()}"
            )
    finally:
        children.stop(child)
        if paths_file is not None:
            os.unlink(paths_file)
    if not builtin:
        return parse_wrk(output, connections)
    try:
        data = json.loads(output)
        return LoadResult(generator="builtin", connections=connections, raw=output, **data)
    except (ValueError, TypeError) as exc:
        raise BenchError(f"cannot parse the built-in generator's output: {output!r}") from exc
