"""The built-in load generator, used by ``python -m bench`` only when ``wrk`` is not installed.

    python -m bench._loadgen --url http://127.0.0.1:P/path --connections 64 --duration 5

A closed loop like wrk's: N aiohttp keep-alive connections, each sending its next request as
soon as the previous answer is read, for ``--duration`` seconds or ``--max-requests`` in all,
whichever comes first; with ``--paths-file`` (one path a line), the requests rotate over those
paths on the URL's host, one after another across the connections. Prints one JSON object (the
fields of ``bench._load.LoadResult``). It is Python, so it adds latency and saturates its core
sooner than wrk: its numbers are less precise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp
import uvloop

#: Hard cap on requests per run, whatever the duration.
MAX_REQUESTS = 5_000_000
#: Seconds one request may take before it counts as a timeout (a socket error).
REQUEST_TIMEOUT = 10.0


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


async def load(
    url: str,
    connections: int,
    seconds: float,
    max_requests: int,
    wait_go: bool,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
    paths: list[str] | None = None,
) -> dict[str, object]:
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit(f"only 127.0.0.1 is loaded, not {url}")
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counts = {"non_2xx": 0, "partial": 0, "failed_parts": 0, "budget": max_requests, "next": 0}
    origin = url[: url.index("/", len("http://"))]
    urls = [origin + path for path in paths] if paths else [url]
    clock = time.perf_counter
    deadline = clock() + seconds  # reset when the load starts
    # Generous, unlike wrk's 2 s: aiohttp abandons a timed-out request and reconnects, which
    # makes a slow server (FastAPI + httpx) slower still; wrk keeps waiting for the answer.
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)

    async def connection(session: aiohttp.ClientSession) -> None:
        while counts["budget"] > 0 and clock() < deadline:
            counts["budget"] -= 1
            target = urls[counts["next"] % len(urls)]
            counts["next"] += 1
            started = clock()
            try:
                async with session.request(
                    method, target, timeout=timeout, headers=headers, data=body
                ) as response:
                    answer = await response.read()
                    status = response.status
            except TimeoutError:
                errors["timeout"] = errors.get("timeout", 0) + 1
                continue
            except (aiohttp.ClientError, OSError) as exc:
                kind = "connect" if isinstance(exc, aiohttp.ClientConnectorError) else "read"
                errors[kind] = errors.get(kind, 0) + 1
                # A refused connection fails at once: do not spin on it.
                await asyncio.sleep(0.01)
                continue
            latencies.append(clock() - started)
            if not 200 <= status < 400:
                counts["non_2xx"] += 1
            at = answer.find(b'"errors":')
            if at >= 0:
                counts["partial"] += status == 200
                counts["failed_parts"] += max(1, answer.count(b'"reason":', at))

    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    # Bodies are read as sent, never decompressed, as wrk reads them: decoding is the client's
    # work, not the gateway's, and aiohttp cannot decode zstd on Python < 3.14 without
    # backports.zstd (it raised on every zstd answer of the edge scenario, each counted as a
    # socket error). A compressed body hides its "errors" member, from wrk_partial.lua too.
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    ) as session:
        if wait_go:
            # Imports done, session ready: the harness takes its readings, then says go.
            print("ready", flush=True)
            line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            if line.strip() != "go":
                raise SystemExit("no go from the harness")
        started = clock()
        deadline = started + seconds
        await asyncio.gather(*(connection(session) for _ in range(connections)))
    elapsed = clock() - started
    ordered = sorted(latencies)
    return {
        "duration_s": elapsed,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _percentile(ordered, 0.50) * 1000,
        "p75_ms": _percentile(ordered, 0.75) * 1000,
        "p90_ms": _percentile(ordered, 0.90) * 1000,
        "p99_ms": _percentile(ordered, 0.99) * 1000,
        "non_2xx": counts["non_2xx"],
        "socket_errors": errors,
        "partial": counts["partial"],
        "failed_parts": counts["failed_parts"],
    }


def _header(text: str) -> tuple[str, str]:
    name, _, value = text.partition(":")
    return name.strip(), value.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument(
        "--header", action="append", default=[], help="NAME: VALUE sent with every request"
    )
    parser.add_argument("--max-requests", type=int, default=MAX_REQUESTS)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="", help="the body of every request (UTF-8)")
    parser.add_argument("--paths-file", help="request paths to rotate over, one a line")
    parser.add_argument(
        "--wait-go", action="store_true", help='print "ready", start on a "go" line on stdin'
    )
    args = parser.parse_args()
    paths = None
    if args.paths_file:
        with open(args.paths_file) as listing:
            paths = [line.strip() for line in listing if line.strip()]
    result = uvloop.run(
        load(
            args.url,
            args.connections,
            args.duration,
            args.max_requests,
            args.wait_go,
            dict(_header(h) for h in args.header),
            args.method,
            args.body.encode() or None,
            paths,
        )
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
