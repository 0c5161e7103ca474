"""The gateway benchmark's report: environment, markdown tables, targets, JSON.

Every table carries the headroom columns (contestant CPU, upstream CPU, busy share of both
cores), so a reader can check that the upstreams and the load generator were never the
bottleneck: the gateway core near 100 % busy and the load core well below it means the row
measures the contestant.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ._burst import BURST_LATENCY_MS, BurstResult
from ._go import go_version
from ._harness import (
    CACHE_OFF_ENV,
    CATEGORY_ITEMS,
    CATEGORY_LATENCY,
    CATEGORY_SLUG,
    CATEGORY_UPSTREAM_LATENCY_MS,
    LATENCY_FLOOR_MS,
    PRODUCT_ID,
    UPSTREAM_LATENCY_MS,
    Config,
    MemoryResult,
    ScenarioResult,
    Summary,
)
from ._load import wrk_version
from ._procs import Layout

__all__ = ["Results", "TargetCheck", "environment", "evaluate_targets", "markdown"]

PACKAGES = (
    "granian",
    "litestar",
    "msgspec",
    "uvloop",
    "pyreqwest",
    "aiohttp",
    "httpx",
    "fastapi",
    "uvicorn",
)
#: web-bff's targets. Issue 25 (cross-request batching), measured on distinct products: at
#: least as many aggregates/s as a plain Go net/http aggregator making four calls per page
#: (bench/baselines/go_gateway) at 64 connections, at most one upstream request per aggregate
#: there, a p50 at 16 connections at most 0.2 ms over batching off and 0.5 ms over Go's, no
#: failed part; each a median over at least 5 rounds. (Issue 15's 2x aiohttp is retired: its
#: ratio moved with the machine.)
MIN_RATIO_GO = 1.0
MAX_UPSTREAM_PER_AGGREGATE = 1.0
MAX_P50_OVER_BATCH_OFF_MS = 0.2
MIN_TARGET_ROUNDS = 5
MAX_P50_OVER_GO_MS = 0.5
MIN_RATIO_CACHED_GO = 2.0
MIN_RATIO_FASTAPI = 10.0
MAX_P50_OVER_FLOOR_MS = 1.0
MAX_P99_OVER_FLOOR_MS = 6.0
#: The category grid's p50 over its floor: the category's own p50 + the reviews batch's.
MAX_GRID_P50_OVER_FLOOR_MS = 2.0
#: web-bff with REDIS_URL (its near cache on), against its in-process cache: issue 9.
MIN_RATIO_REDIS_CACHED = 0.8
#: The edge on (identity, limits in memory, compression) against off: at most 10 % slower.
MIN_RATIO_EDGE = 0.9


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def environment(layout: Layout, generator: str, before: Path | None = None) -> dict[str, str]:
    described = {}
    if before is not None:
        described["before (…@before contestants)"] = _git_describe(before)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} online; usable by the bench: "
        + ",".join(map(str, layout.usable)),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        **{package: _version(package) for package in PACKAGES},
        "wrk": wrk_version() or "not installed",
        "go": go_version() or "not installed (Debian's golang-go): the go baseline is left out",
        "load generator": (
            "wrk (1 thread, closed loop, keep-alive)"
            if generator == "wrk"
            else "built-in aiohttp closed loop (wrk not found: results less precise)"
        ),
        "pinning": layout.describe(),
        "contestant settings": "defaults (BFF_* and REDIS_URL removed from their environment); "
        + (
            "cache off: " + ", ".join(f"{k}={v}" for k, v in CACHE_OFF_ENV.items())
            if CACHE_OFF_ENV
            else "no cache to turn off yet"
        ),
        **described,
    }


def _git_describe(tree: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(tree)


@dataclass
class TargetCheck:
    name: str
    goal: str
    measured: str
    status: str  # "PASS", "FAIL" or "SKIP" (not measured in this run)


@dataclass
class Results:
    environment: dict[str, str]
    config: Config
    scenarios: dict[str, ScenarioResult] = field(default_factory=dict)
    memory: MemoryResult | None = None
    burst: BurstResult | None = None
    targets: list[TargetCheck] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def error_lines(self) -> list[str]:
        """One line per contestant that answered anything but complete successes."""
        lines = []
        for scenario in self.scenarios.values():
            for s in scenario.summaries:
                if s.errors or s.tree_changed or s.failed_parts:
                    lines.append(f"{scenario.name}/{s.target}: {_errors(s)}")
        if self.burst is not None:
            for b in self.burst.summaries:
                if b.non_200 or b.partial:
                    lines.append(
                        f"cold-burst/{b.contestant}: {b.non_200} non-200, {b.partial} partial"
                    )
        if self.memory is not None:
            long_run = self.memory.long_run
            if self.memory.errors or long_run.headroom.tree_changed:
                lines.append(
                    f"memory/web-bff: {self.memory.errors} error answers"
                    + (", worker restarted" if long_run.headroom.tree_changed else "")
                )
        return lines


def _errors(s: Summary) -> str:
    if not s.errors and not s.tree_changed and not s.failed_parts:
        return "0"
    parts = []
    if s.non_2xx:
        parts.append(f"{s.non_2xx} non-2xx")
    if s.socket_errors:
        parts.append(f"{s.socket_errors} socket")
    if s.partial:
        parts.append(f"{s.partial} partial")
    if s.failed_parts:
        parts.append(f"{s.failed_parts} failed parts")
    if s.tree_changed:
        parts.append("worker restarted")
    return "**" + ", ".join(parts) + "**"


def _headroom_cells(s: Summary) -> str:
    return (
        f"{s.gateway_cpu_pct:.0f} % | {s.gateway_core_busy_pct:.0f} % | "
        f"{s.upstream_cpu_pct_max:.0f} % | {s.load_core_busy_pct_max:.0f} %"
    )


def _upstream_cell(s: Summary) -> str:
    """Upstream requests per aggregate: the median over rounds, and the rounds' range."""
    per, rounds = s.upstream_per_request, s.upstream_per_request_rounds
    if per is None:
        return "?"
    if len(rounds) < 2:
        return f"{per:.2f}"
    return f"{per:.2f} ({min(rounds):.2f}..{max(rounds):.2f})"


