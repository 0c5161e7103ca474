"""The three Transport adapters against a real local upstream (no mocks, except where noted).

Every behaviour the engine relies on is checked for each adapter: statuses returned rather
than raised, lower-cased headers, URLs sent verbatim, failures mapped to the two transport
errors, the body limit, and cancellation that neither leaks connections nor breaks the pool.
Where an adapter cannot do something (pyreqwest: dot-segment paths, prompt release of a
cancelled request's connection), the test pins down what it does instead.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import aiohttp
import httpx
import pyreqwest.client
import pytest
import pytest_asyncio
from bff_core._errors import RequestNotSent, ResponseTooLarge, UpstreamUnavailable
from bff_core._transports import DEFAULT_MAX_BODY_BYTES, Transport
from bff_core._transports._aiohttp import AiohttpTransport
from bff_core._transports._httpx import HttpxTransport
from bff_core._transports._pyreqwest import PyreqwestTransport

from ._servers import JSON_BODY, Upstream, closed_port, run_upstream

ADAPTERS = ["aiohttp", "httpx", "pyreqwest"]

#: pyreqwest does not abort a request whose caller was cancelled; the backstop timeout of the
#: adapter's client ends it. Short here to keep the tests fast.
PYREQWEST_BACKSTOP = 1.0

MakeTransport = Callable[..., Transport]


def _make(kind: str, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Transport:
    if kind == "aiohttp":
        return AiohttpTransport(max_body_bytes=max_body_bytes)
    if kind == "httpx":
        return HttpxTransport(max_body_bytes=max_body_bytes)
    return PyreqwestTransport(max_body_bytes=max_body_bytes, backstop_timeout=PYREQWEST_BACKSTOP)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def upstream() -> AsyncIterator[Upstream]:
    async with run_upstream() as running:
        yield running


@pytest.fixture(params=ADAPTERS)
def kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest_asyncio.fixture(loop_scope="session")
async def make_transport(kind: str) -> AsyncIterator[MakeTransport]:
    """Builds transports of the parametrized kind and closes them after the test."""
    made: list[Transport] = []

    def make(max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Transport:
        transport = _make(kind, max_body_bytes)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def transport(make_transport: MakeTransport) -> Transport:
    return make_transport()


def _connections_in_use(transport: Transport) -> int | None:
    """Connections checked out of the pool, for the adapters whose pool can be inspected.

    Reads private attributes of the adapters and of aiohttp/httpcore: neither library has a
    public counter, and a leaked connection is exactly what this must detect.
    """
    if isinstance(transport, AiohttpTransport):
        assert transport._session is not None
        connector = transport._session.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        return len(connector._acquired)
    if isinstance(transport, HttpxTransport):
        pool = transport._client._transport._pool  # type: ignore[attr-defined]
        return sum(1 for connection in pool.connections if not connection.is_idle())
    return None


async def test_ok_json_body_and_lower_cased_headers(
    transport: Transport, upstream: Upstream
) -> None:
    response = await transport.get(
        f"{upstream.base_url}/json", headers={"Accept": "application/json"}
    )

    assert response.status == 200
    assert response.body == JSON_BODY
    assert json.loads(response.body)["name"] == "Ada"
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-upstream"] == "Test"
    assert response.headers["x-repeated"] == "one, two"
    assert all(name == name.lower() for name in response.headers)


@pytest.mark.parametrize("code", [204, 404, 500, 503])
async def test_non_2xx_status_is_returned_not_raised(
    transport: Transport, upstream: Upstream, code: int
) -> None:
    response = await transport.get(f"{upstream.base_url}/status/{code}", headers={})

    assert response.status == code


async def test_redirect_is_returned_not_followed(transport: Transport, upstream: Upstream) -> None:
    response = await transport.get(f"{upstream.base_url}/redirect", headers={})

    assert response.status == 302
    assert response.headers["location"] == "/json"


async def test_percent_encoded_path_arrives_raw(
    kind: str, transport: Transport, upstream: Upstream
) -> None:
    target = "/echo/users/a%2Fb/%2E%2E/x%20y?q=a%2Fb&r=%2E%2E"
    upstream.raw_paths.clear()

    if kind == "pyreqwest":
        # The url crate would turn %2E%2E into a parent-directory step: refused, not re-routed.
        with pytest.raises(UpstreamUnavailable, match="dot segments"):
            await transport.get(upstream.base_url + target, headers={})
        assert upstream.raw_paths == []
        target = target.replace("/%2E%2E", "")

    response = await transport.get(upstream.base_url + target, headers={})

    assert response.status == 200
    assert upstream.raw_paths == [target]


async def test_literal_dot_segments_are_not_resolved(
    kind: str, transport: Transport, upstream: Upstream
) -> None:
    target = "/echo/a/./b/../c"
    upstream.raw_paths.clear()

    if kind == "pyreqwest":
        with pytest.raises(UpstreamUnavailable, match="dot segments"):
            await transport.get(upstream.base_url + target, headers={})
        return

    await transport.get(upstream.base_url + target, headers={})

    assert upstream.raw_paths == [target]


@pytest.mark.parametrize(
    "value", ["a\r\nX-Injected: 1", "line\nbreak", "nul\x00", "cr\r"], ids=repr
)
async def test_header_injection_is_refused_not_sent(
    transport: Transport, upstream: Upstream, value: str
) -> None:
    upstream.raw_paths.clear()

    # RequestNotSent (an UpstreamUnavailable): the request's own failure, no breaker's.
    with pytest.raises(RequestNotSent, match="request not sent"):
        await transport.get(f"{upstream.base_url}/echo/x", headers={"X-Forwarded": value})
    assert upstream.raw_paths == []


async def test_a_header_value_outside_ascii_is_sent_or_refused_as_not_sent(
    kind: str, transport: Transport, upstream: Upstream
) -> None:
    upstream.raw_paths.clear()
    headers = {"x-user-id": "Zoë 日本"}
    if kind == "httpx":  # httpx accepts ASCII header values only
        with pytest.raises(RequestNotSent, match="request not sent"):
            await transport.get(f"{upstream.base_url}/echo/x", headers=headers)
        assert upstream.raw_paths == []
    else:
        response = await transport.get(f"{upstream.base_url}/echo/x", headers=headers)
        assert response.status == 200


async def test_connection_refused_is_upstream_unavailable(transport: Transport) -> None:
    with pytest.raises(UpstreamUnavailable):
        await transport.get(f"http://127.0.0.1:{closed_port()}/json", headers={})


async def test_dropped_before_answer_is_upstream_unavailable(
    transport: Transport, upstream: Upstream
) -> None:
    with pytest.raises(UpstreamUnavailable):
        await transport.get(f"{upstream.base_url}/drop", headers={})


async def test_dropped_mid_body_is_upstream_unavailable(
    transport: Transport, upstream: Upstream
) -> None:
    with pytest.raises(UpstreamUnavailable):
        await transport.get(f"{upstream.base_url}/truncated", headers={})


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_body_above_limit_is_response_too_large(
    make_transport: MakeTransport, upstream: Upstream, path: str
) -> None:
    transport = make_transport(max_body_bytes=10_000)

    ok = await transport.get(f"{upstream.base_url}{path}?n=10000", headers={})
    assert len(ok.body) == 10_000
    with pytest.raises(ResponseTooLarge) as raised:
        await transport.get(f"{upstream.base_url}{path}?n=10001", headers={})
    assert raised.value.limit == 10_000
    with pytest.raises(ResponseTooLarge):
        await transport.get(f"{upstream.base_url}{path}?n=5000000", headers={})

    # The refused connections were not returned to the pool half-read.
    again = await transport.get(f"{upstream.base_url}/json", headers={})
    assert again.body == JSON_BODY
    assert _connections_in_use(transport) in (0, None)


async def test_limit_applies_to_the_decompressed_body(
    make_transport: MakeTransport, upstream: Upstream
) -> None:
    transport = make_transport(max_body_bytes=10_000)

    with pytest.raises(ResponseTooLarge):
        await transport.get(f"{upstream.base_url}/gzip-bomb", headers={})


@pytest.mark.parametrize("path", ["/hang", "/hang-body"])
async def test_cancelled_get_releases_its_connection(
    kind: str, transport: Transport, upstream: Upstream, path: str
) -> None:
    await transport.get(f"{upstream.base_url}/json", headers={})  # pool warmed up
    disconnected_before = upstream.hung_disconnected
    tasks_before = asyncio.all_tasks()

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await transport.get(f"{upstream.base_url}{path}", headers={})
    cancelled_at = time.perf_counter()

    # The transport still works, and the hung connection is not left checked out...
    response = await transport.get(f"{upstream.base_url}/json", headers={})
    assert response.status == 200
    assert _connections_in_use(transport) in (0, None)
    # ...but closed: the server sees the peer go away and cancels its handler.
    while upstream.hung_disconnected == disconnected_before:
        assert time.perf_counter() - cancelled_at < 2.0, "connection never closed"
        await asyncio.sleep(0.01)
    closed_after = time.perf_counter() - cancelled_at
    assert upstream.hung_disconnected == disconnected_before + 1
    await asyncio.sleep(0.05)
    assert _client_tasks(asyncio.all_tasks() - tasks_before) == []

    if kind == "pyreqwest":
        # Known pyreqwest limitation: closed by the backstop timeout, not by the cancellation.
        assert closed_after > PYREQWEST_BACKSTOP - 0.2 - 0.2
    else:
        assert closed_after < 0.4


def _client_tasks(tasks: set[asyncio.Task[object]]) -> list[str]:
    """Tasks that are not the test itself nor the test server's connection handlers."""
    current = asyncio.current_task()
    names = [task.get_coro().__qualname__ for task in tasks if task is not current]  # type: ignore[union-attr]
    return [name for name in names if not name.startswith("RequestHandler.")]


