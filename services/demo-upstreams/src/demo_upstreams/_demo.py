"""``bff-demo``: start the upstreams and both BFFs, wired together, until Ctrl-C."""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from ._identity import DEMO_ISSUER, JWKS_PATH

__all__ = ["main"]

_POLL_S = 0.2
_STOP_GRACE_S = 5.0
# One variable per service of demo-upstreams (all served at the same address); a BFF reads those
# of the services it calls.
_UPSTREAM_ENV_VARS = (
    "PRODUCT_SERVICE_URL",
    "INVENTORY_SERVICE_URL",
    "PRICING_SERVICE_URL",
    "REVIEWS_SERVICE_URL",
    "CATEGORY_SERVICE_URL",
    "RECOMMENDATIONS_SERVICE_URL",
    "CART_SERVICE_URL",
    "ORDERS_SERVICE_URL",
)


def identity_env(upstreams: str, audience: str) -> dict[str, str]:
    """The ``BFF_JWT_*`` variables that make a BFF verify the demo identity provider's tokens
    (served by demo-upstreams at ``upstreams``) minted for ``audience``."""
    return {
        "BFF_JWT_JWKS_URL": f"{upstreams}{JWKS_PATH}",
        "BFF_JWT_ISSUER": DEMO_ISSUER,
        "BFF_JWT_AUDIENCE": audience,
        # The demo provider issues RFC 9068 access tokens: every one says so.
        "BFF_JWT_TYPE": "at+jwt",
    }


@dataclass(frozen=True)
class _Child:
    """One program to supervise: how to start it and where it answers ``GET /healthz``."""

    name: str
    argv: Sequence[str]
    url: str
    #: variables of this child only, over the environment all children get
    env: Mapping[str, str] | None = None


class _StartupError(Exception):
    pass


def _base_url(host: str, port: int) -> str:
    # A wildcard bind address is not somewhere to send requests to; loopback reaches it.
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1.0) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):  # URLError is an OSError
        return False


