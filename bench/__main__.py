"""``python -m bench``: the gateway benchmark (web-bff against hand-written aggregators).

    python -m bench [--smoke] [--rounds N] [--duration S] [--scenarios latency,throughput,...]
                    [--contestants web-bff,go,aiohttp,fastapi-httpx] [--check]
                    [--json PATH] [--markdown PATH] [--memory-duration S]
                    [--generator auto|wrk|builtin]

Scenarios: ``latency`` (delayed upstreams, 16 connections: overhead over the 40 ms floor),
``throughput`` (instant upstreams, 64 connections: aggregates/s), ``category`` (a category grid
of 24 products: grids/s and items/s with instant upstreams, then its latency over the floor of
the category and the slowest batch read, with delayed upstreams), ``cached`` (one hot product:
the in-process cache, Redis with and without the near cache, against the cache off),
``resilience`` (breakers, retries and hedges against none), ``telemetry`` (Prometheus metrics
against none), ``edge`` (identity, rate limits and compression on against off),
``cold-burst`` (fifty clients at once for each of many cold products, in-process and with
Redis: upstream requests per product
and answers that are not 200), ``scaling`` (4, 8, 16 sources per aggregate: CPU per aggregate
and per source), ``memory`` (web-bff's RSS before and after a long run), ``write``
(add-to-cart through web-bff against the cart upstream's own PUT: added p50, CPU per write; at
16 and at 4 connections), and, only when named, ``batch-window`` (web-bff's cross-request
batching window, 0, 100 and 500 µs and batching off, at 1, 16 and 64 connections: p50 against
upstream requests per aggregate). The throughput and latency scenarios ask for 1,200 distinct
products in turn; every run reports upstream requests per aggregate (the upstreams' own counts)
and the failed parts the answers name.
Markdown goes to stdout and ``bench/results/latest.md``, everything (every round's raw
numbers too) to ``bench/results/latest.json`` (``smoke.md``/``smoke.json`` for ``--smoke``, so CI
never overwrites real results); progress goes to stderr.

Exit status: 0 after a complete run; 1 when ``--check`` is given and a target is missed, or when
a ``--smoke`` run saw any error answer; 2 when the benchmark could not run (a contestant did not
start, died, or answered wrongly); 130 when interrupted. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from ._burst import BURST_LATENCY_MS, run_cold_burst
from ._harness import (
    BATCH_WINDOW_CONNECTIONS,
    BATCH_WINDOW_TARGETS,
    CACHED_TARGETS,
    CATEGORY_FLOOR_PATHS,
    CATEGORY_LATENCY,
    CATEGORY_LATENCY_TARGETS,
    CATEGORY_TARGETS,
    CATEGORY_UPSTREAM_LATENCY_MS,
    CONTESTANTS,
    DEFAULT_SCENARIOS,
    EDGE_TARGETS,
    LATENCY_VARIANTS,
    PRODUCT_ID,
    RESILIENCE_TARGETS,
    SCALING_TARGETS,
    SCENARIOS,
    TELEMETRY_TARGETS,
    UPSTREAM_LATENCY_MS,
    WRITE_CONNECTIONS,
    WRITE_TARGETS,
    WRITE_UPSTREAM,
    Bench,
    Config,
    Target,
    before,
    distinct,
    run_memory,
    run_scenario,
    start_redis,
    start_upstream,
)
from ._load import generator_name
from ._procs import REPO_ROOT, BenchError, Children, Layout, warn
from ._report import Results, environment, evaluate_targets, markdown

RESULTS_DIR = REPO_ROOT / "bench" / "results"
LATENCY_CONNECTIONS = 16
LOAD_CONNECTIONS = 64
#: (rounds, seconds per run, warm-up seconds, memory long-run seconds)
FULL = (5, 5.0, 2.0, 60.0)
#: A smoke run only checks that every scenario runs and answers right: no warm-up, and runs as
#: short as wrk allows (whole seconds), the memory scenario's long run included.
SMOKE = (1, 1.0, 0.0, 1.0)
#: Cold products per deployment in the cold-burst scenario (full run, smoke run).
BURST_PRODUCTS = (30, 3)


def _names(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}"
        )
    return names


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="1 round, 1 s runs, 1 s memory run, all scenarios, no targets (for CI)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 5)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 5)")
    parser.add_argument(
        "--memory-duration", type=float, help="seconds of the memory scenario's long run (60)"
    )
    parser.add_argument(
        "--scenarios",
        type=lambda text: _names(text, SCENARIOS, "scenario"),
        default=DEFAULT_SCENARIOS,
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default all but batch-window)",
    )
    parser.add_argument(
        "--contestants",
        type=lambda text: _names(text, tuple(CONTESTANTS), "contestant"),
        default=tuple(CONTESTANTS),
        help=f"comma-separated subset of {','.join(CONTESTANTS)} (default all)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="where the JSON goes (default results/latest.json; results/smoke.json for --smoke)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help="where the markdown goes (default results/latest.md; results/smoke.md for --smoke)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of an earlier commit (git worktree add): its web-bff also runs in the "
        "latency, throughput, cached and cold-burst scenarios (and, with the edge on, in the "
        "edge scenario), so before and after are measured in the same run",
    )
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "builtin"],
        default="auto",
        help="load generator: wrk when installed (auto), or the built-in aiohttp one",
    )
    args = parser.parse_args(argv)
    # A smoke run (CI, ./run tests) must not overwrite the last real results.
    stem = "smoke" if args.smoke else "latest"
    args.json = args.json or RESULTS_DIR / f"{stem}.json"
    args.markdown = args.markdown or RESULTS_DIR / f"{stem}.md"
    rounds, duration, warmup, memory = SMOKE if args.smoke else FULL
    rounds = args.rounds if args.rounds is not None else rounds
    duration = args.duration if args.duration is not None else duration
    memory = args.memory_duration if args.memory_duration is not None else memory
    if not 1 <= rounds <= 100:
        parser.error("--rounds must be between 1 and 100")
    if not 0.5 <= duration <= 600 or not 0.5 <= memory <= 3600:
        parser.error("--duration must be 0.5..600 s and --memory-duration 0.5..3600 s")
    try:
        generator = generator_name(args.generator)
    except BenchError as exc:
        parser.error(str(exc))
    if args.before is not None and not (args.before / "services" / "web-bff").is_dir():
        parser.error(f"--before {args.before}: not a checkout of this repository")
    config = Config(
        rounds=rounds,
        duration_s=duration,
        warmup_s=warmup,
        memory_s=memory,
        scenarios=args.scenarios,
        contestants=args.contestants,
        generator=generator,
        smoke=args.smoke,
        check=args.check,
        before=args.before.resolve() if args.before is not None else None,
    )
    return config, args


def run(config: Config, layout: Layout) -> Results:
    """Every selected scenario; all processes are gone when this returns or raises."""
    started = time.monotonic()
    results = Results(
        environment=environment(layout, config.generator, config.before), config=config
    )
    contestants = [CONTESTANTS[name] for name in config.contestants]
    #: the scenarios measured against the instant upstreams at full load, and what each measures
    cached = CACHED_TARGETS
    if config.before is not None:
        cached = [
            *cached,
            *(
                Target(spec.name, spec, target.path, target.parts)
                for target in [t for t in CACHED_TARGETS if not t.server.go][:3]
                for spec in [before(target.server, config.before)]
            ),
        ]
    # Distinct products, asked in turn, for every contestant (issue 25).
    throughput = [distinct(target) for target in contestants]
    if config.before is not None and "web-bff" in config.contestants:
        # The earlier commit's web-bff next to this one's: the hot path before and after.
        shipped = CONTESTANTS["web-bff"]
        spec = before(shipped.server, config.before)
        throughput = [
            *throughput,
            distinct(Target(spec.name, spec, shipped.path, shipped.parts)),
        ]
    edge = EDGE_TARGETS
    if config.before is not None:
        # The earlier commit's web-bff with the edge on, next to this one's: what a change
        # of the per-request path (the breakers' failure-rate window, decision 0015) costs
        # with every feature of the edge on.
        shipped_edge = next(t for t in EDGE_TARGETS if t.name == "web-bff-edge")
        spec = before(shipped_edge.server, config.before)
        edge = [*edge, replace(shipped_edge, name=spec.name, server=spec)]
    # The contestants (and, with --before, the earlier web-bff), then what starting the
    # slowest part first is worth.
    latency = [
        *throughput,
        *(map(distinct, LATENCY_VARIANTS) if "web-bff" in config.contestants else []),
    ]
    on_instant = {
        "throughput": throughput,
        "cached": cached,
        "resilience": RESILIENCE_TARGETS,
        "telemetry": TELEMETRY_TARGETS,
        "edge": edge,
        "scaling": SCALING_TARGETS,
    }
    children = Children(layout)
    bench = Bench(children, config)
    try:
        instant = None
        if {*on_instant, "category", "memory", "write"} & set(config.scenarios):
            instant = start_upstream(children, None)
        redis = None
        if {"cached", "cold-burst", "edge"} & set(config.scenarios):
            redis = start_redis(children)
        for name in config.scenarios:
            if name == "latency":
                delayed = start_upstream(children, UPSTREAM_LATENCY_MS)
                try:
                    results.scenarios[name] = run_scenario(
                        bench,
                        name,
                        latency,
                        delayed,
                        LATENCY_CONNECTIONS,
                        reference_paths=[f"/reviews/{PRODUCT_ID}"],
                    )
                finally:
                    children.stop(delayed.child)
            elif name == "batch-window":
                # Latency against upstream requests, for each window, at each load; the
                # delayed upstreams, as the latency scenario's.
                delayed = start_upstream(children, UPSTREAM_LATENCY_MS)
                try:
                    for connections in BATCH_WINDOW_CONNECTIONS:
                        key = f"{name}@{connections}"
                        results.scenarios[key] = run_scenario(
                            bench, key, BATCH_WINDOW_TARGETS, delayed, connections
                        )
                finally:
                    children.stop(delayed.child)
            elif name == "category":
                # The grid's throughput, then its latency over its floor (the category, then
                # the slowest batch read): one scenario, reported as two tables.
                assert instant is not None
                results.scenarios[name] = run_scenario(
                    bench, name, CATEGORY_TARGETS, instant, LOAD_CONNECTIONS
                )
                delayed = start_upstream(children, CATEGORY_UPSTREAM_LATENCY_MS)
                try:
                    results.scenarios[CATEGORY_LATENCY] = run_scenario(
                        bench,
                        CATEGORY_LATENCY,
                        CATEGORY_LATENCY_TARGETS,
                        delayed,
                        LATENCY_CONNECTIONS,
                        reference_paths=CATEGORY_FLOOR_PATHS,
                    )
                finally:
                    children.stop(delayed.child)
            elif name in on_instant:
                assert instant is not None
                results.scenarios[name] = run_scenario(
                    bench, name, on_instant[name], instant, LOAD_CONNECTIONS, redis=redis
                )
            elif name == "cold-burst":
                slow = start_upstream(children, BURST_LATENCY_MS)
                try:
                    results.burst = run_cold_burst(
                        bench,
                        slow,
                        redis,
                        BURST_PRODUCTS[1 if config.smoke else 0],
                        before_tree=config.before,
                    )
                finally:
                    children.stop(slow.child)
            elif name == "write":
                # Add-to-cart through web-bff, and the cart upstream's own PUT in the same
                # rounds: what the BFF adds to a write, and its CPU per write.
                # At 16 connections (the core saturated in issue 24's run), then at 4,
                # reported as write@4 (not in a smoke run: the same code at another load).
                assert instant is not None
                loads = WRITE_CONNECTIONS[:1] if config.smoke else WRITE_CONNECTIONS
                for index, connections in enumerate(loads):
                    key = name if index == 0 else f"{name}@{connections}"
                    results.scenarios[key] = run_scenario(
                        bench,
                        key,
                        WRITE_TARGETS,
                        instant,
                        connections,
                        reference_paths=[WRITE_UPSTREAM.path],
                        reference_write=WRITE_UPSTREAM,
                    )
            elif name == "memory":
                assert instant is not None
                if "web-bff" not in config.contestants:
                    warn("[memory] skipped: web-bff is not among the contestants")
                    continue
                results.memory = run_memory(bench, instant, LOAD_CONNECTIONS)
    finally:
        children.close()
    results.seconds = time.monotonic() - started
    if not config.smoke:
        results.targets = evaluate_targets(results)
    return results


def write(results: Results, json_path: Path, markdown_path: Path, text: str) -> None:
    for path, content in (
        (json_path, json.dumps(results.to_json(), indent=2, default=str) + "\n"),
        (markdown_path, text),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside, then rename: an interrupted write never leaves half a results file.
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(content)
        partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    config, args = parse_args(argv)
    layout = Layout.detect()
    if config.smoke and layout.pinned:
        # A smoke run measures nothing, and a scenario starts up to six contestants at once,
        # each importing a whole app: on one core that start-up was most of the smoke run.
        layout = replace(layout, gateway_core=None)
    if layout.load_core is not None:
        # The harness only starts processes and reads /proc; keep it off the gateway's core.
        os.sched_setaffinity(0, {layout.load_core})
    else:
        warn(f"WARNING: {layout.describe()}")
    warn(
        f"bench: {', '.join(config.scenarios)}; {config.rounds} round(s) x {config.duration_s:g} s;"
        f" load generator {config.generator}; {layout.describe()}"
    )
    try:
        results = run(config, layout)
    except BenchError as exc:
        warn(f"\nbench: FAILED: {exc}")
        return 2
    except KeyboardInterrupt:
        warn("\nbench: interrupted; every child process was stopped")
        return 130
    text = markdown(results)
    print(text, flush=True)
    write(results, args.json, args.markdown, text)
    warn(f"bench: wrote {args.json} and {args.markdown} ({results.seconds:.0f} s)")
    errors = results.error_lines()
    if config.smoke and errors:
        warn("bench: FAILED: the smoke run saw error answers:\n  " + "\n  ".join(errors))
        return 1
    if errors:
        warn("bench: WARNING: some runs saw error answers:\n  " + "\n  ".join(errors))
    missed = [t for t in results.targets if t.status == "FAIL"]
    if missed:
        warn(f"bench: {len(missed)} target(s) missed: {', '.join(t.name for t in missed)}")
        if config.check:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