async def test_gets_run_concurrently(transport: Transport, upstream: Upstream) -> None:
    started = time.perf_counter()

    responses = await asyncio.gather(
        *(transport.get(f"{upstream.base_url}/slow", headers={}) for _ in range(20))
    )

    elapsed = time.perf_counter() - started
    assert [r.status for r in responses] == [200] * 20
    # 20 x 100 ms one after the other would take 2 s.
    assert elapsed < 1.0


async def test_aclose_is_idempotent_and_later_gets_fail_cleanly(
    make_transport: MakeTransport, upstream: Upstream
) -> None:
    transport = make_transport()
    await transport.get(f"{upstream.base_url}/json", headers={})

    await transport.aclose()
    await transport.aclose()

    with pytest.raises(UpstreamUnavailable, match="closed"):
        await transport.get(f"{upstream.base_url}/json", headers={})


async def test_aclose_before_first_use(make_transport: MakeTransport) -> None:
    transport = make_transport()

    await transport.aclose()


# -- caller-supplied clients -------------------------------------------------------------------


async def _with_timing_out_client(kind: str) -> tuple[Transport, Callable[[], object]]:
    """A transport on a caller's client that has its own 0.2 s timeout, and its closer."""
    if kind == "aiohttp":
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2))
        return AiohttpTransport(session=session), session.close
    if kind == "httpx":
        client = httpx.AsyncClient(timeout=0.2)
        return HttpxTransport(client), client.aclose
    builder = pyreqwest.client.ClientBuilder().timeout(timedelta(seconds=0.2))
    pyclient = builder.build()
    return PyreqwestTransport(client=pyclient), pyclient.close


