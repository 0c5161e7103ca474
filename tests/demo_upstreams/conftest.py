"""Fixtures: the real demo-upstreams app on a free loopback port, and a real HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from demo_upstreams import create_app
from yarl import URL


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (any free port); yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


ServerFactory = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture(scope="session")
def server_factory() -> ServerFactory:
    """Start a private server: ``async with server_factory(latency_scale=1) as url: ...``."""

    def factory(**kwargs: Any) -> AbstractAsyncContextManager[str]:
        return serve(create_app(**kwargs))

    return factory


@pytest.fixture(scope="session")
async def shared_url() -> AsyncIterator[str]:
    # No simulated latency, so the suite stays fast; tests that time things get their own.
    async with serve(create_app(latency_scale=0)) as url:
        yield url


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@dataclass
class Upstream:
    """The shared server, as seen by a test, with helpers for its admin API."""

    url: str
    http: aiohttp.ClientSession

    async def get(self, path: str) -> tuple[int, Any]:
        """GET ``path`` (sent as written, no re-encoding); status and decoded JSON body."""
        async with self.http.get(URL(self.url + path, encoded=True)) as response:
            return response.status, await response.json(content_type=None)

    async def get_raw(self, path: str) -> tuple[int, str, bytes]:
        """GET ``path``; status, content type and the undecoded body."""
        async with self.http.get(URL(self.url + path, encoded=True)) as response:
            return response.status, response.content_type, await response.read()

    async def put_fault(self, service: str, fault: dict[str, Any]) -> Any:
        async with self.http.put(f"{self.url}/admin/faults/{service}", json=fault) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def faults(self) -> Any:
        return (await self.get("/admin/faults"))[1]

    async def requests(self) -> Any:
        return (await self.get("/admin/requests"))[1]

    async def reset(self) -> None:
        for path in ("/admin/faults", "/admin/requests"):
            async with self.http.delete(self.url + path) as response:
                assert response.status == 204


@pytest.fixture
async def upstream(shared_url: str, http: aiohttp.ClientSession) -> AsyncIterator[Upstream]:
    """The shared server with no faults and an empty request log."""
    server = Upstream(shared_url, http)
    await server.reset()
    yield server
    await server.reset()