def _check_alive(procs: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for name, proc in procs.items():
        code = proc.poll()
        if code is not None:
            raise _StartupError(f"{name} exited with code {code}")


def _wait_healthy(
    child: _Child, procs: Mapping[str, subprocess.Popen[bytes]], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not _healthy(child.url):
        _check_alive(procs)
        if time.monotonic() > deadline:
            raise _StartupError(
                f"{child.name} did not answer GET {child.url}/healthz within {timeout:g} s"
            )
        time.sleep(_POLL_S)


def _stop_all(procs: Mapping[str, subprocess.Popen[bytes]]) -> None:
    with _signals_deferred():
        _terminate(procs)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    # A second Ctrl-C (or a supervisor repeating SIGTERM) must not abort the clean-up half way
    # and leave children behind; the children are being stopped anyway.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _terminate(procs: Mapping[str, subprocess.Popen[bytes]]) -> None:
    # SIGINT, as Ctrl-C in the terminal: a BFF stops at once instead of draining for
    # BFF_DRAIN_MS as it would on SIGTERM (for a load balancer there is none in the demo).
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + _STOP_GRACE_S
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(
    children: Sequence[_Child],
    *,
    env: Mapping[str, str] | None = None,
    banner: str = "",
    startup_timeout: float = 30.0,
) -> int:
    """Start ``children``, wait until all are healthy, print ``banner``, then supervise them.

    Returns 0 when interrupted (KeyboardInterrupt) and 1 when a child fails to start or dies;
    every child still running is terminated on the way out.
    """
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for child in children:
            child_env = env
            if child.env:
                child_env = {**(os.environ if env is None else env), **child.env}
            procs[child.name] = subprocess.Popen(child.argv, env=child_env)
        for child in children:
            _wait_healthy(child, procs, startup_timeout)
        print(banner, flush=True)
        while True:
            _check_alive(procs)
            time.sleep(_POLL_S)
    except _StartupError as exc:
        print(f"bff-demo: {exc}; stopping the others", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_all(procs)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # The first signal starts the clean-up; the ones after it (a second Ctrl-C, a supervisor
    # repeating SIGTERM, `uv run` forwarding it) are ignored from this very moment, before the
    # clean-up's own deferral is in place, so none can abort it and leave children behind.
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    # SIGTERM takes the same path as Ctrl-C, so the children are always cleaned up.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            # After a stop signal the handlers stay ignored: the program is on its way out, and
            # a repeated signal arriving after the clean-up must not kill it with status -15.
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, handler)


def _supervise(
    children: Sequence[_Child],
    *,
    env: Mapping[str, str] | None = None,
    banner: str = "",
    startup_timeout: float = 30.0,
) -> int:
    """:func:`_run` in the main thread of a program: SIGTERM stops it like Ctrl-C."""
    with _sigterm_interrupts():
        return _run(children, env=env, banner=banner, startup_timeout=startup_timeout)


def _banner(
    web: str, mobile: str, upstreams: str, spa: str | None = None, *, identity: bool = False
) -> str:
    page = "" if spa is None else f"\nOpen {spa} in a browser: the web SPA, on the web BFF.\n"
    signed_in = (
        f"""
  # identity is on: get a token for a demo user (alice, bob, carol), send it as a bearer
  curl -X POST {upstreams}/identity/token -d '{{"user":"alice","audience":"web-bff"}}'
"""
        if identity
        else ""
    )
    return f"""{page}
BFF demo is running:
  web BFF     {web}
  mobile BFF  {mobile}
  upstreams   {upstreams}   (product, inventory, pricing, reviews, category,
              recommendations, cart, orders; identity under /identity/;
              admin under /admin/)

Try:
  # the full aggregate, for the web SPA
  curl '{web}/api/aggregated/product?id=p-1001'
  # the same product trimmed for a phone
  curl '{mobile}/api/aggregated/product?id=p-1001'
  # make the reviews service fail, see the aggregate degrade, then heal everything
  curl -X PUT {upstreams}/admin/faults/reviews -d '{{"status":503}}'
  curl '{web}/api/aggregated/product?id=p-1002'
  curl -X DELETE {upstreams}/admin/faults
{signed_in}
Press Ctrl-C to stop everything.
"""


def main(argv: list[str] | None = None) -> None:
    """Run the demo: demo-upstreams, web-bff and mobile-bff wired together, until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="bff-demo",
        description="Start demo-upstreams, web-bff and mobile-bff wired together.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address for all three servers")
    parser.add_argument("--upstreams-port", type=int, default=9000)
    parser.add_argument("--web-port", type=int, default=8001)
    parser.add_argument("--mobile-port", type=int, default=8002)
    parser.add_argument("--spa-port", type=int, default=8000)
    parser.add_argument(
        "--spa-dir",
        type=Path,
        default=Path("apps/web-spa/dist"),
        help="the built web SPA, served on --spa-port when it exists (default %(default)s)",
    )
    parser.add_argument(
        "--latency-scale",
        default=None,
        metavar="FLOAT",
        help="passed to demo-upstreams (0: upstreams answer at once)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SERVICE:KEY=VALUE[,KEY=VALUE...]",
        help="passed to demo-upstreams, e.g. reviews:status=503 (repeatable)",
    )
    parser.add_argument(
        "--identity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "run both BFFs with identity on, verifying the tokens of the demo identity provider "
            "(POST /identity/token on demo-upstreams with "
            '{"user": "alice", "audience": "web-bff"}; users: alice, bob, carol); on by default, '
            "so the SPA can sign in and write; --no-identity runs them anonymous, read-only"
        ),
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long each server may take to answer /healthz (default %(default)s)",
    )
    args = parser.parse_args(argv)
    host: str = args.host
    upstreams = _base_url(host, args.upstreams_port)
    web = _base_url(host, args.web_port)
    mobile = _base_url(host, args.mobile_port)

    upstream_argv = [
        sys.executable,
        "-m",
        "demo_upstreams",
        "--host",
        host,
        "--port",
        str(args.upstreams_port),
    ]
    if args.latency_scale is not None:
        upstream_argv += ["--latency-scale", args.latency_scale]
    for fault in args.fault:
        upstream_argv += ["--fault", fault]

    def bff(module: str, port: int) -> list[str]:
        return [sys.executable, "-m", module, "--host", host, "--port", str(port)]

    def identity(audience: str) -> dict[str, str] | None:
        return identity_env(upstreams, audience) if args.identity else None

    children = [
        _Child("demo-upstreams", upstream_argv, upstreams),
        _Child("web-bff", bff("web_bff", args.web_port), web, identity("web-bff")),
        _Child("mobile-bff", bff("mobile_bff", args.mobile_port), mobile, identity("mobile-bff")),
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.update(dict.fromkeys(_UPSTREAM_ENV_VARS, upstreams))
    spa: str | None = None
    if (args.spa_dir / "index.html").is_file():
        spa = _base_url(host, args.spa_port)
        spa_argv = [sys.executable, "-m", "demo_upstreams.spa", "--dir", str(args.spa_dir)]
        spa_argv += ["--bff-url", web, "--host", host, "--port", str(args.spa_port)]
        if args.identity:
            spa_argv += ["--identity-url", upstreams]
        children.append(_Child("web-spa", spa_argv, spa))
        # The page is on its own origin, as a CDN would serve it: the BFFs let it call them.
        env["BFF_CORS_ORIGINS"] = spa
    else:
        print(
            f"bff-demo: no web SPA at {args.spa_dir} (build it: cd apps/web-spa && npm ci "
            "&& npm run build); starting without it",
            file=sys.stderr,
        )
    code = _supervise(
        children,
        env=env,
        banner=_banner(web, mobile, upstreams, spa, identity=args.identity),
        startup_timeout=args.startup_timeout,
    )
    raise SystemExit(code)


if __name__ == "__main__":
    main()
