"""Command line: ``demo-upstreams`` / ``python -m demo_upstreams``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web
from aiohttp.log import access_logger

from ._app import DEFAULT_LATENCY_MS, create_app
from ._faults import IDS_SEPARATOR, SERVICES, Fault, parse_fault_flags

__all__ = ["main"]


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="demo-upstreams",
        description=(
            "Simulated product, inventory, pricing, reviews, category and recommendations "
            "services with fault injection (admin API under /admin/)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=_port, default=9000, help="port to bind, 0 for any (default %(default)s)"
    )
    parser.add_argument(
        "--latency-scale",
        type=_non_negative_float,
        default=1.0,
        metavar="FLOAT",
        help="multiply every default latency; 0 answers at once (default %(default)s)",
    )
    for service in SERVICES:
        parser.add_argument(
            f"--{service}-latency-ms",
            type=_non_negative_float,
            default=None,
            metavar="MS",
            help=(
                f"base latency of the {service} service, not scaled "
                f"(default {DEFAULT_LATENCY_MS[service]:g} x scale)"
            ),
        )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SERVICE:KEY=VALUE[,KEY=VALUE...]",
        help=(
            "inject a fault from the start, e.g. reviews:status=503 or "
            "pricing:latency_ms=300,rate=0.5 (repeatable; a bare KEY means KEY=true; double-quote "
            'a value with commas: reviews:cache_control="max-age=1, stale-if-error=60"; scope a '
            f"fault to some ids with ids separated by {IDS_SEPARATOR!r}: "
            f"pricing:status=503,ids=p-1003{IDS_SEPARATOR}p-1004; services: "
            f"{', '.join(SERVICES)}; keys: {', '.join(Fault.__struct_fields__)})"
        ),
    )
    parser.add_argument(
        "--request-log-size",
        type=int,
        default=100,
        metavar="N",
        help="recent requests kept per service for GET /admin/requests, 0 for counts only "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off: it costs throughput)"
    )
    return parser


async def _serve(app: web.Application, host: str, port: int, *, access_log: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # A short shutdown timeout: hung fault handlers are released on shutdown anyway, and
    # nothing else here takes long.
    runner = web.AppRunner(
        app, access_log=access_logger if access_log else None, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        print(f"demo-upstreams listening on http://{url_host}:{bound_port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Run the demo upstreams server until SIGINT or SIGTERM."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        faults = parse_fault_flags(args.fault)
    except ValueError as exc:
        parser.error(str(exc))
    if args.request_log_size < 0:
        parser.error("--request-log-size must be >= 0")
    latency_ms = {
        service: value
        for service in SERVICES
        if (value := getattr(args, f"{service}_latency_ms")) is not None
    }
    if args.access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = create_app(
        latency_scale=args.latency_scale,
        faults=faults,
        latency_ms=latency_ms,
        request_log_size=args.request_log_size,
    )
    try:
        asyncio.run(_serve(app, args.host, args.port, access_log=args.access_log))
    except OSError as exc:
        # Typically the port is taken; say so plainly rather than with a traceback.
        print(f"demo-upstreams: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
