"""A real HTTP server on 127.0.0.1 whose answers a test scripts per path.

Unlike the demo upstreams it knows nothing of products: a test says what ``/x/1`` answers
(status, JSON, delay, hang, dropped connection, garbage) and reads back the raw requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import msgspec
from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    delay: float = 0.0
    hang: bool = False
    drop: bool = False
    #: computes the reply from the request's query, values still percent-encoded (so that a
    #: batch endpoint can split ``ids`` at its commas before decoding each id)
    respond: Callable[[dict[str, str]], Reply] | None = None


@dataclass
class Received:
    raw_path: str
    query_string: str  # raw, percent-encoding kept
    headers: dict[str, str]  # names lower-cased
    at: float


@dataclass
class ScriptedUpstream:
    """What a test scripted, what arrived, and how many requests were in flight at most."""

    url: str = ""
    replies: dict[str, Reply] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    #: requests whose client went away before the answer was sent
    abandoned: list[str] = field(default_factory=list)

    def script(self, path: str, reply: Reply) -> None:
        self.replies[path] = reply

    def paths(self) -> list[str]:
        return [r.raw_path for r in self.received]

    in_flight: int = 0
    most_in_flight: int = 0

    def reset(self) -> None:
        self.replies.clear()
        self.received.clear()
        self.abandoned.clear()
        self.most_in_flight = 0

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.received.append(
            Received(
                request.raw_path,
                request.raw_path.partition("?")[2],  # as sent: aiohttp's query_string is decoded
                {k.lower(): v for k, v in request.headers.items()},
                time.monotonic(),
            )
        )
        path = request.raw_path.split("?", 1)[0]
        reply = self.replies.get(path) or self.replies.get("*")
        if reply is None:
            return web.json_response({"error": "not scripted"}, status=404)
        if reply.respond is not None:
            raw_query = request.raw_path.partition("?")[2]
            reply = reply.respond(
                dict(pair.partition("=")[::2] for pair in raw_query.split("&") if pair)
            )
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if reply.hang:
                await asyncio.sleep(3600)
            if reply.delay:
                await asyncio.sleep(reply.delay)
        except asyncio.CancelledError:
            self.abandoned.append(request.raw_path)
            raise
        finally:
            self.in_flight -= 1
        if reply.drop:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        body = reply.body if reply.body is not None else msgspec.json.encode(reply.json)
        return web.Response(body=body, status=reply.status, content_type="application/json")


@asynccontextmanager
async def scripted_upstream() -> AsyncIterator[ScriptedUpstream]:
    upstream = ScriptedUpstream()
    server = web.Server(upstream.handle, handler_cancellation=True)
    runner = web.ServerRunner(server, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    upstream.url = f"http://127.0.0.1:{port}"
    try:
        yield upstream
    finally:
        await runner.cleanup()


def batch_reply(
    table: Mapping[str, Any],
    *,
    delay: float = 0.0,
    fail: Callable[[list[str]], Reply | None] = lambda ids: None,
) -> Reply:
    """A batch endpoint: the known ids' objects in the order asked (unknown ones left out)."""

    def respond(query: dict[str, str]) -> Reply:
        ids = [unquote(one) for one in query["ids"].split(",")]
        failed = fail(ids)
        if failed is not None:
            return failed
        return Reply(json=[table[i] for i in ids if i in table], delay=delay)

    return Reply(respond=respond)