def _failed_cell(s: Summary) -> str:
    return f"**{s.failed_parts:,}**" if s.failed_parts else "0"


_HEADROOM_HEADER = (
    "contestant CPU | gateway core busy | upstream CPU (max) | load core busy (max)",
    "---:|---:|---:|---:",
)


def _write_table(result: ScenarioResult) -> list[str]:
    lines = [
        f"## write: add-to-cart, {result.connections} connections; instant upstreams",
        "",
        "`PUT /api/cart/items/{id}` with a token through web-bff (the cart upstream's `PUT`, "
        "then the cart screen read after it), against the cart upstream's own `PUT` in the "
        "same rounds.",
        "",
        "| contestant | p50 ms | p99 ms | writes/s | CPU µs per write | upstream req/write "
        f"| errors | {_HEADROOM_HEADER[0]} |",
        f"|---|---:|---:|---:|---:|---:|---:|{_HEADROOM_HEADER[1]}|",
    ]
    for s in result.summaries:
        lines.append(
            f"| {s.target} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | {s.requests_per_s:,.0f} | "
            f"{s.cpu_us_per_request:,.0f} | {_upstream_cell(s)} | {_errors(s)} | "
            f"{_headroom_cells(s)} |"
        )
    floor50, floor99 = result.floor_p50_ms, result.floor_p99_ms
    if floor50 is not None and floor99 is not None:
        lines += ["", f"The cart upstream alone: p50 {floor50:.2f} ms, p99 {floor99:.2f} ms."]
        lines += [
            f"{s.target} adds {s.p50_ms - floor50:+.2f} ms at p50 and {s.p99_ms - floor99:+.2f} "
            "ms at p99 to a write."
            for s in result.summaries
        ]
    return lines


def _latency_table(result: ScenarioResult) -> list[str]:
    services = ", ".join(f"{k} {v} ms" for k, v in UPSTREAM_LATENCY_MS.items())
    lines = [
        f"## latency: {result.connections} connections; upstreams delayed ({services}), "
        f"floor {LATENCY_FLOOR_MS:g} ms",
        "",
        "| contestant | p50 ms | p99 ms | p50 over floor | p99 over floor | p75 ms | p90 ms "
        "| agg/s | upstream req/agg (rounds) | failed parts | errors "
        f"| {_HEADROOM_HEADER[0]} |",
        f"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{_HEADROOM_HEADER[1]}|",
    ]
    for s in result.summaries:
        lines.append(
            f"| {s.target} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | "
            f"+{s.p50_ms - LATENCY_FLOOR_MS:.2f} ms | +{s.p99_ms - LATENCY_FLOOR_MS:.2f} ms | "
            f"{s.p75_ms:.2f} | {s.p90_ms:.2f} | {s.requests_per_s:,.0f} | {_upstream_cell(s)} | "
            f"{_failed_cell(s)} | {_errors(s)} | {_headroom_cells(s)} |"
        )
    lines += ["", _DISTINCT_NOTE]
    for other in ("go", "web-bff:batch-off", "web-bff:loop-first-off"):
        web, them = result.summary("web-bff"), result.summary(other)
        if web is None or them is None:
            continue
        rounds = _round_differences(result, "web-bff", other)
        lines.append(
            f"web-bff's p50 over {other}'s: {web.p50_ms - them.p50_ms:+.2f} ms (medians; "
            f"per round {min(rounds):+.2f}..{max(rounds):+.2f} ms)."
        )
    floor50, floor99 = result.floor_p50_ms, result.floor_p99_ms
    if floor50 is not None and floor99 is not None:
        lines += [
            "",
            f"The slowest upstream alone (`GET /reviews/{PRODUCT_ID}`, {result.connections} "
            "connections, same load generator, once per round, medians): "
            f"p50 {floor50:.2f} ms, p99 {floor99:.2f} ms; that is "
            f"+{floor50 - LATENCY_FLOOR_MS:.2f} / +{floor99 - LATENCY_FLOOR_MS:.2f} ms over the "
            "nominal 40 ms before any gateway is involved (the upstream's millisecond timers, "
            "the loopback, the load generator). What each gateway adds to it:",
            "",
            "| contestant | p50 added | p99 added |",
            "|---|---:|---:|",
        ]
        for s in result.summaries:
            lines.append(
                f"| {s.target} | {s.p50_ms - floor50:+.2f} ms | {s.p99_ms - floor99:+.2f} ms |"
            )
    shipped, declared = result.summary("web-bff"), result.summary("web-bff-declared-order")
    if shipped is not None and declared is not None:
        lines += [
            "",
            "`web-bff-declared-order` is web-bff with `BFF_SLOWEST_FIRST=off` (its four parts "
            "start in the declared order, the slowest, reviews, last): p50 "
            f"{declared.p50_ms:.2f} ms against {shipped.p50_ms:.2f} ms as shipped "
            f"({shipped.p50_ms - declared.p50_ms:+.2f} ms).",
        ]
    return lines


