"""The gateway benchmark's scenarios: who is started, how each run is measured, what is kept.

A *contestant* is a gateway process (web-bff as shipped, or a hand-written baseline) pinned to
the gateway core; the upstreams (:mod:`bench.upstreams`) and the load generator are pinned to
the load core. Every run records what the load generator saw (:class:`~bench._load.LoadResult`)
and the headroom around it (:class:`Headroom`): CPU of the contestant's process tree, CPU of the
upstream process, busy share of both cores. A scenario warms every contestant up, then runs
``rounds`` rounds, rotating the contestants' order each round, and summarises each contestant by
medians over the rounds (:class:`Summary`).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from demo_upstreams._catalogue import CATEGORIES, PRODUCT_IDS

from . import _identity as bench_identity
from ._go import go_binary
from ._load import LoadResult, run_load
from ._procs import (
    REPO_ROOT,
    BenchError,
    Child,
    Children,
    CoreTimes,
    child_environment,
    core_times,
    free_port,
    http_get,
    json_or_none,
    rss_kib,
    ticks_to_seconds,
    tree_ticks,
    warn,
)

__all__ = [
    "CACHED_TARGETS",
    "CACHE_OFF_ENV",
    "CATEGORY_FLOOR_PATHS",
    "CATEGORY_ITEMS",
    "CATEGORY_LATENCY",
    "CATEGORY_LATENCY_TARGETS",
    "CATEGORY_SLUG",
    "CATEGORY_TARGETS",
    "CATEGORY_UPSTREAM_LATENCY_MS",
    "CONTESTANTS",
    "EDGE_TARGETS",
    "LATENCY_FLOOR_MS",
    "LATENCY_VARIANTS",
    "RESILIENCE_TARGETS",
    "SCENARIOS",
    "TELEMETRY_TARGETS",
    "Bench",
    "Config",
    "MemoryResult",
    "Run",
    "ScenarioResult",
    "Summary",
    "run_memory",
    "run_scenario",
]

SCENARIOS = (
    "latency",
    "throughput",
    "category",
    "cached",
    "resilience",
    "telemetry",
    "edge",
    "cold-burst",
    "scaling",
    "memory",
    "write",
    "batch-window",
)
#: What a run without ``--scenarios`` runs: all but the long ``batch-window`` study.
DEFAULT_SCENARIOS = tuple(name for name in SCENARIOS if name != "batch-window")
#: Per-service latency of the upstreams in the latency scenario (ms).
UPSTREAM_LATENCY_MS = {"product": 20, "inventory": 30, "pricing": 15, "reviews": 40}
#: The best any aggregator can do: the four calls run concurrently, so the slowest one.
LATENCY_FLOOR_MS = float(max(UPSTREAM_LATENCY_MS.values()))
PRODUCT_ID = "p-1001"
PRODUCT_PARTS = ("product", "inventory", "pricing", "reviews")
#: The throughput and latency scenarios' products: distinct ids, so that neither a cache nor
#: the coalescing of identical reads can flatter anyone (issue 25). 1,200 copies of the
#: catalogue's products (``p-1001.r0`` ... ``p-1300.r3``; the bench upstreams answer each as
#: its catalogue product, with its own id), asked in turn: the requests in flight at once
#: (64 at most) are all for different products.
DISTINCT_COPIES = 4
DISTINCT_IDS = tuple(f"{pid}.r{k}" for k in range(DISTINCT_COPIES) for pid in PRODUCT_IDS)
#: How many of them an answer check asks for at once, before and after the load: every answer
#: must be the product asked (a gateway that batches must not mix its items up).
CHECK_DISTINCT = 32
#: The category scenario's grid: the first page of one category, of web-bff's default size.
CATEGORY_SLUG = "audio"
CATEGORY_ITEMS = 24
_CATEGORY = next(c for c in CATEGORIES if c.slug == CATEGORY_SLUG)
CATEGORY_PAGE_IDS = _CATEGORY.product_ids[:CATEGORY_ITEMS]
CATEGORY_PARTS = ("slug", "name", "total", "items")
TILE_PARTS = ("id", "name", "image", "price", "stock", "rating")
#: ... its latency half: the latency scenario's upstream latencies, and the category's.
CATEGORY_UPSTREAM_LATENCY_MS = {**UPSTREAM_LATENCY_MS, "category": 10}
#: ... whose floor is the chain the grid cannot shorten: the category, then the slowest of
#: the four batch reads (the reviews, 40 ms) for the page's ids; each loaded alone every round.
CATEGORY_FLOOR_PATHS = (
    f"/categories/{CATEGORY_SLUG}",
    "/reviews?ids=" + ",".join(quote(pid, safe="") for pid in CATEGORY_PAGE_IDS),
)
#: The name its latency half is reported under (``--scenarios category`` runs both halves).
CATEGORY_LATENCY = "category-latency"
#: The routes of bench/scaling_app.py (its FAN_OUTS; not imported: it would load Litestar here).
SCALING_FAN_OUTS = (4, 8, 16)
#: Bound on a contestant's start-up (imports on one shared core, the first /healthz).
STARTUP_TIMEOUT = 45.0
#: Start attempts when the port we picked was taken by someone else meanwhile.
START_ATTEMPTS = 3
#: Before each run the gateway core must be idle: at most this busy over one window ...
SETTLE_MAX_BUSY = 0.15
SETTLE_WINDOW = 0.1
#: ... waiting at most this long for it.
SETTLE_TIMEOUT = 15.0

# -- cache off -------------------------------------------------------------------------------
#: Environment that turns web-bff's cache OFF, so the throughput and latency scenarios measure
#: aggregation rather than cache hits.
CACHE_OFF_ENV: dict[str, str] = {"BFF_CACHE": "off"}


@dataclass(frozen=True)
class ServerSpec:
    """How to start one gateway process on a given port."""

    name: str
    argv: Callable[[int], list[str]]
    env: Mapping[str, str] = field(default_factory=dict)
    #: started with REDIS_URL naming the benchmark's Redis (on the load core)
    redis: bool = False
    #: started with its OTLP exporter pointed at the upstreams (which accept and drop spans)
    otlp: bool = False
    #: started with identity configured: the upstreams serve the key set (bench/_identity.py)
    jwks: bool = False
    #: the Go baseline: left out where Go is missing (or its build fails)
    go: bool = False


def before(spec: ServerSpec, tree: Path) -> ServerSpec:
    """``spec`` run from another checkout (an earlier commit), to compare in the same run."""
    sources = [
        *sorted((tree / "packages").glob("*/src")),
        *sorted((tree / "services").glob("*/src")),
    ]
    return replace(
        spec,
        name=f"{spec.name}@before",
        env={**spec.env, "PYTHONPATH": os.pathsep.join(map(str, sources))},
    )


#: What is wrong with a target's 200 answer (its body, decoded), or None when it is right.
AnswerCheck = Callable[["Target", Any], "str | None"]


def whole_aggregate(target: Target, data: Any) -> str | None:
    """Every part of the target present and not null, and no part reported failed."""
    if not isinstance(data, dict):
        return "the body is not a JSON object"
    missing = [part for part in target.parts if data.get(part) is None]
    if missing:
        return f"parts missing or null: {', '.join(missing)}"
    if data.get("errors"):
        return f"errors reported: {data['errors']}"
    return None


def whole_page(ids: Sequence[str]) -> AnswerCheck:
    """A whole aggregate whose ``items`` are the tiles of exactly ``ids``, in that order, each
    with every part (:data:`TILE_PARTS`) and none failed."""

    def check(target: Target, data: Any) -> str | None:
        problem = whole_aggregate(target, data)
        if problem is not None:
            return problem
        items = data["items"]
        if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
            return "items is not a list of objects"
        if [tile.get("id") for tile in items] != list(ids):
            return f"items are not the page's {len(ids)} products, in order"
        for tile in items:
            missing = [part for part in TILE_PARTS if tile.get(part) is None]
            if missing:
                return f"tile {tile['id']}: parts missing or null: {', '.join(missing)}"
            if tile.get("failed"):
                return f"tile {tile['id']}: parts failed: {tile['failed']}"
        return None

    return check


@dataclass(frozen=True)
class Target:
    """One thing measured: a route of a server, with what a correct answer contains."""

    name: str
    server: ServerSpec
    path: str
    parts: tuple[str, ...]
    #: sent with every request of the load (and of the answer's check)
    headers: tuple[tuple[str, str], ...] = ()
    #: how a 200 answer is checked before and after the load
    check: AnswerCheck = whole_aggregate
    #: the request's method and body (a write)
    method: str = "GET"
    body: bytes = b""
    #: paths to rotate over under load (distinct products), ``path`` the first of them
    paths: tuple[str, ...] = ()

    @property
    def sources(self) -> int:
        return len(self.parts)


def distinct(target: Target) -> Target:
    """``target`` (a product aggregate) asking for :data:`DISTINCT_IDS` in turn."""
    base = target.path.partition("?id=")[0] + "?id="
    paths = tuple(base + quote(pid, safe="") for pid in DISTINCT_IDS)
    return replace(target, path=paths[0], paths=paths)


_PRODUCT_PATH = f"/api/aggregated/product?id={PRODUCT_ID}"


def _bff_core_app(module: str) -> Callable[[int], list[str]]:
    """The command line of an app served by bff-core's production server, one worker."""
    return lambda port: [
        sys.executable,
        "-m",
        module,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]


