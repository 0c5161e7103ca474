"""The command line of a BFF: granian, workers, draining on SIGTERM."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .._cpus import workers_for_cpu_limit
from .._errors import ConfigurationError
from .._settings import OPS_HOST_VARIABLE, GatewaySettings
from .._telemetry import METRICS_DIR_VARIABLE, configure_logging
from ._drain import DRAIN_SIGNAL

logger = logging.getLogger("bff_core")


def serve(
    *,
    prog: str,
    app_factory: str,
    default_port: int,
    argv: Sequence[str] | None = None,
    check: Callable[[], object] | None = None,
) -> None:
    """The command line of a BFF: validate configuration, then serve with granian.

    granian (a Rust HTTP server, ASGI interface, uvloop) is the production server: on one core
    it serves the aggregate well ahead of uvicorn (``docs/decisions/0002-hot-path.md``).
    SIGTERM drains first (``BFF_DRAIN_MS``: ``/readyz`` 503 while every request is still
    served), then stops; SIGINT stops at once (``docs/decisions/0005-draining.md``).

    Args:
        prog: the command's name, for ``--help`` and messages.
        app_factory: ``"module:function"`` returning the Litestar app (imported by each worker).
        default_port: the port when ``--port`` is not given.
        check: called once before serving; a :class:`ConfigurationError` it raises stops
            start-up with the message on stderr and exit status 2.
    """
    parser = argparse.ArgumentParser(prog=prog, description=f"Run the {prog} service.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=default_port, help="port to listen on")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes, one per core the service may use, or 'auto': the CPU limit "
        "of its container (cgroup), rounded down, at least 1 (default 1)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a TCP port")
    if args.workers == "auto":
        args.workers = workers_for_cpu_limit()
    if args.workers > 1 and not os.environ.get(METRICS_DIR_VARIABLE):
        # Several workers: each writes its metrics there, and /metrics adds them up; fresh for
        # each start.
        directory = tempfile.mkdtemp(prefix=f"{prog}-metrics-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ[METRICS_DIR_VARIABLE] = directory
    try:
        settings = GatewaySettings.from_env({})
        if settings.ops_port is not None:
            _check_ops_port(args.host, args.port, settings.ops_port)
            # Each worker's operations listener listens on the serving address's host.
            os.environ[OPS_HOST_VARIABLE] = args.host
    except ConfigurationError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    log_format = settings.log_format
    configure_logging(args.log_level, log_format)
    if check is not None:
        try:
            check()
        except ConfigurationError as exc:
            print(f"{prog}: configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    drain = GatewaySettings.from_env({}).drain
    _draining_server(drain)(
        app_factory,
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        websockets=False,
        log_level=LogLevels(args.log_level),
        log_access=False,
        respawn_failed_workers=True,
        # After the drain, the requests in flight get this long to finish before a worker is
        # killed: more than any aggregation may take.
        workers_kill_timeout=_STOP_BOUND_S,
    ).serve()


def _check_ops_port(host: str, port: int, ops_port: int) -> None:
    """The operations listener's port is not the serving port, and nothing listens on it yet
    (the workers listen on it together, each from its own lifespan: a port another program
    holds would fail every one of them, over and over)."""
    if ops_port == port:
        raise ConfigurationError(
            "BFF_OPS_PORT",
            f"{ops_port} is the serving port (--port): the operations listener needs its own",
        )
    try:
        infos = socket.getaddrinfo(host, ops_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as probe:
                # As the listener will: a previous run's closing connections do not count.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
                probe.listen()
    except OSError as exc:
        raise ConfigurationError(
            "BFF_OPS_PORT", f"cannot listen on {host}:{ops_port}: {exc.strerror or exc}"
        ) from None


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of workers, nor 'auto'"
        ) from None
    if workers < 1:
        raise argparse.ArgumentTypeError("must be at least 1, or 'auto'")
    return workers


#: Seconds the workers get to finish the requests in flight once they are told to stop.
_STOP_BOUND_S = 30


def _draining_server(drain: float) -> type[Any]:
    """granian's server, with a drain between SIGTERM and the stop.

    granian's main process owns the signals: SIGINT and SIGTERM both stop it at once (it closes
    the listening socket and tells every worker to finish what it has). This subclass keeps
    SIGINT so (Ctrl-C skips the drain) and turns the first SIGTERM into a drain: it tells every
    worker process (:data:`DRAIN_SIGNAL`), whose ``/readyz`` answers 503 from then on, keeps
    the socket open and serving for ``drain`` seconds, then stops as granian does. A second
    SIGTERM, or a SIGINT, during the drain stops at once. See docs/decisions/0005-draining.md.
    """
    from granian import Granian

    class DrainingGranian(Granian):  # type: ignore[misc, valid-type]
        _drain_timer: threading.Timer | None = None

        def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
            signum = args[0] if args else None
            if signum == signal.SIGTERM and drain > 0 and self._drain_timer is None:
                logger.info("SIGTERM: draining for %g s, then stopping", drain)
                for worker in list(self.wrks):
                    # granian's worker process is a multiprocessing.Process, ``inner``. One
                    # that is gone, or not started yet, takes no requests anyway.
                    pid = getattr(getattr(worker, "inner", None), "pid", None)
                    if pid is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, DRAIN_SIGNAL)
                self._drain_timer = threading.Timer(drain, super().signal_handler_interrupt)
                self._drain_timer.daemon = True
                self._drain_timer.start()
                return
            if self._drain_timer is not None:
                self._drain_timer.cancel()
            super().signal_handler_interrupt(*args, **kwargs)

    return DrainingGranian
