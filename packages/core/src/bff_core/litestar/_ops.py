"""The operations listener (``BFF_OPS_PORT``): ``/metrics`` and ``/admin/*`` on a port of their
own, which the load balancer never forwards (``docs/decisions/0016-operations-listener.md``).

granian serves one address, so the listener is a second, small HTTP/1.1 server that every
worker process runs beside granian's, in its own event loop, from the application's lifespan:
it answers with the worker's own gateway (its metrics add up every worker's, through
``BFF_METRICS_DIR``; an invalidation reaches the other workers and instances through Redis, as
on the serving port). The workers share the port (``SO_REUSEPORT``): the kernel spreads the
connections among them, as granian's listener does. h11 reads and writes HTTP; the answers come
from a Litestar application of their own (:func:`operations_app`) with only those routes, so an
operator gets the same answers, problems included, as on the serving port without the setting.

What it accepts is bounded as the serving port's edge bounds it: a request head of 16 KiB, a
body of 64 KiB, 10 seconds of silence, a few hundred connections at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
from litestar import Litestar
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, ControllerRouterHandler, Message

from .._engine import Gateway
from .._errors import RequestError
from ._edge import edge_filters, edge_middleware
from ._problems import on_http_exception, on_request_error, on_unexpected

__all__ = ["OperationsListener", "operations_app"]

logger = logging.getLogger("bff_core")

_MAX_HEAD_BYTES = 16 * 1024
_MAX_BODY_BYTES = 64 * 1024
_IDLE_S = 10.0
_MAX_CONNECTIONS = 256


def operations_app(
    gateway: Gateway,
    admin_token: str | None,
    routes: Sequence[ControllerRouterHandler],
    *,
    access_log: bool = False,
) -> Litestar:
    """The application the operations listener answers with: ``routes`` (the metrics and the
    admin API), the gateway in its state as the serving application has it, problem answers,
    no OpenAPI document. Its lifespan is never run: the serving application's owns the
    gateway."""
    # The edge's own filters that concern these routes: the request id, the hygiene bounds,
    # and the requests' metrics (a scrape is counted as it is on the serving port).
    filters = edge_filters(metrics=gateway.metrics, access_log=access_log)
    return Litestar(
        route_handlers=list(routes),
        middleware=[edge_middleware(filters)],
        exception_handlers={
            RequestError: on_request_error,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
        state=State({"gateway": gateway, "admin_token": admin_token}),
        openapi_config=None,
        logging_config=None,
    )


class OperationsListener:
    """Serves ``app`` over HTTP/1.1 on ``host:port`` between :meth:`start` and :meth:`aclose`."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._app = app
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Listen; an :class:`OSError` (the port taken by another program) stops start-up."""
        self._server = await asyncio.start_server(
            self._serve,
            self.host,
            self.port,
            # Every worker of one server listens on the port; the kernel balances them.
            reuse_port=True,
            limit=_MAX_HEAD_BYTES,
        )
        logger.debug("operations listener on %s:%d", self.host, self.port)

    async def aclose(self) -> None:
        """Stop listening, and end the connections still open (a scrape in flight ends)."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= _MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD_BYTES)
        try:
            while await self._exchange(connection, reader, writer):
                connection.start_next_cycle()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went, or stayed silent too long
        except h11.ProtocolError as exc:
            if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = getattr(exc, "error_status_hint", 400)
                with contextlib.suppress(ConnectionError, h11.ProtocolError):
                    await self._respond(connection, writer, b"GET", status, [], b"")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _exchange(
        self, connection: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """One request and its answer; whether the connection may carry another."""
        request = await self._next(connection, reader)
        if not isinstance(request, h11.Request):
            return False  # closed between requests
        body = bytearray()
        while True:
            event = await self._next(connection, reader)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY_BYTES:
                    await self._respond(connection, writer, request.method, 413, [], b"")
                    return False
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return False
        target = bytes(request.target)
        if not target.startswith(b"/"):
            await self._respond(connection, writer, request.method, 400, [], b"")
            return False
        status, headers, content = await self._call(request, target, bytes(body), writer)
        await self._respond(connection, writer, request.method, status, headers, content)
        return connection.our_state is h11.DONE and connection.their_state is h11.DONE

    async def _next(self, connection: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = connection.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await asyncio.wait_for(reader.read(_MAX_HEAD_BYTES), _IDLE_S)
            connection.receive_data(data)  # b"" is the end of the stream

    async def _call(
        self, request: h11.Request, target: bytes, body: bytes, writer: asyncio.StreamWriter
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """``request`` through the ASGI application: its status, headers and whole body."""
        path, _, query = target.partition(b"?")
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method.decode("ascii"),
            "scheme": "http",
            "path": unquote(path.decode("latin-1")),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": [(bytes(name), bytes(value)) for name, value in request.headers],
            "client": tuple(peer[:2]) if peer else None,
            "server": tuple(local[:2]) if local else None,
            "state": {},
        }
        received = False
        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal received
            if received:
                return {"type": "http.disconnect"}
            received = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        try:
            await self._app(scope, receive, send)  # type: ignore[arg-type]
        except Exception:
            logger.exception("the operations listener failed on %s", path.decode("latin-1"))
            return 500, [], b""
        if not started:
            return 500, [], b""
        headers = [
            (bytes(name), bytes(value))
            for name, value in started.get("headers", ())
            if bytes(name).lower() not in (b"content-length", b"transfer-encoding", b"connection")
        ]
        return int(started["status"]), headers, b"".join(chunks)

    @staticmethod
    async def _respond(
        connection: h11.Connection,
        writer: asyncio.StreamWriter,
        method: bytes,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content: bytes,
    ) -> None:
        length = str(len(content)).encode()  # for HEAD too; h11 then sends no body
        response = h11.Response(
            status_code=status,
            headers=[*headers, (b"content-length", length)],
            reason=_reason(status),
        )
        writer.write(connection.send(response) or b"")
        if content and method != b"HEAD":
            writer.write(connection.send(h11.Data(data=content)) or b"")
        writer.write(connection.send(h11.EndOfMessage()) or b"")
        await writer.drain()


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
