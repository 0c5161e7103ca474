"""``python -m demo_upstreams.spa``: serve the built web SPA (``apps/web-spa/dist``) for the demo.

A static file server and nothing more, as a CDN would be in production: the files of the
build, ``index.html`` for ``/``, ``GET /healthz`` for the demo launcher, and ``/config.js``,
which tells the page where the web BFF is (``window.BFF_URL``) and where its users sign in
(``window.IDENTITY_URL``, ``null`` when the BFF runs without identity), so one build serves any
address the demo or a test picks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiohttp import web

__all__ = ["create_spa_app", "main"]

_NO_CACHE = {"cache-control": "no-cache"}


def create_spa_app(
    directory: Path, bff_url: str, identity_url: str | None = None
) -> web.Application:
    """The application serving ``directory`` (a Vite build) with ``bff_url`` and
    ``identity_url`` (the demo identity provider; ``None``: no signing in) in its config."""
    index = directory / "index.html"
    if not index.is_file():
        raise ValueError(f"{directory} has no index.html: build the SPA first (npm run build)")
    identity = None if identity_url is None else identity_url.rstrip("/")
    config = (
        f"window.BFF_URL = {json.dumps(bff_url.rstrip('/'))};\n"
        f"window.IDENTITY_URL = {json.dumps(identity)};\n"
    ).encode()

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(index, headers=_NO_CACHE)

    async def config_js(request: web.Request) -> web.StreamResponse:
        return web.Response(body=config, content_type="text/javascript", headers=_NO_CACHE)

    async def healthz(request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/index.html", page)
    app.router.add_get("/config.js", config_js)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/", directory, show_index=False)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m demo_upstreams.spa", description="Serve the built web SPA."
    )
    parser.add_argument("--dir", type=Path, required=True, help="the build (apps/web-spa/dist)")
    parser.add_argument("--bff-url", required=True, help="where the page finds the web BFF")
    parser.add_argument(
        "--identity-url",
        default=None,
        help="where the page's users sign in (the demo identity provider); unset: no signing in",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        app = create_spa_app(args.dir, args.bff_url, args.identity_url)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