WEB_BFF = ServerSpec("web-bff", _bff_core_app("web_bff"), CACHE_OFF_ENV)
AIOHTTP = ServerSpec(
    "aiohttp",
    lambda port: [
        sys.executable,
        str(REPO_ROOT / "bench" / "baselines" / "aiohttp_gateway.py"),
        "--port",
        str(port),
    ],
)
FASTAPI_HTTPX = ServerSpec(
    "fastapi-httpx",
    lambda port: [
        sys.executable,
        str(REPO_ROOT / "bench" / "baselines" / "fastapi_httpx.py"),
        "--port",
        str(port),
    ],
)


def _go_argv(port: int) -> list[str]:
    binary = go_binary()
    if binary is None:
        raise BenchError("the go baseline is not built")  # run_scenario leaves it out first
    return [str(binary), "--port", str(port)]


#: ``baselines/go_gateway``: the product aggregate in Go's net/http (built by the benchmark).
GO = ServerSpec("go", _go_argv, go=True)
SCALING_APP = ServerSpec("scaling-app", _bff_core_app("bench.scaling_app"), CACHE_OFF_ENV)

#: web-bff as shipped but with cross-request batching off (issue 25): one upstream request per
#: part, as before it.
WEB_BFF_BATCH_OFF = ServerSpec(
    "web-bff:batch-off", WEB_BFF.argv, {**CACHE_OFF_ENV, "BFF_BATCH": "off"}
)
#: web-bff as shipped but with BFF_LOOP_FIRST=off: its other threads keep preempting the event
#: loop when the core is saturated (what the setting, on by default, is worth).
WEB_BFF_LOOP_FIRST_OFF = ServerSpec(
    "web-bff:loop-first-off", WEB_BFF.argv, {**CACHE_OFF_ENV, "BFF_LOOP_FIRST": "off"}
)

