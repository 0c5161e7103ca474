"""How fast is each HTTP client at what the gateway does: small JSON GETs to a local upstream.

    uv run python bench/clients.py [--smoke] [--duration S] [--rounds N] [--loop uvloop|asyncio]
                                   [--json out.json]

The client side runs on ONE core (``os.sched_setaffinity(0, {0})``, set before any client or
runtime thread exists, so pyreqwest's Tokio thread shares that core too). The upstream is a
separate process pinned to the other core: a raw asyncio HTTP/1.1 keep-alive responder that
answers every request with the same pre-encoded ~300-byte JSON response, so the upstream is
never the bottleneck. Its CPU use is reported per contestant ("upstream CPU"): well below 100 %
means it had headroom and the number measures the client.

Each scenario (concurrency 4 and 64: that many requests in flight, closed loop) warms every
contestant up, then runs several rounds, rotating the contestants' order between rounds.
Reported: median req/s over the rounds, p50/p99 latency over all rounds' requests.

Traffic goes only to 127.0.0.1; every loop is bounded in time and count. ``--smoke`` runs
everything once, briefly (a few seconds), to keep the script from rotting in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from bff_core._transports import Transport

T = TypeVar("T")

CLIENT_CORE = 0
UPSTREAM_CORE = 1

#: ~300 bytes of JSON, like a small upstream answer (a product, a price, a profile).
BODY = json.dumps(
    {
        "id": 123456,
        "sku": "SKU-0123456",
        "name": "Ergonomic aluminium laptop stand, adjustable",
        "price": {"amount": "49.90", "currency": "EUR"},
        "stock": {"available": True, "quantity": 17, "warehouse": "FRA-2"},
        "tags": ["office", "desk", "ergonomics", "aluminium"],
        "updated_at": "2025-01-01T12:00:00Z",
        "rating": 4.6,
        "reviews": 1289,
    },
    separators=(",", ":"),
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
    b"\r\n" + BODY
)
HEADERS = {"accept": "application/json", "x-request-id": "bench"}

#: Hard cap on requests per contestant run, whatever the duration.
MAX_REQUESTS_PER_RUN = 2_000_000


# -- the upstream (child process) ----------------------------------------------------------


class _Responder(asyncio.Protocol):
    """Answers each request (a GET, so no body: the end of its head) with RESPONSE."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its API.
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._pending + data if self._pending else data
        count = buffer.count(b"\r\n\r\n")
        if count:
            assert self._transport is not None
            self._transport.write(RESPONSE * count)
            buffer = buffer[buffer.rindex(b"\r\n\r\n") + 4 :]
        self._pending = buffer


class _UntilClosed(asyncio.Protocol):
    def __init__(self, closed: asyncio.Event) -> None:
        self._closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed.set()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Responder, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    # Exit when the parent goes away (our stdin closes), or after an hour at the latest.
    parent_gone = asyncio.Event()
    await loop.connect_read_pipe(lambda: _UntilClosed(parent_gone), sys.stdin)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(parent_gone.wait(), timeout=3600)
    server.close()


def serve_upstream() -> None:
    os.sched_setaffinity(0, {UPSTREAM_CORE})
    _run(_serve(), "uvloop")


# -- contestants -----------------------------------------------------------------------------

Fetch = Callable[[], Awaitable[int]]


@dataclass
class Contestant:
    name: str
    fetch: Fetch
    close: Callable[[], Awaitable[None]]


async def make_contestants(url: str, pool: int) -> list[Contestant]:
    """Every client, configured alike: keep-alive pool >= concurrency, no timeouts."""
    import aiohttp
    import httpx
    from bff_core._transports._aiohttp import AiohttpTransport
    from bff_core._transports._httpx import HttpxTransport
    from bff_core._transports._pyreqwest import PyreqwestTransport
    from pyreqwest.client import ClientBuilder
    from pyreqwest.compatibility.httpx import HttpxTransport as PyreqwestHttpxTransport

    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    httpx_client = httpx.AsyncClient(limits=limits, timeout=None)
    httpx_fast = httpx.AsyncClient(transport=PyreqwestHttpxTransport(), timeout=None)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=pool),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    pyreqwest_client = ClientBuilder().pool_max_idle_per_host(pool).build()
    adapters: dict[str, Transport] = {
        "AiohttpTransport": AiohttpTransport(pool_size=pool),
        "HttpxTransport": HttpxTransport(pool_size=pool),
        "PyreqwestTransport": PyreqwestTransport(pool_size=pool),
    }

    async def fetch_httpx() -> int:
        response = await httpx_client.get(url, headers=HEADERS)
        return len(response.content)

    async def fetch_httpx_fast() -> int:
        response = await httpx_fast.get(url, headers=HEADERS)
        return len(response.content)

    async def fetch_aiohttp() -> int:
        async with session.get(url, headers=HEADERS) as response:
            return len(await response.read())

    async def fetch_pyreqwest() -> int:
        response = await pyreqwest_client.get(url).headers(HEADERS).build().send()
        return len(await response.bytes())

    contestants = [
        Contestant("httpx", fetch_httpx, httpx_client.aclose),
        Contestant("httpx + pyreqwest transport", fetch_httpx_fast, httpx_fast.aclose),
        Contestant("aiohttp", fetch_aiohttp, session.close),
        Contestant("pyreqwest", fetch_pyreqwest, pyreqwest_client.close),
    ]
    for name, adapter in adapters.items():

        async def fetch_adapter(adapter: Transport = adapter) -> int:
            return len((await adapter.get(url, headers=HEADERS)).body)

        contestants.append(Contestant(name, fetch_adapter, adapter.aclose))
    return contestants


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Run:
    requests: int
    seconds: float
    latencies: list[float]
    upstream_cpu: float
    client_cpu: float


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_once(fetch: Fetch, concurrency: int, seconds: float, upstream_pid: int) -> Run:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    budget = MAX_REQUESTS_PER_RUN
    clock = time.perf_counter

    async def worker() -> None:
        nonlocal budget
        while budget > 0 and clock() < deadline:
            budget -= 1
            started = clock()
            size = await fetch()
            latencies.append(clock() - started)
            if size != len(BODY):
                raise RuntimeError(f"unexpected body size {size}")

    upstream_before = _cpu_seconds(upstream_pid)
    client_before = time.process_time()
    started = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = clock() - started
    return Run(
        requests=len(latencies),
        seconds=elapsed,
        latencies=latencies,
        upstream_cpu=(_cpu_seconds(upstream_pid) - upstream_before) / elapsed,
        client_cpu=(time.process_time() - client_before) / elapsed,
    )