def _batch_window_table(result: ScenarioResult) -> list[str]:
    services = ", ".join(f"{k} {v} ms" for k, v in UPSTREAM_LATENCY_MS.items())
    lines = [
        f"## batch-window: {result.connections} connection(s); upstreams delayed ({services}); "
        "distinct products",
        "",
        "web-bff with `BFF_BATCH_WINDOW_US` 0 (one event-loop turn), 100 and 500, and with "
        "`BFF_BATCH=off`: what a longer window costs in latency and saves in upstream requests.",
        "",
        "| contestant | p50 ms | p50 over floor | p99 ms | agg/s | upstream req/agg (rounds) "
        f"| failed parts | errors | {_HEADROOM_HEADER[0]} |",
        f"|---|---:|---:|---:|---:|---:|---:|---:|{_HEADROOM_HEADER[1]}|",
    ]
    for s in result.summaries:
        lines.append(
            f"| {s.target} | {s.p50_ms:.2f} | +{s.p50_ms - LATENCY_FLOOR_MS:.2f} ms | "
            f"{s.p99_ms:.2f} | {s.requests_per_s:,.0f} | {_upstream_cell(s)} | "
            f"{_failed_cell(s)} | {_errors(s)} | {_headroom_cells(s)} |"
        )
    return lines


def _ratio(result: ScenarioResult, numerator: str, denominator: str) -> float | None:
    top, bottom = result.summary(numerator), result.summary(denominator)
    if top is None or bottom is None or not bottom.requests_per_s:
        return None
    return top.requests_per_s / bottom.requests_per_s


def _throughput_table(result: ScenarioResult) -> list[str]:
    lines = [
        f"## throughput: {result.connections} connections; instant upstreams",
        "",
        "| contestant | agg/s (median) | rounds min..max | spread | p50 ms | p99 ms "
        "| CPU µs/agg | upstream req/agg (rounds) | failed parts | errors "
        f"| {_HEADROOM_HEADER[0]} |",
        f"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|{_HEADROOM_HEADER[1]}|",
    ]
    for s in result.summaries:
        rounds = s.requests_per_s_rounds
        lines.append(
            f"| {s.target} | **{s.requests_per_s:,.0f}** | {min(rounds):,.0f}..{max(rounds):,.0f} "
            f"| {s.spread_pct:.1f} % | {s.p50_ms:.2f} | {s.p99_ms:.2f} | "
            f"{s.cpu_us_per_request:,.0f} | {_upstream_cell(s)} | {_failed_cell(s)} | "
            f"{_errors(s)} | {_headroom_cells(s)} |"
        )
    ratios = []
    for other in ("go", "web-bff:batch-off", "web-bff:loop-first-off", "aiohttp", "fastapi-httpx"):
        ratio = _ratio(result, "web-bff", other)
        if ratio is not None:
            spread = _round_ratios(result, "web-bff", other)
            within = f" (rounds {min(spread):.2f}..{max(spread):.2f})" if len(spread) > 1 else ""
            ratios.append(f"web-bff / {other} = **{ratio:.2f}x**{within}")
    if ratios:
        lines += ["", "Ratios of median aggregates/s: " + "; ".join(ratios) + "."]
    if result.name == "throughput":
        lines += ["", _DISTINCT_NOTE]
    return lines


_DISTINCT_NOTE = (
    "Every contestant asks for 1,200 distinct products in turn (`p-1001.r0` … `p-1300.r3`, "
    "each answered by the upstreams as its catalogue product with its own id), so no cache or "
    "coalescing of identical reads helps anyone. *upstream req/agg*: the upstreams' own count "
    "of requests during each round (`GET /stats` before and after), divided by the aggregates "
    "answered; median (min..max over rounds); an upper bound, since the aggregates in flight "
    "when the load stops sent theirs. *failed parts*: the parts the answers' `errors` name "
    "(200s and error answers), every run."
)


