"""Child processes and /proc readings for the gateway benchmark.

Everything the harness starts (upstreams, contestants, load generators) goes through
:class:`Children`, which pins it to a core, logs its output to a file, and terminates it
(SIGTERM, then SIGKILL of whatever is left of its process tree) when the harness exits, fails or
is interrupted. The /proc helpers measure CPU time of process trees, busy time of cores and
resident memory; they only read.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "REPO_ROOT",
    "BenchError",
    "Child",
    "Children",
    "CoreTimes",
    "Layout",
    "core_times",
    "descendants",
    "free_port",
    "http_get",
    "rss_kib",
    "tree_ticks",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Seconds a child gets to exit after SIGTERM before its whole tree is SIGKILLed.
TERMINATE_GRACE = 4.0
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY")


class BenchError(RuntimeError):
    """The benchmark cannot go on: a process did not start, died, or answered wrongly."""


@dataclass(frozen=True)
class Layout:
    """Which core runs what; ``None`` cores mean unpinned (fewer than 2 cores available, or
    the contestants of a smoke run)."""

    gateway_core: int | None
    load_core: int | None
    #: cores this process could use when the harness started
    usable: tuple[int, ...]

    @classmethod
    def detect(cls) -> Layout:
        # Cores 0 and 1 on an ordinary 2-core machine; the first two we may use otherwise.
        available = tuple(sorted(os.sched_getaffinity(0)))
        if len(available) < 2:
            return cls(None, None, available)
        return cls(available[0], available[1], available)

    @property
    def pinned(self) -> bool:
        return self.gateway_core is not None

    def describe(self) -> str:
        if not self.pinned and self.load_core is not None:
            return (
                "contestants unpinned (a smoke run: nothing measured); upstreams, load "
                f"generator and harness pinned to core {self.load_core}"
            )
        if not self.pinned:
            return (
                "UNPINNED: fewer than 2 cores available, so gateway, upstreams and load "
                "generator share the CPU; numbers are not comparable with pinned runs"
            )
        return (
            f"contestant pinned to core {self.gateway_core}; upstreams, load generator and "
            f"harness pinned to core {self.load_core}"
        )


def _set_parent_death_signal() -> None:
    # If the harness is killed outright (no finally, no atexit), its children get SIGTERM from
    # the kernel instead of living on. Linux only; best effort.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _preexec(core: int | None) -> Callable[[], None]:
    def setup() -> None:
        if core is not None:
            # Children (granian's workers, pyreqwest's threads) inherit this mask.
            os.sched_setaffinity(0, {core})
        _set_parent_death_signal()

    return setup


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The harness's environment for a child, plus ``extra``.

    Without proxies (all traffic stays on 127.0.0.1) and without the gateways' own settings
    (``BFF_*``, ``REDIS_URL``): a contestant runs with its defaults, as shipped, whatever the
    shell that started the benchmark had set. ``PYTHONPATH`` starts with the repository root,
    so ``bench`` is importable by children.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _PROXY_VARIABLES and not k.startswith("BFF_") and k != "REDIS_URL"
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    python_path = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    env.update(extra)
    return env


@dataclass
class Child:
    """A process the harness started."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    #: every pid of its tree seen so far, so leftovers can be killed after the parent exits
    known_pids: set[int]

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def refresh_tree(self) -> list[int]:
        tree = [self.pid, *descendants(self.pid)] if self.alive() else []
        self.known_pids.update(tree)
        return tree


class Children:
    """Starts processes and guarantees that they are all gone when the harness ends."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._children: list[Child] = []
        self._logs = tempfile.TemporaryDirectory(prefix="bench-logs-")
        atexit.register(self.stop_all)
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # Turn SIGTERM into an exception so every try/finally runs and the children are stopped.
        raise KeyboardInterrupt(f"signal {signum}")

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        core: int | None,
        env: Mapping[str, str] | None = None,
        stdin_pipe: bool = False,
        stdout_pipe: bool = False,
    ) -> Child:
        """Start ``argv`` pinned to ``core``, in the repository root, output logged to a file."""
        log_path = Path(self._logs.name) / f"{name}-{len(self._children)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                list(argv),
                cwd=REPO_ROOT,
                env=dict(env) if env is not None else child_environment({}),
                stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log,
                preexec_fn=_preexec(core),
            )
        child = Child(name, process, log_path, {process.pid})
        self._children.append(child)
        return child

    def stop(self, *children: Child) -> None:
        """SIGINT each, what Ctrl-C sends (closing stdin first: the upstreams exit on that; a
        BFF stops at once, without the drain SIGTERM starts), then SIGKILL the rest."""
        for child in children:
            child.refresh_tree()
            if child.process.stdin is not None:
                with contextlib.suppress(OSError):
                    child.process.stdin.close()
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + TERMINATE_GRACE
        for child in children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                child.process.wait(timeout=5)
            # Grandchildren (granian workers) normally exit with their parent; make sure.
            for pid in child.known_pids - {child.pid}:
                if _pid_exists(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            if child.process.stdout is not None:
                child.process.stdout.close()
            if child in self._children:
                self._children.remove(child)

    def stop_all(self) -> None:
        if self._children:
            self.stop(*list(self._children))

    def close(self) -> None:
        self.stop_all()
        atexit.unregister(self.stop_all)
        signal.signal(signal.SIGTERM, self._previous_sigterm)
        self._logs.cleanup()


def _pid_exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    # Bounded: a process tree cannot hold more pids than /proc listed.
    budget = sum(len(v) for v in parents.values())
    while stack and budget > 0:
        budget -= 1
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def tree_ticks(pids: Sequence[int]) -> dict[int, int]:
    """utime + stime (clock ticks, all threads) of each pid still alive."""
    ticks: dict[int, int] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def ticks_to_seconds(ticks: int) -> float:
    return ticks / CLOCK_TICKS


@dataclass(frozen=True)
class CoreTimes:
    """Cumulative busy and total jiffies of every core, from /proc/stat."""

    busy: dict[int, int]
    total: dict[int, int]

    def busy_fraction(self, later: CoreTimes, core: int | None) -> float:
        """Busy share of ``core`` (all cores when ``None``) between this reading and ``later``."""
        cores = list(self.total) if core is None else [core]
        busy = sum(later.busy[c] - self.busy[c] for c in cores)
        total = sum(later.total[c] - self.total[c] for c in cores)
        return busy / total if total > 0 else 0.0


def core_times() -> CoreTimes:
    busy: dict[int, int] = {}
    total: dict[int, int] = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            # user nice system idle iowait irq softirq steal (guest is counted in user already)
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in values[:8])
            core = int(name[3:])
            busy[core] = user + nice + system + irq + softirq + steal
            total[core] = busy[core] + idle + iowait
    return CoreTimes(busy, total)


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(
    url: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[int, bytes]:
    """``GET url`` (or ``method``, with ``body``) directly (never through a proxy): status and
    body; status 0 if unreachable."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the benchmark only talks to 127.0.0.1, not {url}")
    try:
        request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
        with _NO_PROXY_OPENER.open(request, timeout=timeout) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
