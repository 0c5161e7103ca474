"""A small real upstream for the transport tests: an aiohttp.web server on 127.0.0.1.

Besides ordinary answers it misbehaves on demand (drops the connection, truncates the body,
hangs), and it records what the transports sent (the raw request target) and whether a hung
request's connection was closed by the client.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

JSON_BODY = json.dumps({"id": 42, "name": "Ada", "tags": ["a", "b"]}).encode()


@dataclass
class Upstream:
    """A running test upstream."""

    base_url: str
    raw_paths: list[str] = field(default_factory=list)
    hung_started: int = 0
    #: Hung handlers cancelled because the client closed the connection.
    hung_disconnected: int = 0


@asynccontextmanager
async def run_upstream() -> AsyncIterator[Upstream]:
    upstream = Upstream(base_url="")

    async def json_ok(request: web.Request) -> web.Response:
        response = web.Response(body=JSON_BODY, content_type="application/json")
        response.headers["X-Upstream"] = "Test"
        response.headers.add("X-Repeated", "one")
        response.headers.add("X-Repeated", "two")
        return response

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="nope")

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/json"})

    async def echo(request: web.Request) -> web.Response:
        upstream.raw_paths.append(request.raw_path)
        return web.Response(text=request.raw_path)

    async def drop(request: web.Request) -> web.Response:
        # Close the connection before writing a single byte of the answer.
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    async def truncated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        assert request.transport is not None
        request.transport.close()
        return response

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query["n"]))

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        remaining = int(request.query["n"])
        while remaining > 0:
            size = min(remaining, 4096)
            await response.write(b"x" * size)
            remaining -= size
        await response.write_eof()
        return response

    async def gzip_bomb(request: web.Request) -> web.Response:
        # About 100 bytes on the wire, 1 MB once decompressed.
        body = gzip.compress(b"\0" * 1_000_000)
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.1)
        return web.Response(body=JSON_BODY, content_type="application/json")

    async def hang_until_peer_closes() -> None:
        upstream.hung_started += 1
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            # handler_cancellation=True: aiohttp cancels the handler when the peer closes.
            upstream.hung_disconnected += 1
            raise

    async def hang(request: web.Request) -> web.Response:
        # No answer at all: the client waits for the response head.
        await hang_until_peer_closes()
        return web.Response()

    async def hang_body(request: web.Request) -> web.StreamResponse:
        # Head and a first piece of the body, then nothing: the client waits for the rest.
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        await hang_until_peer_closes()
        return response

    app = web.Application()
    app.router.add_get("/json", json_ok)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/drop", drop)
    app.router.add_get("/truncated", truncated)
    app.router.add_get("/big", big)
    app.router.add_get("/big-chunked", big_chunked)
    app.router.add_get("/gzip-bomb", gzip_bomb)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hang", hang)
    app.router.add_get("/hang-body", hang_body)
    app.router.add_get("/echo/{tail:.*}", echo)

    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    upstream.base_url = f"http://{host}:{port}"
    try:
        yield upstream
    finally:
        await runner.cleanup()


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