@dataclass
class Result:
    concurrency: int
    client: str
    rps_median: float
    rps_rounds: list[float]
    p50_ms: float
    p99_ms: float
    requests: int
    upstream_cpu: float
    client_cpu: float
    #: Requests per second of client CPU time: insensitive to other load on the machine.
    per_cpu_second: float


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]


async def run_scenario(
    url: str,
    concurrency: int,
    rounds: int,
    seconds: float,
    warmup: float,
    upstream_pid: int,
    only: str | None = None,
) -> list[Result]:
    contestants = await make_contestants(url, pool=max(concurrency, 10))
    if only:
        for dropped in [c for c in contestants if only.lower() not in c.name.lower()]:
            await dropped.close()
        contestants = [c for c in contestants if only.lower() in c.name.lower()]
    runs: dict[str, list[Run]] = {c.name: [] for c in contestants}
    try:
        for contestant in contestants:
            await run_once(contestant.fetch, concurrency, warmup, upstream_pid)
        for round_no in range(rounds):
            shift = round_no % len(contestants)
            for contestant in contestants[shift:] + contestants[:shift]:
                runs[contestant.name].append(
                    await run_once(contestant.fetch, concurrency, seconds, upstream_pid)
                )
    finally:
        for contestant in contestants:
            await contestant.close()

    results = []
    for contestant in contestants:
        done = runs[contestant.name]
        latencies = sorted(latency for run in done for latency in run.latencies)
        rps = [run.requests / run.seconds for run in done]
        results.append(
            Result(
                concurrency=concurrency,
                client=contestant.name,
                rps_median=statistics.median(rps),
                rps_rounds=[round(value) for value in rps],
                p50_ms=_percentile(latencies, 0.50) * 1000,
                p99_ms=_percentile(latencies, 0.99) * 1000,
                requests=len(latencies),
                upstream_cpu=statistics.mean(run.upstream_cpu for run in done),
                client_cpu=statistics.mean(run.client_cpu for run in done),
                per_cpu_second=statistics.median(
                    run.requests / (run.client_cpu * run.seconds) for run in done
                ),
            )
        )
    return results


def markdown(results: list[Result]) -> str:
    lines = [
        "| conc. | client | req/s (median) | p50 ms | p99 ms | req/CPU-s | client CPU "
        "| upstream CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.concurrency} | {r.client} | {r.rps_median:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.per_cpu_second:,.0f} | {r.client_cpu:.0%} | "
            f"{r.upstream_cpu:.0%} |"
        )
    return "\n".join(lines)


def environment(loop: str) -> dict[str, str]:
    packages = ["httpx", "httpcore", "aiohttp", "pyreqwest", "uvloop"]
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "loop": loop,
        **{name: version(name) for name in packages},
    }


# -- main ------------------------------------------------------------------------------------


def _run(coro: Coroutine[Any, Any, T], loop: str) -> T:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="one short round, a few seconds")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--only", metavar="TEXT", help="only the contestants whose name contains TEXT"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_upstream()
        return

    rounds, seconds, warmup = (1, 0.15, 0.05) if args.smoke else (args.rounds, args.duration, 0.5)
    if len(os.sched_getaffinity(0)) < 2:
        print("warning: fewer than 2 cores available; client and upstream share one", flush=True)
    # Pin before anything starts a thread (pyreqwest's Tokio runtime inherits this mask).
    os.sched_setaffinity(0, {CLIENT_CORE})

    upstream = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert upstream.stdout is not None
        port = int(upstream.stdout.readline())
        url = f"http://127.0.0.1:{port}/products/123456"

        async def all_scenarios() -> list[Result]:
            results: list[Result] = []
            for concurrency in (4, 64):
                results += await run_scenario(
                    url, concurrency, rounds, seconds, warmup, upstream.pid, args.only
                )
            return results

        results = _run(all_scenarios(), args.loop)
    finally:
        assert upstream.stdin is not None
        upstream.stdin.close()
        try:
            upstream.wait(timeout=5)
        except subprocess.TimeoutExpired:
            upstream.kill()
            upstream.wait()

    env = environment(args.loop)
    print(", ".join(f"{key}: {value}" for key, value in env.items()))
    print(
        f"client pinned to core {CLIENT_CORE}, upstream to core {UPSTREAM_CORE}; "
        f"{rounds} round(s) x {seconds:g} s per contestant; body {len(BODY)} bytes\n"
    )
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"environment": env, "results": [asdict(r) for r in results]}, out, indent=2)


if __name__ == "__main__":
    main()