def _round_ratios(result: ScenarioResult, numerator: str, denominator: str) -> list[float]:
    """``numerator``'s aggregates/s over ``denominator``'s, round by round (same round)."""
    top, bottom = result.summary(numerator), result.summary(denominator)
    if top is None or bottom is None:
        return []
    return [
        a / b
        for a, b in zip(top.requests_per_s_rounds, bottom.requests_per_s_rounds, strict=False)
        if b
    ]


def _round_differences(result: ScenarioResult, first: str, second: str) -> list[float]:
    """``first``'s p50 minus ``second``'s, round by round (ms)."""
    one, other = result.summary(first), result.summary(second)
    if one is None or other is None:
        return []
    return [a - b for a, b in zip(one.p50_ms_rounds, other.p50_ms_rounds, strict=False)]


def _short(path: str) -> str:
    """An upstream path as a table shows it: a batch read's ids counted, not listed."""
    head, found, ids = path.partition("?ids=")
    if not found:
        return f"`GET {path}`"
    listed = ids.split(",")
    return f"`GET {head}?ids={','.join(listed[:2])},…` ({len(listed)} ids: the page's)"


def _category_table(result: ScenarioResult) -> list[str]:
    lines = [
        f"## category: {result.connections} connections; instant upstreams; the grid "
        f"`GET /api/aggregated/category?slug={CATEGORY_SLUG}`: {CATEGORY_ITEMS} products (the "
        "category, then one batch request per item source for the page, concurrently)",
        "",
        "| contestant | grids/s (median) | items/s | rounds min..max | spread | p50 ms | p99 ms "
        f"| CPU µs/grid | CPU µs/item | errors | {_HEADROOM_HEADER[0]} |",
        f"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|{_HEADROOM_HEADER[1]}|",
    ]
    for s in result.summaries:
        rounds = s.requests_per_s_rounds
        lines.append(
            f"| {s.target} | **{s.requests_per_s:,.0f}** | "
            f"{s.requests_per_s * CATEGORY_ITEMS:,.0f} | {min(rounds):,.0f}..{max(rounds):,.0f} | "
            f"{s.spread_pct:.1f} % | {s.p50_ms:.2f} | {s.p99_ms:.2f} | "
            f"{s.cpu_us_per_request:,.0f} | {s.cpu_us_per_request / CATEGORY_ITEMS:,.1f} | "
            f"{_errors(s)} | {_headroom_cells(s)} |"
        )
    ratios = [
        f"{top} / {bottom} = **{ratio:.2f}x**"
        for top, bottom in (("web-bff", "aiohttp"), ("web-bff-cached", "web-bff"))
        if (ratio := _ratio(result, top, bottom)) is not None
    ]
    lines += [
        "",
        f"items/s = {CATEGORY_ITEMS} x grids/s; CPU µs/item = CPU µs/grid / {CATEGORY_ITEMS}. "
        "web-bff and aiohttp aggregate every grid (web-bff's cache off); `web-bff-cached` is "
        "web-bff with its cache on (BFF_CACHE=on, in-process), so after the first grid it "
        "serves it from the cache.",
    ]
    if ratios:
        lines += ["", "Ratios of median grids/s: " + "; ".join(ratios) + "."]
    return lines


def _category_latency_table(result: ScenarioResult) -> list[str]:
    services = ", ".join(f"{k} {v} ms" for k, v in CATEGORY_UPSTREAM_LATENCY_MS.items())
    floor = result.floor_p50_ms
    lines = [
        f"## category latency: {result.connections} connections; upstreams delayed ({services}); "
        f"the grid of {CATEGORY_ITEMS} products",
        "",
        "| contestant | p50 ms | p99 ms | p50 over floor | p75 ms | p90 ms | grids/s | errors "
        f"| {_HEADROOM_HEADER[0]} |",
        f"|---|---:|---:|---:|---:|---:|---:|---:|{_HEADROOM_HEADER[1]}|",
    ]
    for s in result.summaries:
        over = "" if floor is None else f"{s.p50_ms - floor:+.2f} ms"
        lines.append(
            f"| {s.target} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | {over} | {s.p75_ms:.2f} | "
            f"{s.p90_ms:.2f} | {s.requests_per_s:,.0f} | {_errors(s)} | {_headroom_cells(s)} |"
        )
    if floor is not None:
        lines += [
            "",
            "The floor: the calls a grid must make one after another, the category and then "
            "the slowest of the four batch reads (the others run beside it), each loaded alone "
            f"against the same upstreams, {result.connections} connections, same load "
            "generator, once per round (medians over rounds):",
            "",
            "| upstream alone | p50 ms | p99 ms |",
            "|---|---:|---:|",
            *(
                f"| {_short(path)} | {p50:.2f} | {p99:.2f} |"
                for path in result.upstream_alone
                for p50, p99 in [result.alone_ms(path)]
            ),
            f"| **floor p50: the sum of the two measured medians** | **{floor:.2f}** | |",
            "",
            "There is no p99 floor: a sum of two p99s is not the p99 of the chain.",
        ]
    return lines