CONTESTANTS: dict[str, Target] = {
    spec.name: Target(spec.name, spec, _PRODUCT_PATH, PRODUCT_PARTS)
    for spec in (WEB_BFF, WEB_BFF_BATCH_OFF, WEB_BFF_LOOP_FIRST_OFF, GO, AIOHTTP, FASTAPI_HTTPX)
}
#: The batch-window study (``--scenarios batch-window``, not in the default run): web-bff with
#: cross-request batching gathering for one event-loop turn (0) or N microseconds, and off, at
#: 1, 16 and 64 connections against the delayed upstreams: latency against upstream requests.
BATCH_WINDOWS_US = (0, 100, 500)
BATCH_WINDOW_CONNECTIONS = (1, 16, 64)
BATCH_WINDOW_TARGETS = [
    distinct(Target(spec.name, spec, _PRODUCT_PATH, PRODUCT_PARTS))
    for spec in (
        *(
            ServerSpec(
                f"web-bff:window-{us}us",
                WEB_BFF.argv,
                {**CACHE_OFF_ENV, "BFF_BATCH": "on", "BFF_BATCH_WINDOW_US": str(us)},
            )
            for us in BATCH_WINDOWS_US
        ),
        WEB_BFF_BATCH_OFF,
    )
]
#: web-bff with its cache on, for the ``cached`` scenario, next to the same service with the
#: cache off: in-process (the default when REDIS_URL is unset), then with REDIS_URL as every
#: real deployment runs it (its near cache on, as shipped), then without the near cache.
WEB_BFF_CACHED = ServerSpec("web-bff-cached", WEB_BFF.argv, {"BFF_CACHE": "on"})
WEB_BFF_CACHED_REDIS = ServerSpec(
    "web-bff-cached-redis", WEB_BFF.argv, {"BFF_CACHE": "on"}, redis=True
)
WEB_BFF_CACHED_REDIS_NO_NEAR = ServerSpec(
    "web-bff-cached-redis-no-near",
    WEB_BFF.argv,
    {"BFF_CACHE": "on", "BFF_CACHE_NEAR_MS": "0"},
    redis=True,
)
CACHED_TARGETS = [
    CONTESTANTS["web-bff"],
    CONTESTANTS["go"],
    *(
        Target(spec.name, spec, _PRODUCT_PATH, PRODUCT_PARTS)
        for spec in (WEB_BFF_CACHED, WEB_BFF_CACHED_REDIS, WEB_BFF_CACHED_REDIS_NO_NEAR)
    ),
]
#: web-bff with its circuit breakers, retries and hedge off, for the ``resilience`` scenario:
#: what that layer costs per aggregate when every upstream is healthy; and each half alone.
WEB_BFF_BARE = ServerSpec(
    "web-bff-no-resilience",
    WEB_BFF.argv,
    {**CACHE_OFF_ENV, "BFF_BREAKER": "off", "BFF_RETRY_BUDGET_PERCENT": "0"},
)
WEB_BFF_NO_BREAKERS = ServerSpec(
    "web-bff-no-breakers", WEB_BFF.argv, {**CACHE_OFF_ENV, "BFF_BREAKER": "off"}
)
WEB_BFF_NO_RETRIES = ServerSpec(
    "web-bff-no-retries", WEB_BFF.argv, {**CACHE_OFF_ENV, "BFF_RETRY_BUDGET_PERCENT": "0"}
)
RESILIENCE_TARGETS = [
    CONTESTANTS["web-bff"],
    *(
        Target(spec.name, spec, _PRODUCT_PATH, PRODUCT_PARTS)
        for spec in (WEB_BFF_BARE, WEB_BFF_NO_BREAKERS, WEB_BFF_NO_RETRIES)
    ),
]
#: web-bff starting its parts in the declared order, for the ``latency`` scenario: what
#: starting the slowest first (the default) is worth.
WEB_BFF_DECLARED_ORDER = ServerSpec(
    "web-bff-declared-order", WEB_BFF.argv, {**CACHE_OFF_ENV, "BFF_SLOWEST_FIRST": "off"}
)
LATENCY_VARIANTS = [
    Target(s.name, s, _PRODUCT_PATH, PRODUCT_PARTS) for s in [WEB_BFF_DECLARED_ORDER]
]
#: web-bff with its Prometheus metrics off, for the ``telemetry`` scenario: what they cost.
WEB_BFF_NO_METRICS = ServerSpec(
    "web-bff-no-metrics", WEB_BFF.argv, {**CACHE_OFF_ENV, "BFF_METRICS": "off"}
)
#: ... and with the JSON access log on, as the Kubernetes overlays run it.
WEB_BFF_ACCESS_LOG = ServerSpec(
    "web-bff-access-log",
    WEB_BFF.argv,
    {**CACHE_OFF_ENV, "BFF_ACCESS_LOG": "on", "BFF_LOG_FORMAT": "json"},
)
#: ... and with OpenTelemetry tracing on, sampling 1 % and every request (OTLP/HTTP to the
#: upstreams' process, which drops the spans).
WEB_BFF_TRACED_1 = ServerSpec(
    "web-bff-traced-1pct",
    WEB_BFF.argv,
    {**CACHE_OFF_ENV, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    otlp=True,
)
WEB_BFF_TRACED_100 = ServerSpec(
    "web-bff-traced-100pct",
    WEB_BFF.argv,
    {**CACHE_OFF_ENV, "OTEL_TRACES_SAMPLER": "always_on"},
    otlp=True,
)
TELEMETRY_TARGETS = [
    Target(spec.name, spec, _PRODUCT_PATH, PRODUCT_PARTS)
    for spec in (
        WEB_BFF,
        WEB_BFF_NO_METRICS,
        WEB_BFF_ACCESS_LOG,
        WEB_BFF_TRACED_1,
        WEB_BFF_TRACED_100,
    )
]
#: web-bff with every feature of the edge on, for the ``edge`` scenario: identity configured
#: (each request carries a bearer token), rate limits on (far above the load, so nothing is
#: refused: in memory, and in Redis as a fleet runs them) and compression (the requests accept
#: zstd, br and gzip), against the same build with them off and the same requests.
EDGE_HEADERS = (
    ("Authorization", f"Bearer {bench_identity.token()}"),
    ("Accept-Encoding", "gzip, br, zstd"),
)
_EDGE_ON = {
    **CACHE_OFF_ENV,
    "BFF_RATE_LIMIT": "1000000/second;100000000/hour",
    "BFF_COMPRESSION": "on",
}
WEB_BFF_EDGE_OFF = ServerSpec(
    "web-bff-edge-off", WEB_BFF.argv, {**CACHE_OFF_ENV, "BFF_COMPRESSION": "off"}
)
WEB_BFF_EDGE = ServerSpec("web-bff-edge", WEB_BFF.argv, _EDGE_ON, jwks=True)
WEB_BFF_EDGE_REDIS = ServerSpec("web-bff-edge-redis", WEB_BFF.argv, _EDGE_ON, jwks=True, redis=True)
#: ... and each of the three alone, to see what each costs.
WEB_BFF_EDGE_COMPRESSION = ServerSpec(
    "web-bff-edge-compression-only", WEB_BFF.argv, {**CACHE_OFF_ENV, "BFF_COMPRESSION": "on"}
)
WEB_BFF_EDGE_IDENTITY = ServerSpec(
    "web-bff-edge-identity-only",
    WEB_BFF.argv,
    {**CACHE_OFF_ENV, "BFF_COMPRESSION": "off"},
    jwks=True,
)
WEB_BFF_EDGE_LIMITS = ServerSpec(
    "web-bff-edge-limits-only",
    WEB_BFF.argv,
    {**_EDGE_ON, "BFF_COMPRESSION": "off"},
)
EDGE_TARGETS = [
    Target(spec.name, spec, _PRODUCT_PATH, PRODUCT_PARTS, EDGE_HEADERS)
    for spec in (
        WEB_BFF_EDGE_OFF,
        WEB_BFF_EDGE,
        WEB_BFF_EDGE_REDIS,
        WEB_BFF_EDGE_COMPRESSION,
        WEB_BFF_EDGE_IDENTITY,
        WEB_BFF_EDGE_LIMITS,
    )
]
#: The write scenario (instant upstreams): add-to-cart through web-bff, a signed-in user's
#: PUT of a cart line (naturally idempotent: no key), answered with the cart screen read after
#: it; and the same PUT straight at the cart upstream, in the same rounds.
WRITE_PRODUCT = "p-1001"
WRITE_BODY = b'{"quantity": 1}'
WRITE_HEADERS = (
    ("Authorization", f"Bearer {bench_identity.token()}"),
    ("Content-Type", "application/json"),
)
WEB_BFF_WRITE = ServerSpec("web-bff-write", WEB_BFF.argv, CACHE_OFF_ENV, jwks=True)
WRITE_TARGETS = [
    Target(
        "web-bff-write",
        WEB_BFF_WRITE,
        f"/api/cart/items/{WRITE_PRODUCT}",
        ("lines", "count", "total"),
        WRITE_HEADERS,
        method="PUT",
        body=WRITE_BODY,
    )
]
#: The write scenario's loads: 16 connections (which saturated the core in issue 24's run),
#: then 4, reported as ``write@4``.
WRITE_CONNECTIONS = (16, 4)
#: The upstream's own PUT of that line (the user is the token's subject).
WRITE_UPSTREAM = Target(
    "cart-upstream",
    WEB_BFF_WRITE,
    f"/carts/bench-user/items/{WRITE_PRODUCT}",
    (),
    (("Content-Type", "application/json"),),
    method="PUT",
    body=WRITE_BODY,
)
#: The category grid (instant upstreams): web-bff with its cache off and the aiohttp baseline
#: aggregate every grid; web-bff with its cache on shows the cached grid.
CATEGORY_TARGETS = [
    Target(
        spec.name,
        spec,
        f"/api/aggregated/category?slug={CATEGORY_SLUG}",
        CATEGORY_PARTS,
        check=whole_page(CATEGORY_PAGE_IDS),
    )
    for spec in (WEB_BFF, AIOHTTP, WEB_BFF_CACHED)
]
#: ... and against delayed upstreams, the two that aggregate.
CATEGORY_LATENCY_TARGETS = CATEGORY_TARGETS[:2]
SCALING_TARGETS = [
    Target(
        f"/agg/{n}",
        SCALING_APP,
        f"/agg/{n}?id={PRODUCT_ID}",
        tuple(f"s{i:02d}" for i in range(n)),
    )
    for n in SCALING_FAN_OUTS
]


@dataclass(frozen=True)
class Config:
    """What to run, and how long."""

    rounds: int
    duration_s: float
    warmup_s: float
    memory_s: float
    scenarios: tuple[str, ...]
    contestants: tuple[str, ...]
    generator: str
    smoke: bool
    check: bool
    #: a checkout of an earlier commit whose web-bff also runs in the cached and cold-burst
    #: scenarios, so before and after are measured in the same run
    before: Path | None = None


# -- processes -------------------------------------------------------------------------------


@dataclass
class Upstream:
    child: Child
    port: int
    latency: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_upstream(children: Children, latency_ms: Mapping[str, float] | None) -> Upstream:
    """``bench/upstreams.py`` on the load core; returns once it listens (it prints its port)."""
    latency = ",".join(f"{k}={v:g}" for k, v in (latency_ms or {}).items())
    argv = [sys.executable, str(REPO_ROOT / "bench" / "upstreams.py"), "--port", "0"]
    argv += ["--jwks", bench_identity.jwks_json()]
    if latency:
        argv += ["--latency", latency]
    child = children.spawn(
        "upstreams-latency" if latency else "upstreams-instant",
        argv,
        core=children.layout.load_core,
        stdin_pipe=True,  # it exits when this closes
        stdout_pipe=True,
    )
    assert child.process.stdout is not None
    ready, _, _ = select.select([child.process.stdout], [], [], STARTUP_TIMEOUT)
    line = child.process.stdout.readline() if ready else b""
    if not line.strip().isdigit():
        raise BenchError(f"the upstreams did not start:\n{child.log_tail()}")
    return Upstream(child, int(line), latency or "none")


@dataclass
class Redis:
    """The benchmark's own redis-server, on the load core with the upstreams."""

    child: Child
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(children: Children) -> Redis | None:
    """A private ``redis-server`` (no persistence) on the load core, or ``None`` when the
    binary is missing (the contestants that need it are then left out, and the report says so)."""
    binary = shutil.which("redis-server")
    if binary is None:
        warn("  redis-server not found: the contestants with REDIS_URL are left out")
        return None
    port = free_port()
    child = children.spawn(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        core=children.layout.load_core,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if not child.alive():
            raise BenchError(f"redis-server exited:\n{child.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return Redis(child, port)
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError("redis-server did not answer PING")


@dataclass
class Server:
    """A running gateway process."""

    spec: ServerSpec
    child: Child
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ensure_alive(self) -> None:
        if not self.child.alive():
            raise BenchError(
                f"{self.spec.name} died (exit status {self.child.process.returncode}):\n"
                f"{self.child.log_tail()}"
            )


def _spawn_server(
    children: Children, spec: ServerSpec, upstream: Upstream, redis: Redis | None = None
) -> Server:
    port = free_port()
    env = {
        "PRODUCT_SERVICE_URL": upstream.url,
        "INVENTORY_SERVICE_URL": upstream.url,
        "PRICING_SERVICE_URL": upstream.url,
        "REVIEWS_SERVICE_URL": upstream.url,
        "CATEGORY_SERVICE_URL": upstream.url,
        "RECOMMENDATIONS_SERVICE_URL": upstream.url,
        # The write path's services: unset, a BFF would write to the demo's default address.
        "CART_SERVICE_URL": upstream.url,
        "ORDERS_SERVICE_URL": upstream.url,
        **spec.env,
    }
    if spec.otlp:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = upstream.url
    if spec.jwks:
        env["BFF_JWT_JWKS_URL"] = upstream.url + "/.well-known/jwks.json"
        env["BFF_JWT_ISSUER"] = bench_identity.ISSUER
        env["BFF_JWT_AUDIENCE"] = bench_identity.AUDIENCE
    if spec.redis:
        if redis is None:
            raise BenchError(f"{spec.name} needs the benchmark's Redis")
        env["REDIS_URL"] = redis.url
    child = children.spawn(
        spec.name, spec.argv(port), core=children.layout.gateway_core, env=child_environment(env)
    )
    return Server(spec, child, port)


def start_servers(
    children: Children,
    specs: Sequence[ServerSpec],
    upstream: Upstream,
    redis: Redis | None = None,
) -> list[Server]:
    """Start every server at once (they import in parallel), then wait until each is healthy."""
    servers = [_spawn_server(children, spec, upstream, redis) for spec in specs]
    deadline = time.monotonic() + STARTUP_TIMEOUT
    for index, server in enumerate(servers):
        for attempt in range(START_ATTEMPTS):
            if _wait_healthy(server, deadline):
                break
            log = server.child.log_tail()
            exited = server.child.process.poll()
            children.stop(server.child)
            if "in use" not in log or attempt == START_ATTEMPTS - 1:
                what = (
                    f"did not answer /healthz within {STARTUP_TIMEOUT:.0f} s"
                    if exited is None
                    else f"exited with status {exited} before answering /healthz"
                )
                raise BenchError(f"{server.spec.name} {what}; its output:\n{log}")
            warn(f"  {server.spec.name}: port {server.port} was taken, retrying on another")
            server = servers[index] = _spawn_server(children, server.spec, upstream, redis)
            deadline = max(deadline, time.monotonic() + STARTUP_TIMEOUT)
    return servers


def _wait_healthy(server: Server, deadline: float) -> bool:
    # Bounded by the deadline; 20 polls a second.
    while time.monotonic() < deadline:
        if not server.child.alive():
            return False
        status, _ = http_get(server.url("/healthz"), timeout=2.0)
        if status == 200:
            return True
        time.sleep(0.05)
    return False


def check_answer(server: Server, target: Target) -> None:
    """One aggregate must answer 200, and its body pass the target's check (by default: every
    part present, no part failed). A target of distinct products: the first
    :data:`CHECK_DISTINCT` of them asked at once, each answer the product asked (every part's
    id is the id asked)."""
    if target.paths:
        with ThreadPoolExecutor(max_workers=CHECK_DISTINCT) as pool:
            list(
                pool.map(
                    lambda path: _check_one(server, target, path), target.paths[:CHECK_DISTINCT]
                )
            )
        return
    _check_one(server, target, target.path)


def _check_one(server: Server, target: Target, path: str) -> None:
    # The same headers as the load, but an uncompressed answer, to read it.
    headers = {k: v for k, v in target.headers if k.lower() != "accept-encoding"}
    status, body = http_get(
        server.url(path),
        timeout=10.0,
        headers=headers,
        method=target.method,
        body=target.body or None,
    )
    data = json_or_none(body)
    problem = f"status {status}" if status != 200 else target.check(target, data)
    if problem is None and target.paths:
        problem = _not_the_product_asked(path, data)
    if problem is not None:
        excerpt = body[:500].decode(errors="replace")
        raise BenchError(
            f"{target.name}: {target.method} {path} answered wrongly ({problem}): "
            f"{excerpt}\n{server.child.log_tail()}"
        )


def _not_the_product_asked(path: str, data: Any) -> str | None:
    """What in a whole product aggregate is not about the product ``path`` asks for."""
    asked = unquote(path.partition("?id=")[2])
    keys = {"product": "id", "inventory": "product_id", "pricing": "product_id"}
    keys["reviews"] = "product_id"
    wrong = [
        f"{part}.{key} = {data[part].get(key)!r}"
        for part, key in keys.items()
        if isinstance(data.get(part), dict) and data[part].get(key) != asked
    ]
    return f"not the product asked, {asked!r}: {', '.join(wrong)}" if wrong else None


def upstream_requests(upstream: Upstream) -> int | None:
    """The requests the upstreams have received so far, all services (``GET /stats``), or
    None when they do not say."""
    status, body = http_get(f"{upstream.url}/stats", timeout=5.0)
    counts = json_or_none(body) if status == 200 else None
    if not isinstance(counts, dict):
        return None
    return sum(v for v in counts.values() if isinstance(v, int))


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Headroom:
    """Where the CPU went during one run (percent of one core, or of the core's time)."""

    wall_s: float
    gateway_cpu_s: float
    gateway_cpu_pct: float
    gateway_core_busy_pct: float
    upstream_cpu_pct: float
    load_core_busy_pct: float
    #: the contestant's tree changed during the run (a worker died or was respawned)
    tree_changed: bool


@dataclass
class RssSample:
    at_s: float
    tree_mb: float
    workers_mb: float


@dataclass
class Run:
    scenario: str
    target: str
    phase: str  # "warm-up", "round" or "long"
    round: int
    load: LoadResult
    headroom: Headroom
    cpu_us_per_request: float
    #: seconds waited before the run for the gateway core to go idle
    settle_s: float = 0.0
    rss: list[RssSample] = field(default_factory=list)
    #: requests the upstreams received during the run (their own count), if they said
    upstream_requests: int | None = None

    @property
    def upstream_per_request(self) -> float | None:
        """Upstream requests per answered aggregate (or write).

        An upper bound: the aggregates still in flight when wrk stops (at most one per
        connection) made their upstream requests but are not counted as answered."""
        if self.upstream_requests is None or not self.load.requests:
            return None
        return self.upstream_requests / self.load.requests


@dataclass
class Bench:
    """What every run needs: the process registry (with the core layout) and the settings."""

    children: Children
    config: Config
    #: a smoke run's targets already run (see :func:`_smoke_targets`)
    smoked: set[tuple[str, str, str]] = field(default_factory=set)

    def measure(
        self,
        scenario: str,
        target: Target,
        server: Server,
        upstream: Upstream,
        *,
        connections: int,
        seconds: float,
        phase: str,
        round_no: int = 0,
        on_poll: Callable[[], None] | None = None,
    ) -> Run:
        """One load run against ``target`` with the CPU and core readings around it."""
        layout = self.children.layout
        settle_s = self.settle()
        tree_before = server.child.refresh_tree()
        before: dict[str, Any] = {}

        def take_readings() -> None:
            before["requests"] = upstream_requests(upstream)
            before["gateway"] = tree_ticks(tree_before)
            before["upstream"] = tree_ticks([upstream.child.pid])
            before["cores"] = core_times()
            before["started"] = time.monotonic()

        load = run_load(
            self.children,
            self.config.generator,
            server.url(target.path),
            connections,
            seconds,
            on_start=take_readings,
            on_poll=on_poll,
            headers=target.headers,
            method=target.method,
            body=target.body,
            paths=target.paths,
        )
        wall = time.monotonic() - before["started"]
        gateway_before: dict[int, int] = before["gateway"]
        upstream_before: dict[int, int] = before["upstream"]
        cores_before: CoreTimes = before["cores"]
        cores_after = core_times()
        upstream_after = tree_ticks([upstream.child.pid])
        gateway_after = tree_ticks(tree_before)
        requests_after = upstream_requests(upstream)
        tree_after = server.child.refresh_tree()
        server.ensure_alive()
        gateway_cpu = ticks_to_seconds(
            sum(gateway_after.get(pid, ticks) - ticks for pid, ticks in gateway_before.items())
        )
        upstream_cpu = ticks_to_seconds(
            upstream_after.get(upstream.child.pid, 0) - upstream_before.get(upstream.child.pid, 0)
        )
        headroom = Headroom(
            wall_s=wall,
            gateway_cpu_s=gateway_cpu,
            gateway_cpu_pct=100 * gateway_cpu / wall,
            gateway_core_busy_pct=100
            * cores_before.busy_fraction(cores_after, layout.gateway_core),
            upstream_cpu_pct=100 * upstream_cpu / wall,
            load_core_busy_pct=100 * cores_before.busy_fraction(cores_after, layout.load_core),
            tree_changed=sorted(tree_before) != sorted(tree_after),
        )
        if headroom.tree_changed:
            warn(f"  WARNING: {target.name}'s process tree changed during the run (worker died?)")
        run = Run(
            scenario=scenario,
            target=target.name,
            phase=phase,
            round=round_no,
            load=load,
            headroom=headroom,
            cpu_us_per_request=1e6 * gateway_cpu / load.requests if load.requests else 0.0,
            settle_s=settle_s,
            upstream_requests=None
            if requests_after is None or before["requests"] is None
            else requests_after - before["requests"],
        )
        _progress(run)
        return run

    def settle(self) -> float:
        """Wait (bounded) until the gateway core is idle; return how long that took.

        A contestant that fell behind keeps working after the load generator stopped: the
        requests already in its queue. FastAPI + httpx needs over a second to drain 64 of them,
        and that CPU must not be charged to whoever runs next on the core.
        """
        if self.config.smoke:
            # A smoke run measures nothing, so nothing to protect from a neighbour's backlog.
            return 0.0
        core = self.children.layout.gateway_core
        started = time.monotonic()
        while time.monotonic() - started < SETTLE_TIMEOUT:
            before = core_times()
            time.sleep(SETTLE_WINDOW)
            if before.busy_fraction(core_times(), core) <= SETTLE_MAX_BUSY:
                return time.monotonic() - started
        warn(f"  WARNING: the gateway core stayed busy for {SETTLE_TIMEOUT:.0f} s; measuring now")
        return time.monotonic() - started

    def load_upstream_alone(
        self, upstream: Upstream, path: str, connections: int, *, write: Target | None = None
    ) -> LoadResult:
        """The same load straight at one upstream: the floor as the load generator sees it
        (with ``write``: its method, body and headers)."""
        method = "GET" if write is None else write.method
        load = run_load(
            self.children,
            self.config.generator,
            f"{upstream.url}{path}",
            connections,
            self.config.duration_s,
            method=method,
            body=b"" if write is None else write.body,
            headers=() if write is None else write.headers,
        )
        if load.errors:
            raise BenchError(f"the upstreams answered {load.errors} errors to {method} {path}")
        warn(
            f"  upstream alone {method} {path}: p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms"
        )
        return load


def _progress(run: Run) -> None:
    load, room = run.load, run.headroom
    label = "warm-up" if run.phase == "warm-up" else f"{run.phase} {run.round}"
    errors = f", {load.errors} ERRORS" if load.errors else ""
    settled = f" (settled {run.settle_s:.1f} s)" if run.settle_s >= 0.5 else ""
    per = run.upstream_per_request
    upstream = "" if per is None else f"  {per:4.2f} up/agg"
    failed = f", {load.failed_parts} FAILED PARTS" if load.failed_parts else ""
    warn(
        f"  [{run.scenario}] {run.target:<14} {label:<9} {load.requests_per_s:8,.0f}/s  "
        f"p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms  "
        f"gateway {room.gateway_cpu_pct:3.0f}%  upstream {room.upstream_cpu_pct:3.0f}%"
        f"  load core {room.load_core_busy_pct:3.0f}%{upstream}"
        f"{errors}{failed}{settled}"
    )


# -- summaries -------------------------------------------------------------------------------


@dataclass
class Summary:
    """One target over a scenario's rounds: medians, spread, worst headroom, all errors."""

    target: str
    sources: int
    rounds: int
    requests_per_s: float
    requests_per_s_rounds: list[float]
    #: (max - min) / median of the rounds' requests/s: the noise between rounds
    spread_pct: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    cpu_us_per_request: float
    gateway_cpu_pct: float
    gateway_core_busy_pct: float
    upstream_cpu_pct_max: float
    load_core_busy_pct_max: float
    requests: int
    non_2xx: int
    socket_errors: int
    partial: int
    tree_changed: bool
    #: failed parts named in the answers' ``errors``, over every run (warm-up included)
    failed_parts: int = 0
    #: median over rounds of upstream requests per answered aggregate (the upstreams' counts)
    upstream_per_request: float | None = None
    upstream_per_request_rounds: list[float] = field(default_factory=list)
    #: p50 of each measured round, in order (for per-round comparisons)
    p50_ms_rounds: list[float] = field(default_factory=list)

    @property
    def errors(self) -> int:
        """Answers that were not complete successes (a failed part is in one of them)."""
        return self.non_2xx + self.socket_errors + self.partial


def summarise(target: Target, runs: Sequence[Run]) -> Summary:
    measured = [r for r in runs if r.phase != "warm-up"] or list(runs)
    rps = [r.load.requests_per_s for r in measured]
    per_request = [p for r in measured if (p := r.upstream_per_request) is not None]
    median_rps = statistics.median(rps)

    def median(values: Sequence[float]) -> float:
        return statistics.median(values) if values else 0.0

    return Summary(
        target=target.name,
        sources=target.sources,
        rounds=len(measured),
        requests_per_s=median_rps,
        requests_per_s_rounds=rps,
        spread_pct=100 * (max(rps) - min(rps)) / median_rps if median_rps else 0.0,
        p50_ms=median([r.load.p50_ms for r in measured]),
        p75_ms=median([r.load.p75_ms for r in measured]),
        p90_ms=median([r.load.p90_ms for r in measured]),
        p99_ms=median([r.load.p99_ms for r in measured]),
        cpu_us_per_request=median([r.cpu_us_per_request for r in measured]),
        gateway_cpu_pct=median([r.headroom.gateway_cpu_pct for r in measured]),
        gateway_core_busy_pct=median([r.headroom.gateway_core_busy_pct for r in measured]),
        upstream_cpu_pct_max=max(r.headroom.upstream_cpu_pct for r in runs),
        load_core_busy_pct_max=max(r.headroom.load_core_busy_pct for r in runs),
        # Errors count in every run, warm-up included: a gateway that fails while warming up
        # is failing.
        requests=sum(r.load.requests for r in runs),
        non_2xx=sum(r.load.non_2xx for r in runs),
        socket_errors=sum(sum(r.load.socket_errors.values()) for r in runs),
        partial=sum(r.load.partial for r in runs),
        tree_changed=any(r.headroom.tree_changed for r in runs),
        failed_parts=sum(r.load.failed_parts for r in runs),
        upstream_per_request=statistics.median(per_request) if per_request else None,
        upstream_per_request_rounds=per_request,
        p50_ms_rounds=[r.load.p50_ms for r in measured],
    )


@dataclass
class ScenarioResult:
    name: str
    connections: int
    upstream_latency: str
    summaries: list[Summary]
    runs: list[Run]
    seconds: float
    #: upstream paths loaded directly, once per round each (latency scenarios): the calls
    #: an answer must wait for one after another, the floor the gateways sit on, as the same
    #: load generator sees it. Path -> one load per round.
    upstream_alone: dict[str, list[LoadResult]] = field(default_factory=dict)

    def summary(self, target: str) -> Summary | None:
        return next((s for s in self.summaries if s.target == target), None)

    def alone_ms(self, path: str) -> tuple[float, float]:
        """Medians over rounds of ``path``'s own p50 and p99."""
        loads = self.upstream_alone[path]
        p50 = statistics.median(r.p50_ms for r in loads)
        return p50, statistics.median(r.p99_ms for r in loads)

    @property
    def floor_p50_ms(self) -> float | None:
        """The sum over the chain's upstream paths of each one's median p50 (one path: the
        slowest upstream's own)."""
        if not self.upstream_alone:
            return None
        return sum(self.alone_ms(path)[0] for path in self.upstream_alone)

    @property
    def floor_p99_ms(self) -> float | None:
        """The upstream's own p99, for a chain of one (a sum of p99s is no chain's p99)."""
        if len(self.upstream_alone) != 1:
            return None
        return self.alone_ms(next(iter(self.upstream_alone)))[1]


def run_scenario(
    bench: Bench,
    name: str,
    targets: Sequence[Target],
    upstream: Upstream,
    connections: int,
    reference_paths: Sequence[str] = (),
    redis: Redis | None = None,
    reference_write: Target | None = None,
) -> ScenarioResult:
    """Start the targets' servers, warm each target up, then the rotated rounds.

    ``reference_paths``: also load each of those upstream paths directly, alone, in every
    round: the floor the contestants are compared with (the calls an answer waits for one
    after another). ``redis``: the Redis of the targets that need one; without it, they are
    left out.
    """
    started = time.monotonic()
    if redis is None:
        targets = [t for t in targets if not t.server.redis]
    if any(t.server.go for t in targets) and go_binary() is None:
        targets = [t for t in targets if not t.server.go]
    if bench.config.smoke:
        targets = _smoke_targets(bench, targets)
    specs = list({t.server.name: t.server for t in targets}.values())
    warn(f"[{name}] starting {', '.join(s.name for s in specs)}")
    servers = start_servers(bench.children, specs, upstream, redis)
    by_name = {s.spec.name: s for s in servers}
    runs: dict[str, list[Run]] = {t.name: [] for t in targets}
    upstream_alone: dict[str, list[LoadResult]] = {path: [] for path in reference_paths}
    try:
        for target in targets:
            check_answer(by_name[target.server.name], target)
        for target in targets if bench.config.warmup_s > 0 else ():
            runs[target.name].append(
                bench.measure(
                    name,
                    target,
                    by_name[target.server.name],
                    upstream,
                    connections=connections,
                    seconds=bench.config.warmup_s,
                    phase="warm-up",
                )
            )
        for round_no in range(1, bench.config.rounds + 1):
            # Rotate the order each round, so drift (thermal, noisy neighbours) is shared.
            shift = (round_no - 1) % len(targets)
            for target in [*targets[shift:], *targets[:shift]]:
                runs[target.name].append(
                    bench.measure(
                        name,
                        target,
                        by_name[target.server.name],
                        upstream,
                        connections=connections,
                        seconds=bench.config.duration_s,
                        phase="round",
                        round_no=round_no,
                    )
                )
            for path in reference_paths:
                upstream_alone[path].append(
                    bench.load_upstream_alone(upstream, path, connections, write=reference_write)
                )
        for target in targets:
            # Still answering correctly after the load?
            check_answer(by_name[target.server.name], target)
    finally:
        bench.children.stop(*(s.child for s in servers))
    return ScenarioResult(
        name=name,
        connections=connections,
        upstream_latency=upstream.latency,
        summaries=[summarise(t, runs[t.name]) for t in targets],
        runs=[r for t in targets for r in runs[t.name]],
        seconds=time.monotonic() - started,
        upstream_alone=upstream_alone,
    )


def _smoke_targets(bench: Bench, targets: Sequence[Target]) -> list[Target]:
    """A smoke run's share of ``targets``: those not already run by an earlier scenario.

    A smoke run only keeps bench/ from rotting, and a server that answered the same route in
    one scenario runs the same code in the next (the scenario's own code still runs with
    what is left): starting it again and loading it again only cost the smoke run time.
    web-bff as shipped always stays, since each scenario's report compares the others with
    it; and a scenario never runs with no target at all.
    """
    kept = [
        t for t in targets if t.server.name == WEB_BFF.name or _smoke_key(t) not in bench.smoked
    ] or list(targets[:1])
    bench.smoked.update(_smoke_key(t) for t in kept)
    left_out = [t.name for t in targets if t not in kept]
    if left_out:
        warn(f"  smoke: already run, left out here: {', '.join(left_out)}")
    return kept


def _smoke_key(target: Target) -> tuple[str, str, str]:
    # The route, not the product asked: the distinct-products variant runs the same code.
    return (target.server.name, target.method, target.path.partition("?")[0])


# -- memory ----------------------------------------------------------------------------------

#: Growth of the web-bff tree's RSS that still counts as flat: either bound suffices.
FLAT_MB = 5.0
#: The memory scenario's warm-up, at least.
MEMORY_WARMUP_S = 1.0
FLAT_PCT = 5.0


@dataclass
class MemoryResult:
    connections: int
    long_run_s: float
    tree_before_mb: float
    workers_before_mb: float
    tree_after_mb: float
    workers_after_mb: float
    growth_mb: float
    growth_pct: float
    workers_growth_mb: float
    flat: bool
    warmup: Run
    long_run: Run
    seconds: float

    @property
    def errors(self) -> int:
        return self.warmup.load.errors + self.long_run.load.errors


def _rss(server: Server, since: float) -> RssSample:
    tree = server.child.refresh_tree()
    workers = [pid for pid in tree if pid != server.child.pid]
    return RssSample(
        at_s=round(time.monotonic() - since, 2),
        tree_mb=sum(rss_kib(pid) for pid in tree) * 1024 / 1e6,
        workers_mb=sum(rss_kib(pid) for pid in workers) * 1024 / 1e6,
    )


def run_memory(bench: Bench, upstream: Upstream, connections: int) -> MemoryResult:
    """web-bff's resident memory after warm-up, then after a long run at full load."""
    started = time.monotonic()
    config = bench.config
    target = CONTESTANTS["web-bff"]
    warn("[memory] starting web-bff")
    (server,) = start_servers(bench.children, [target.server], upstream)
    try:
        check_answer(server, target)
        warmup = bench.measure(
            "memory",
            target,
            server,
            upstream,
            connections=connections,
            # RSS is read after a warm-up, even in a smoke run (which warms nothing else up).
            seconds=max(config.warmup_s, MEMORY_WARMUP_S),
            phase="warm-up",
        )
        long_started = time.monotonic()
        before = _rss(server, long_started)
        if not before.workers_mb:
            raise BenchError("web-bff has no worker process: is granian still its server?")
        samples: list[RssSample] = [before]
        # About every 5 s in a long run, every 0.5 s in a short one.
        every = 5.0 if config.memory_s >= 20 else 0.5
        last = [long_started]

        def sample() -> None:
            if time.monotonic() - last[0] >= every:
                last[0] = time.monotonic()
                samples.append(_rss(server, long_started))

        long_run = bench.measure(
            "memory",
            target,
            server,
            upstream,
            connections=connections,
            seconds=config.memory_s,
            phase="long",
            round_no=1,
            on_poll=sample,
        )
        after = _rss(server, long_started)
        samples.append(after)
        long_run.rss = samples
        check_answer(server, target)
    finally:
        bench.children.stop(server.child)
    growth = after.tree_mb - before.tree_mb
    growth_pct = 100 * growth / before.tree_mb
    return MemoryResult(
        connections=connections,
        long_run_s=long_run.load.duration_s,
        tree_before_mb=before.tree_mb,
        workers_before_mb=before.workers_mb,
        tree_after_mb=after.tree_mb,
        workers_after_mb=after.workers_mb,
        growth_mb=growth,
        growth_pct=growth_pct,
        workers_growth_mb=after.workers_mb - before.workers_mb,
        flat=growth <= FLAT_MB or growth_pct <= FLAT_PCT,
        warmup=warmup,
        long_run=long_run,
        seconds=time.monotonic() - started,
    )
