"""Writes through the three Transport adapters, against a real local upstream (no mocks).

``send`` keeps ``get``'s semantics (statuses returned, headers lower-cased, the body limit) and
adds the distinction a write depends on: a request that certainly did not leave (nothing
listens: :class:`UpstreamUnavailable`, safe to send again) against one that may have reached
the upstream (the connection lost after the body was read, a client timeout while the answer
was awaited: :class:`OutcomeUnknown`). The upstream counts what it received, so a test can
tell that a ``POST`` was sent exactly once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
import httpx
import pyreqwest.client
import pytest
import pytest_asyncio
from aiohttp import web
from bff_core import OutcomeUnknown, UpstreamUnavailable, WritingTransport
from bff_core._errors import ResponseTooLarge
from bff_core._transports._aiohttp import AiohttpTransport
from bff_core._transports._httpx import HttpxTransport
from bff_core._transports._pyreqwest import PyreqwestTransport

from ._servers import closed_port

ADAPTERS = ["aiohttp", "httpx", "pyreqwest"]


@dataclass
class WriteUpstream:
    base_url: str
    received: list[tuple[str, str, bytes, dict[str, str]]] = field(default_factory=list)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def upstream() -> AsyncIterator[WriteUpstream]:
    state = WriteUpstream(base_url="")

    async def record(request: web.Request) -> bytes:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        state.received.append((request.method, request.raw_path, body, headers))
        return body

    async def echo(request: web.Request) -> web.Response:
        body = await record(request)
        return web.json_response(
            {"method": request.method, "body": json.loads(body)},
            status=int(request.query.get("status", "201")),
        )

    async def drop(request: web.Request) -> web.Response:
        # The request arrived whole, then the connection goes without an answer.
        await record(request)
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    async def hang(request: web.Request) -> web.Response:
        await record(request)
        await asyncio.sleep(10)
        return web.Response()

    async def big(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=b"x" * 5000)

    app = web.Application()
    for method in ("PUT", "POST"):
        app.router.add_route(method, "/echo/{tail:.*}", echo)
        app.router.add_route(method, "/drop", drop)
        app.router.add_route(method, "/hang", hang)
        app.router.add_route(method, "/big", big)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.base_url = f"http://{host}:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(params=ADAPTERS, loop_scope="session")
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[WritingTransport]:
    made: WritingTransport
    if request.param == "aiohttp":
        made = AiohttpTransport(max_body_bytes=1000)
    elif request.param == "httpx":
        made = HttpxTransport(max_body_bytes=1000)
    else:
        made = PyreqwestTransport(max_body_bytes=1000, backstop_timeout=1.0)
    yield made
    await made.aclose()


def test_every_adapter_is_a_writing_transport() -> None:
    assert isinstance(AiohttpTransport(), WritingTransport)
    assert isinstance(HttpxTransport(), WritingTransport)
    assert isinstance(PyreqwestTransport(), WritingTransport)


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_sends_method_body_and_json_content_type(
    transport: WritingTransport, upstream: WriteUpstream, method: str
) -> None:
    assert method in ("PUT", "POST")
    response = await transport.send(
        method,  # type: ignore[arg-type]
        f"{upstream.base_url}/echo/carts/u%2F1?status=200",
        headers={"Idempotency-Key": "k-1"},
        body=b'{"quantity": 2}',
        time_left=2.0,
    )

    assert response.status == 200
    assert json.loads(response.body) == {"method": method, "body": {"quantity": 2}}
    assert response.headers["content-type"].startswith("application/json")
    sent_method, raw_path, body, headers = upstream.received[-1]
    assert (sent_method, raw_path, body) == (
        method,
        "/echo/carts/u%2F1?status=200",
        b'{"quantity": 2}',
    )
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == "k-1"


async def test_a_caller_content_type_is_kept(
    transport: WritingTransport, upstream: WriteUpstream
) -> None:
    await transport.send(
        "POST",
        f"{upstream.base_url}/echo/x",
        headers={"Content-Type": "application/merge-patch+json"},
        body=b"{}",
    )
    assert upstream.received[-1][3]["content-type"] == "application/merge-patch+json"


@pytest.mark.parametrize("code", [409, 422, 500])
async def test_statuses_are_returned_not_raised(
    transport: WritingTransport, upstream: WriteUpstream, code: int
) -> None:
    response = await transport.send(
        "POST", f"{upstream.base_url}/echo/x?status={code}", headers={}, body=b"{}"
    )
    assert response.status == code


async def test_refused_connection_is_unavailable_not_unknown(
    transport: WritingTransport,
) -> None:
    with pytest.raises(UpstreamUnavailable) as raised:
        await transport.send(
            "POST", f"http://127.0.0.1:{closed_port()}/orders", headers={}, body=b"{}"
        )
    # Nothing left: the one failure a POST may be sent again after.
    assert not isinstance(raised.value, OutcomeUnknown)


async def test_connection_lost_after_sending_is_an_unknown_outcome(
    transport: WritingTransport, upstream: WriteUpstream
) -> None:
    before = len(upstream.received)
    with pytest.raises(OutcomeUnknown) as raised:
        await transport.send("POST", f"{upstream.base_url}/drop", headers={}, body=b"{}")
    assert not raised.value.timed_out
    # Sent exactly once: no adapter sends a POST again by itself.
    assert len(upstream.received) == before + 1


async def test_body_limit_applies_to_write_answers(
    transport: WritingTransport, upstream: WriteUpstream
) -> None:
    with pytest.raises(ResponseTooLarge):
        await transport.send("PUT", f"{upstream.base_url}/big", headers={}, body=b"{}")


async def test_a_cancelled_write_does_not_break_the_transport(
    transport: WritingTransport, upstream: WriteUpstream
) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await transport.send(
                "POST", f"{upstream.base_url}/hang", headers={}, body=b"{}", time_left=0.2
            )
    response = await transport.send(
        "POST", f"{upstream.base_url}/echo/after", headers={}, body=b"{}"
    )
    assert response.status == 201


@pytest.mark.parametrize("library", ADAPTERS)
async def test_a_client_timeout_after_sending_is_an_unknown_outcome(
    upstream: WriteUpstream, library: str
) -> None:
    # A caller's client with its own read timeout: the request left, the answer never came.
    made: WritingTransport
    if library == "aiohttp":
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.2))
        made = AiohttpTransport(session)
    elif library == "httpx":
        client = httpx.AsyncClient(timeout=httpx.Timeout(0.2))
        made = HttpxTransport(client)
    else:
        built = pyreqwest.client.ClientBuilder().timeout(timedelta(seconds=0.2)).build()
        made = PyreqwestTransport(built)
    try:
        with pytest.raises(OutcomeUnknown) as raised:
            await made.send("POST", f"{upstream.base_url}/hang", headers={}, body=b"{}")
        assert raised.value.timed_out
    finally:
        await made.aclose()
        if library == "aiohttp":
            await session.close()
        elif library == "httpx":
            await client.aclose()
        else:
            await built.close()