def _pair_table(result: ScenarioResult, about: str, first: str, second: str) -> list[str]:
    """A throughput table of two variants of web-bff, and the ratio ``first / second``."""
    lines = _throughput_table(result)
    lines[0] = f"## {result.name}: {result.connections} connections; instant upstreams; {about}"
    ratio = _ratio(result, first, second)
    lines = [line for line in lines if not line.startswith("Ratios of")]
    if ratio is not None:
        lines += ["", f"Ratio of median aggregates/s: {first} / {second} = **{ratio:.2f}x**."]
    return lines


def _cached_table(result: ScenarioResult) -> list[str]:
    lines = _throughput_table(result)
    lines[0] = (
        f"## cached: {result.connections} connections; instant upstreams; one hot product "
        "(every request after the first is a whole-answer hit): web-bff with its in-process "
        "cache, with REDIS_URL (Redis on the load core; its near cache on, as shipped), with "
        "REDIS_URL and BFF_CACHE_NEAR_MS=0, against the cache off"
    )
    lines = [line for line in lines if not line.startswith("Ratios of")]
    ratios = [
        f"{top} / {bottom} = **{ratio:.2f}x**"
        for top, bottom in (
            ("web-bff-cached", "web-bff"),
            ("web-bff-cached", "go"),
            ("web-bff-cached-redis", "web-bff-cached"),
            ("web-bff-cached-redis-no-near", "web-bff-cached"),
            ("web-bff-cached-redis", "web-bff-cached-redis-no-near"),
            ("web-bff-cached-redis@before", "web-bff-cached@before"),
            ("web-bff-cached-redis", "web-bff-cached-redis@before"),
        )
        if (ratio := _ratio(result, top, bottom)) is not None
    ]
    if ratios:
        lines += ["", "Ratios of median aggregates/s: " + "; ".join(ratios) + "."]
    return lines


