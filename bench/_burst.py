"""The cold-burst scenario: products nobody asked for yet, fifty clients at once for each.

What a deployment sees when a product page is shared somewhere: many clients asking, at the
same moment, for something no instance has cached. The promise is one request per upstream
(the product's: one, and its hedge when the budget allows, since its 200 ms are past its
100 ms hedge) and a whole 200 for every client, with the in-process cache and with Redis.

Each contestant is one deployment: ``in-process`` is one web-bff with its embedded cache;
``redis`` is two web-bff instances sharing the benchmark's Redis, the burst going to the first
and then the same burst to the second (which should find everything in Redis). The upstreams
(``bench/upstreams.py``, on the load core) answer the product in 200 ms, as in issue 9's
report, and count what they receive; ``BFF_TIMEOUT_MS=500``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._harness import (
    PRODUCT_PARTS,
    WEB_BFF,
    Bench,
    Redis,
    ServerSpec,
    Upstream,
    before,
    start_servers,
)
from ._procs import BenchError, http_get, json_or_none, warn

__all__ = [
    "BURST_CLIENTS",
    "BURST_LATENCY_MS",
    "BurstResult",
    "BurstSummary",
    "run_cold_burst",
]

BURST_CLIENTS = 50
#: The upstreams of this scenario: the product slow enough to be hedged, the others as usual.
BURST_LATENCY_MS = {"product": 200, "inventory": 30, "pricing": 15, "reviews": 40}
_ENV = {"BFF_CACHE": "on", "BFF_TIMEOUT_MS": "500", "BFF_CACHE_NAMESPACE": "bench-burst"}
IN_PROCESS = ServerSpec("cold-burst-in-process", WEB_BFF.argv, _ENV)
WITH_REDIS = ServerSpec("cold-burst-redis", WEB_BFF.argv, _ENV, redis=True)
_CATALOGUE = [f"p-{1001 + i}" for i in range(12)]
#: Waited after each burst, so what it wrote in the background is written before the next.
_SETTLE_S = 0.2


@dataclass
class Burst:
    product: str
    #: requests per answer status
    statuses: dict[int, int]
    #: 200 answers that report a failed part
    partial: int
    #: upstream requests per service the burst caused
    upstream: dict[str, int]
    #: milliseconds from sending to the whole answer, per client
    latencies_ms: list[float]
    #: upstream requests per service of the same burst against the deployment's other instance
    other_instance: dict[str, int] | None = None


@dataclass
class BurstSummary:
    contestant: str
    bursts: int
    requests: int
    non_200: int
    partial: int
    #: product requests of each burst
    product_requests: list[int]
    #: the most requests any burst caused, per service
    max_upstream: dict[str, int]
    #: upstream requests of each burst, every service together
    total_requests: list[int]
    p50_ms: float
    max_ms: float
    #: the most upstream requests a burst caused against the other instance (redis only)
    other_instance_max: int | None

    @property
    def non_200_share(self) -> float:
        return self.non_200 / self.requests if self.requests else 0.0


@dataclass
class BurstResult:
    clients: int
    products: int
    summaries: list[BurstSummary]
    bursts: dict[str, list[Burst]] = field(default_factory=dict)
    seconds: float = 0.0
    #: why a contestant was left out
    skipped: list[str] = field(default_factory=list)


def _received(upstream: Upstream) -> dict[str, int]:
    status, body = http_get(f"{upstream.url}/stats", timeout=5.0)
    counts = json_or_none(body)
    if status != 200 or not isinstance(counts, dict):
        raise BenchError(f"the upstreams' /stats answered {status}: {body[:200]!r}")
    return {service: int(counts.get(service, 0)) for service in PRODUCT_PARTS}


async def _fire(port: int, product: str, clients: int) -> tuple[list[int], int, list[float]]:
    """``clients`` connections opened first, then one request on each, all at once."""
    request = (
        f"GET /api/aggregated/product?id={product} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
    ).encode()
    connections = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(clients))
    )

    async def one(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[int, bool, float]:
        started = time.perf_counter()
        writer.write(request)
        answer = await reader.read()  # until the server closes
        elapsed = (time.perf_counter() - started) * 1000
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        return status, b'"errors"' in body, elapsed

    async with asyncio.timeout(30):
        answers = await asyncio.gather(*(one(r, w) for r, w in connections))
    return [a[0] for a in answers], sum(a[1] for a in answers), [a[2] for a in answers]


def _burst(
    port: int, upstream: Upstream, product: str, clients: int
) -> tuple[Burst, dict[str, int]]:
    before = _received(upstream)
    statuses, partial, latencies = asyncio.run(_fire(port, product, clients))
    time.sleep(_SETTLE_S)
    after = _received(upstream)
    counts: dict[int, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    caused = {service: after[service] - before[service] for service in PRODUCT_PARTS}
    return Burst(product, counts, partial, caused, latencies), caused


def _summary(contestant: str, bursts: list[Burst]) -> BurstSummary:
    latencies = [ms for burst in bursts for ms in burst.latencies_ms]
    others = [sum(b.other_instance.values()) for b in bursts if b.other_instance is not None]
    return BurstSummary(
        contestant=contestant,
        bursts=len(bursts),
        requests=sum(sum(b.statuses.values()) for b in bursts),
        non_200=sum(n for b in bursts for status, n in b.statuses.items() if status != 200),
        partial=sum(b.partial for b in bursts),
        product_requests=[b.upstream["product"] for b in bursts],
        max_upstream={s: max((b.upstream[s] for b in bursts), default=0) for s in PRODUCT_PARTS},
        total_requests=[sum(b.upstream.values()) for b in bursts],
        p50_ms=statistics.median(latencies) if latencies else 0.0,
        max_ms=max(latencies, default=0.0),
        other_instance_max=max(others) if others else None,
    )


def run_cold_burst(
    bench: Bench,
    upstream: Upstream,
    redis: Redis | None,
    products: int,
    before_tree: Path | None = None,
) -> BurstResult:
    """``products`` cold bursts against each deployment, in-process and with Redis (and the
    same from ``before_tree``, an earlier checkout, when given)."""
    started = time.monotonic()
    result = BurstResult(clients=BURST_CLIENTS, products=products, summaries=[])
    deployments: list[tuple[str, list[ServerSpec]]] = [("in-process", [IN_PROCESS])]
    if redis is None:
        result.skipped.append("redis: redis-server not found")
    else:
        deployments.append(("redis", [WITH_REDIS, WITH_REDIS]))
    if before_tree is not None:
        deployments += [
            (f"{name}@before", [before(spec, before_tree) for spec in specs])
            for name, specs in list(deployments)
        ]
    for contestant, specs in deployments:
        warn(f"[cold-burst] starting {contestant} ({len(specs)} instance(s))")
        servers = start_servers(bench.children, specs, upstream, redis)
        bursts: list[Burst] = []
        try:
            for number in range(products):
                product = (
                    f"{_CATALOGUE[number % len(_CATALOGUE)]}.cold-{contestant.replace('@', '-')}"
                    f"-{number}"
                )
                burst, _ = _burst(servers[0].port, upstream, product, BURST_CLIENTS)
                if len(servers) > 1:
                    again, caused = _burst(servers[1].port, upstream, product, BURST_CLIENTS)
                    burst.other_instance = caused
                    burst.statuses = {
                        s: burst.statuses.get(s, 0) + again.statuses.get(s, 0)
                        for s in {*burst.statuses, *again.statuses}
                    }
                    burst.partial += again.partial
                    burst.latencies_ms += again.latencies_ms
                bursts.append(burst)
                for server in servers:
                    server.ensure_alive()
            summary = _summary(contestant, bursts)
            warn(
                f"  [cold-burst] {contestant:<10} {summary.bursts} bursts: "
                f"{summary.non_200} non-200, {summary.partial} partial; product requests per "
                f"burst {min(summary.product_requests)}..{max(summary.product_requests)}; "
                f"p50 {summary.p50_ms:.0f} ms, max {summary.max_ms:.0f} ms"
            )
        finally:
            bench.children.stop(*(server.child for server in servers))
        result.bursts[contestant] = bursts
        result.summaries.append(summary)
    result.seconds = time.monotonic() - started
    return result