async def test_timeout_of_a_callers_client_is_a_builtin_timeout_error(
    kind: str, upstream: Upstream
) -> None:
    transport, close_client = await _with_timing_out_client(kind)
    try:
        with pytest.raises(TimeoutError) as raised:
            await transport.get(f"{upstream.base_url}/hang", headers={})
        assert not isinstance(raised.value, UpstreamUnavailable)

        # aclose leaves the caller's client open and usable.
        await transport.aclose()
        follow_up = _make_on_same_client(kind, transport)
        response = await follow_up.get(f"{upstream.base_url}/json", headers={})
        assert response.status == 200
    finally:
        result = close_client()
        if asyncio.iscoroutine(result):
            await result


def _make_on_same_client(kind: str, transport: Transport) -> Transport:
    if isinstance(transport, AiohttpTransport):
        assert transport._session is not None
        return AiohttpTransport(session=transport._session)
    if isinstance(transport, HttpxTransport):
        return HttpxTransport(transport._client)
    assert isinstance(transport, PyreqwestTransport)
    return PyreqwestTransport(client=transport._client)


async def test_httpx_mock_transport_client_needs_no_network() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/users/42":
            return httpx.Response(200, json={"id": 42}, headers={"X-Source": "mock"})
        return httpx.Response(404)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    transport = HttpxTransport(client)

    found = await transport.get("http://users.internal/users/42", headers={"X-Request-Id": "r1"})
    missing = await transport.get("http://users.internal/users/7", headers={})

    assert found.status == 200
    assert json.loads(found.body) == {"id": 42}
    assert found.headers["x-source"] == "mock"
    assert missing.status == 404
    assert seen[0].headers["x-request-id"] == "r1"

    await transport.aclose()
    assert not client.is_closed  # the caller's client stays the caller's
    await client.aclose()


async def test_pool_options_are_only_for_the_transports_own_client() -> None:
    client = httpx.AsyncClient()
    with pytest.raises(ValueError, match="pool_size"):
        HttpxTransport(client, pool_size=4)
    await client.aclose()
    pyclient = pyreqwest.client.ClientBuilder().build()
    with pytest.raises(ValueError, match="backstop_timeout"):
        PyreqwestTransport(client=pyclient, backstop_timeout=5)
    await pyclient.close()