def _burst_table(burst: BurstResult) -> list[str]:
    services = ", ".join(f"{k} {v} ms" for k, v in BURST_LATENCY_MS.items())
    lines = [
        f"## cold-burst: {burst.clients} clients at once for each of {burst.products} cold "
        f"products; upstreams delayed ({services}); BFF_TIMEOUT_MS=500",
        "",
        "| deployment | bursts | answers | not 200 | partial | upstream requests per burst "
        "(median, max) | product requests per burst (min..max) | most inventory / pricing / "
        "reviews requests of a burst | same burst on the other instance: upstream requests "
        "(max) | p50 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in burst.summaries:
        up = b.max_upstream
        other = "" if b.other_instance_max is None else str(b.other_instance_max)
        lines.append(
            f"| {b.contestant} | {b.bursts} | {b.requests:,} | {b.non_200} "
            f"({100 * b.non_200_share:.1f} %) | {b.partial} | "
            f"{statistics.median(b.total_requests):g}, {max(b.total_requests)} | "
            f"{min(b.product_requests)}..{max(b.product_requests)} | "
            f"{up['inventory']} / {up['pricing']} / {up['reviews']} | {other} | "
            f"{b.p50_ms:.0f} | {b.max_ms:.0f} |"
        )
    lines += [
        "",
        "The promise: every answer a whole 200; one request per upstream and burst, 4 in all (the "
        "product's: 2 with its hedge, sent after 100 ms while the retry budget allows: 5); none "
        "for the same burst on another instance sharing the Redis. `…@before` rows are the "
        "earlier commit given to `--before`, measured in the same run.",
    ]
    lines += [f"Left out: {why}." for why in burst.skipped]
    return lines


def _resilience_table(result: ScenarioResult) -> list[str]:
    return _pair_table(
        result,
        "web-bff as shipped (a circuit breaker per upstream, retries, the product's hedge, the "
        "deadline header) against the same service with BFF_BREAKER=off and "
        "BFF_RETRY_BUDGET_PERCENT=0",
        "web-bff",
        "web-bff-no-resilience",
    ) + [
        f"Ratio {variant} / web-bff = **{ratio:.2f}x** ({what})."
        for variant, what in (
            ("web-bff-no-breakers", "BFF_BREAKER=off: the breakers' cost"),
            ("web-bff-no-retries", "BFF_RETRY_BUDGET_PERCENT=0: the retries' and hedge's cost"),
        )
        if (ratio := _ratio(result, variant, "web-bff")) is not None
    ]


def _telemetry_table(result: ScenarioResult) -> list[str]:
    return _pair_table(
        result,
        "web-bff as shipped (Prometheus metrics on: every request, part, cache lookup and "
        "upstream counted) against the same service with BFF_METRICS=off, and with the JSON "
        "access log on (BFF_ACCESS_LOG=on, BFF_LOG_FORMAT=json), and with OpenTelemetry "
        "tracing exporting over OTLP/HTTP, sampling 1 % and 100 %",
        "web-bff",
        "web-bff-no-metrics",
    ) + [
        f"Ratio {variant} / web-bff = **{ratio:.2f}x**."
        for variant in ("web-bff-access-log", "web-bff-traced-1pct", "web-bff-traced-100pct")
        if (ratio := _ratio(result, variant, "web-bff")) is not None
    ]


def _edge_table(result: ScenarioResult) -> list[str]:
    return _pair_table(
        result,
        "web-bff with the edge on as shipped (identity configured, each request with a bearer "
        "token; rate limits far above the load, in memory; compression, the requests accepting "
        "zstd, br and gzip) against the same build with them off and the same requests; and "
        "with the limits counted in Redis, as a fleet runs them",
        "web-bff-edge",
        "web-bff-edge-off",
    ) + [
        f"Ratio {variant} / web-bff-edge-off = **{ratio:.2f}x**."
        for variant in (
            "web-bff-edge-redis",
            "web-bff-edge-compression-only",
            "web-bff-edge-identity-only",
            "web-bff-edge-limits-only",
        )
        if (ratio := _ratio(result, variant, "web-bff-edge-off")) is not None
    ]


def _fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares line through (sources, µs): fixed cost and cost per source."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if not var:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var
    return mean_y - slope * mean_x, slope


def _scaling_table(result: ScenarioResult) -> list[str]:
    lines = [
        f"## scaling: {result.connections} connections; instant upstreams; "
        "`bench/scaling_app.py` (bff-core on granian, like web-bff)",
        "",
        "| route | sources | agg/s (median) | spread | upstream calls/s | p50 ms | p99 ms "
        f"| CPU µs/agg | CPU µs/source | errors | {_HEADROOM_HEADER[0]} |",
        f"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|{_HEADROOM_HEADER[1]}|",
    ]
    for s in result.summaries:
        lines.append(
            f"| `{s.target}` | {s.sources} | **{s.requests_per_s:,.0f}** | {s.spread_pct:.1f} % | "
            f"{s.requests_per_s * s.sources:,.0f} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | "
            f"{s.cpu_us_per_request:,.0f} | {s.cpu_us_per_request / s.sources:,.0f} | "
            f"{_errors(s)} | {_headroom_cells(s)} |"
        )
    fit = _fit([(s.sources, s.cpu_us_per_request) for s in result.summaries])
    if fit is not None:
        fixed, per_source = fit
        lines += [
            "",
            f"Cost model (least squares over the routes): about **{fixed:,.0f} µs per aggregate "
            f"+ {per_source:,.0f} µs per source** of gateway CPU.",
        ]
    return lines


def _memory_table(memory: MemoryResult) -> list[str]:
    run = memory.long_run
    room = run.headroom
    return [
        f"## memory: web-bff, {memory.connections} connections, instant upstreams, "
        f"{memory.long_run_s:.0f} s run",
        "",
        "| RSS | whole tree (granian main + worker) | worker |",
        "|---|---:|---:|",
        f"| after warm-up | {memory.tree_before_mb:.1f} MB | {memory.workers_before_mb:.1f} MB |",
        f"| after the long run | {memory.tree_after_mb:.1f} MB | "
        f"{memory.workers_after_mb:.1f} MB |",
        f"| growth | **{memory.growth_mb:+.1f} MB ({memory.growth_pct:+.1f} %)** | "
        f"{memory.workers_growth_mb:+.1f} MB |",
        "",
        f"Flat (growth ≤ 5 MB or ≤ 5 %): **{'yes' if memory.flat else 'NO'}**. "
        f"RSS samples (s: MB): "
        + ", ".join(f"{r.at_s:.1f}: {r.tree_mb:.1f}" for r in run.rss)
        + ".",
        f"During the long run: {run.load.requests:,} aggregates, "
        f"{run.load.requests_per_s:,.0f}/s, {memory.errors} errors; contestant CPU "
        f"{room.gateway_cpu_pct:.0f} %, gateway core busy {room.gateway_core_busy_pct:.0f} %, "
        f"upstream CPU {room.upstream_cpu_pct:.0f} %, load core busy "
        f"{room.load_core_busy_pct:.0f} %.",
    ]


def _ratio_check(name: str, ratio: float | None, minimum: float) -> TargetCheck:
    """A target of at least ``minimum`` times: SKIP when the ratio was not measured."""
    return TargetCheck(
        name,
        f"≥ {minimum:g}x",
        "not measured" if ratio is None else f"{ratio:.2f}x",
        "SKIP" if ratio is None else "PASS" if ratio >= minimum else "FAIL",
    )


def evaluate_targets(results: Results) -> list[TargetCheck]:
    """web-bff's targets; SKIP for what this run did not measure."""
    checks: list[TargetCheck] = []
    throughput = results.scenarios.get("throughput")
    rounds = results.config.rounds
    few = rounds < MIN_TARGET_ROUNDS
    # Issue 25's targets need medians of at least 5 rounds: with fewer, they are shown, not
    # judged (SKIP).
    enough = "" if not few else f"; only {rounds} round(s), the target needs ≥ {MIN_TARGET_ROUNDS}"

    def judged(name: str, goal: str, measured: str | None, kept: bool) -> TargetCheck:
        if measured is None:
            return TargetCheck(name, goal, "not measured", "SKIP")
        status = "SKIP" if few else "PASS" if kept else "FAIL"
        return TargetCheck(name, goal, measured + enough, status)

    go_ratio = _ratio(throughput, "web-bff", "go") if throughput else None
    spread = _round_ratios(throughput, "web-bff", "go") if throughput else []
    checks.append(
        judged(
            "throughput vs go, 64 connections, distinct products (issue 25)",
            f"≥ {MIN_RATIO_GO:g}x",
            None
            if go_ratio is None
            else f"{go_ratio:.2f}x (per round {min(spread):.2f}..{max(spread):.2f}x)",
            go_ratio is not None and go_ratio >= MIN_RATIO_GO,
        )
    )
    web_throughput = throughput.summary("web-bff") if throughput else None
    per = web_throughput.upstream_per_request if web_throughput else None
    per_rounds = web_throughput.upstream_per_request_rounds if web_throughput else []
    checks.append(
        judged(
            "upstream requests per aggregate, web-bff, 64 connections (issue 25)",
            f"≤ {MAX_UPSTREAM_PER_AGGREGATE:g}",
            None
            if per is None
            else f"{per:.2f} (per round {min(per_rounds):.2f}..{max(per_rounds):.2f})",
            per is not None and per <= MAX_UPSTREAM_PER_AGGREGATE,
        )
    )
    fastapi = _ratio(throughput, "web-bff", "fastapi-httpx") if throughput else None
    checks.append(_ratio_check("throughput vs fastapi-httpx", fastapi, MIN_RATIO_FASTAPI))
    latency = results.scenarios.get("latency")
    web = latency.summary("web-bff") if latency else None
    for other, limit in (
        ("web-bff:batch-off", MAX_P50_OVER_BATCH_OFF_MS),
        ("go", MAX_P50_OVER_GO_MS),
    ):
        them = latency.summary(other) if latency else None
        over = None if web is None or them is None else web.p50_ms - them.p50_ms
        per_round = _round_differences(latency, "web-bff", other) if latency else []
        checks.append(
            judged(
                f"latency p50 over {other}'s p50 (16 connections, medians over rounds)",
                f"≤ {limit:g} ms",
                None
                if over is None
                else f"{over:+.2f} ms (per round {min(per_round):+.2f}..{max(per_round):+.2f})",
                over is not None and over <= limit,
            )
        )
    failed = [
        f"{scenario.name}: {summary.failed_parts}"
        for scenario in (throughput, latency)
        if scenario is not None
        for summary in [scenario.summary("web-bff")]
        if summary is not None and summary.failed_parts
    ]
    checks.append(
        TargetCheck(
            "no failed part in web-bff's answers (throughput, latency)",
            "0",
            "not measured"
            if web is None and web_throughput is None
            else ("; ".join(failed) if failed else "0"),
            "SKIP" if web is None and web_throughput is None else "FAIL" if failed else "PASS",
        )
    )
    floors = (latency.floor_p50_ms, latency.floor_p99_ms) if latency else (None, None)
    for label, value, floor, limit in (
        ("p50", web.p50_ms if web else None, floors[0], MAX_P50_OVER_FLOOR_MS),
        ("p99", web.p99_ms if web else None, floors[1], MAX_P99_OVER_FLOOR_MS),
    ):
        # "Above the slowest upstream": the upstream as measured alone in the same rounds,
        # or, without that measurement, its nominal latency.
        base = LATENCY_FLOOR_MS if floor is None else floor
        over = None if value is None else value - base
        checks.append(
            TargetCheck(
                f"latency {label} added to the slowest upstream's own {label} (16 connections)",
                f"≤ {limit:g} ms",
                "not measured" if over is None else f"{over:+.2f} ms",
                "SKIP" if over is None else "PASS" if over <= limit else "FAIL",
            )
        )
    grid = results.scenarios.get(CATEGORY_LATENCY)
    web_grid = grid.summary("web-bff") if grid else None
    grid_floor = grid.floor_p50_ms if grid else None
    over = None if web_grid is None or grid_floor is None else web_grid.p50_ms - grid_floor
    checks.append(
        TargetCheck(
            "category grid p50 added to its floor (the category's own p50 + the reviews "
            "batch's own p50, 16 connections)",
            f"≤ {MAX_GRID_P50_OVER_FLOOR_MS:g} ms",
            "not measured" if over is None else f"{over:+.2f} ms",
            "SKIP" if over is None else "PASS" if over <= MAX_GRID_P50_OVER_FLOOR_MS else "FAIL",
        )
    )
    # "scenario/web-bff: ..." (a contestant's name may hold a colon: web-bff:batch-off).
    web_errors = [
        line for line in results.error_lines() if line.partition(": ")[0].endswith("/web-bff")
    ]
    measured_web = any(scenario.summary("web-bff") for scenario in results.scenarios.values()) or (
        results.memory is not None
    )
    checks.append(
        TargetCheck(
            "no error responses (non-2xx, socket errors, partial answers)",
            "0",
            "not measured"
            if not measured_web
            else ("; ".join(web_errors) if web_errors else "0 in every web-bff run"),
            "SKIP" if not measured_web else "FAIL" if web_errors else "PASS",
        )
    )
    cached = results.scenarios.get("cached")
    redis_ratio = _ratio(cached, "web-bff-cached-redis", "web-bff-cached") if cached else None
    checks.append(
        _ratio_check(
            "cached with REDIS_URL vs the in-process cache (one hot product)",
            redis_ratio,
            MIN_RATIO_REDIS_CACHED,
        )
    )
    cached_go = _ratio(cached, "web-bff-cached", "go") if cached else None
    checks.append(
        _ratio_check("cached (in-process) vs the go baseline", cached_go, MIN_RATIO_CACHED_GO)
    )
    edge = results.scenarios.get("edge")
    edge_ratio = _ratio(edge, "web-bff-edge", "web-bff-edge-off") if edge else None
    checks.append(
        _ratio_check("edge on (identity, limits, compression) vs off", edge_ratio, MIN_RATIO_EDGE)
    )
    burst = results.burst
    if burst is None:
        checks.append(TargetCheck("cold bursts", "", "not measured", "SKIP"))
    for b in burst.summaries if burst is not None else []:
        if b.contestant.endswith("@before"):
            continue  # for comparison: the earlier commit's figures are not its targets
        kept = (
            not b.non_200
            and not b.partial
            and max(b.product_requests) <= 2
            and all(b.max_upstream[s] == 1 for s in ("inventory", "pricing", "reviews"))
            and not b.other_instance_max
        )
        checks.append(
            TargetCheck(
                f"cold bursts, {b.contestant}",
                "every answer a whole 200; at most 2 product requests (with the hedge) and 1 "
                "of each other service per burst; none on the other instance",
                f"{b.non_200} not 200, {b.partial} partial; product "
                f"{min(b.product_requests)}..{max(b.product_requests)}; others at most "
                f"{max(b.max_upstream[s] for s in ('inventory', 'pricing', 'reviews'))}"
                + ("" if b.other_instance_max is None else f"; other {b.other_instance_max}"),
                "PASS" if kept else "FAIL",
            )
        )
    memory = results.memory
    checks.append(
        TargetCheck(
            "memory flat after the long run",
            "growth ≤ 5 MB or ≤ 5 %",
            "not measured"
            if memory is None
            else f"{memory.growth_mb:+.1f} MB ({memory.growth_pct:+.1f} %)",
            "SKIP" if memory is None else "PASS" if memory.flat else "FAIL",
        )
    )
    return checks


def markdown(results: Results) -> str:
    config = results.config
    lines = [
        "# Gateway benchmark (`python -m bench`)",
        "",
        f"{'SMOKE run (no targets): ' if config.smoke else ''}"
        f"{config.rounds} round(s) x {config.duration_s:g} s per contestant "
        + (f"after a {config.warmup_s:g} s warm-up" if config.warmup_s else "without warm-up")
        + ", order rotated every round; medians over rounds; "
        f"errors summed over every run (warm-up included). Total {results.seconds:.0f} s.",
        "",
        "| environment | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in results.environment.items()),
    ]
    renderers = {
        "latency": _latency_table,
        "throughput": _throughput_table,
        "category": _category_table,
        CATEGORY_LATENCY: _category_latency_table,
        "cached": _cached_table,
        "resilience": _resilience_table,
        "telemetry": _telemetry_table,
        "edge": _edge_table,
        "scaling": _scaling_table,
        "write": _write_table,
        "batch-window": _batch_window_table,
    }
    for name, scenario in results.scenarios.items():
        # write@4, batch-window@16: the scenario at another load.
        lines += ["", *renderers[name.partition("@")[0]](scenario)]
    if results.burst is not None:
        lines += ["", *_burst_table(results.burst)]
    if results.memory is not None:
        lines += ["", *_memory_table(results.memory)]
    lines += [
        "",
        "Headroom: *contestant CPU* is the contestant's process tree (utime + stime, all "
        "threads) per second of wall time; *gateway core busy* includes the kernel's network "
        "work on that core; *upstream CPU* and *load core busy* are the worst round. A load core "
        "well below 100 % means upstreams and load generator had room to spare.",
    ]
    errors = results.error_lines()
    lines += ["", "## errors", ""]
    lines += [f"- {line}" for line in errors] if errors else ["None: every answer was a full 200."]
    if results.targets:
        lines += ["", "## targets (web-bff)", ""]
        lines += [
            f"- **{t.status}** {t.name}: {t.measured} (target {t.goal})" for t in results.targets
        ]
    return "\n".join(lines) + "\n"
