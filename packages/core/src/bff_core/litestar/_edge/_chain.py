"""The edge: one ASGI layer around every route that runs a chain of filters (Envoy's HTTP filter
chain is the model), assembled once from the settings.

A filter that is not configured (CORS without origins, compression off, tracing off, no
identity nor limits) is not in the chain, and a side a filter does not define is not called:
the hot path pays a plain method call per side that exists, in one ASGI hop, and one
:class:`Exchange` per request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter

from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from ..._guards import Network, RateLimits, TokenVerifier
from ..._telemetry import Metrics, Tracing
from ._access_log import AccessLog
from ._compression import Compression
from ._cors import CorsPolicy
from ._exchange import EXCHANGE, Exchange
from ._filter import Filter, Reply, send_reply
from ._guard import Guard
from ._hygiene import Hygiene
from ._nosniff import Nosniff
from ._request_id import RequestId
from ._telemetry import RequestMetrics, ServerSpan

__all__ = ["Edge", "edge_filters", "edge_middleware"]

_OnBody = Callable[[Exchange, HTTPResponseStartEvent, HTTPResponseBodyEvent], HTTPResponseBodyEvent]


def edge_filters(
    *,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
    access_log: bool = False,
    cors: CorsPolicy | None = None,
    compression: Compression | None = None,
    verifier: TokenVerifier | None = None,
    rate_limits: RateLimits | None = None,
    trusted_proxies: Sequence[Network] = (),
    realm: str = "bff",
) -> tuple[Filter, ...]:
    """The edge's filters, in their order, each only when it is configured.

    The order is the order of effects: the request id first (everything else names it);
    requests too large or with a body where none belongs refused before CORS answers a
    preflight (and with the CORS headers, so that a page can read the refusal); the security
    headers and compression on every answer; the server span around all that follows; the
    metrics and the access log once the answer is sent (after the span has ended); the guard
    last, after every answer the edge gives by itself.
    """
    chain: list[Filter] = [RequestId(), Hygiene()]
    if cors is not None:
        chain.append(cors)
    chain.append(Nosniff())
    if compression is not None:
        chain.append(compression)
    if tracing is not None:
        chain.append(ServerSpan(tracing))
    if metrics is not None:
        chain.append(RequestMetrics(metrics))
    if access_log:
        chain.append(AccessLog())
    if verifier is not None or rate_limits is not None:
        chain.append(Guard(verifier, rate_limits, trusted_proxies, realm, metrics))
    return tuple(chain)


def edge_middleware(filters: Sequence[Filter]) -> DefineMiddleware:
    """The edge as an application's middleware (around every route, after routing: the route
    is known to the metrics, the span and the guard)."""
    return DefineMiddleware(_edge, filters=tuple(filters))


def _edge(app: ASGIApp, filters: tuple[Filter, ...]) -> ASGIApp:
    # The bound method, not the instance: the server calls it for every request, and a bound
    # method is called without looking up ``__call__`` first.
    return Edge(app, filters).__call__


class Edge:
    """One ASGI layer running ``filters`` (see ``_filter`` for their sides) around ``app``."""

    __slots__ = ("_admits", "_app", "_dones", "_requests", "_responses")

    def __init__(self, app: ASGIApp, filters: Sequence[Filter]) -> None:
        self._app = app
        # Bound once: the hot path calls each side straight from a tuple.
        self._requests = tuple(f.on_request for f in filters if f.defines("on_request"))
        self._admits = tuple(f.on_admit for f in filters if f.defines("on_admit"))
        self._responses = tuple(
            (f.on_response, f.on_body) for f in filters if f.defines("on_response")
        )
        self._dones = tuple(f.on_done for f in filters if f.defines("on_done"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        exchange = Exchange(scope)
        scope.setdefault("state", {})[EXCHANGE] = exchange
        reply: Reply | None = None
        for on_request in self._requests:
            given = on_request(exchange)
            if reply is None:
                reply = given
        try:
            if reply is not None:
                exchange.status = await send_reply(reply, send, exchange.headers)
                return
            responses = self._responses
            held: HTTPResponseStartEvent | None = None
            on_held_body: _OnBody | None = None

            async def respond(message: Message) -> None:
                """``send`` behind the filters' response sides."""
                nonlocal held, on_held_body
                if message["type"] == "http.response.start":
                    exchange.status = message["status"]
                    answered = message.get("headers", ())
                    if type(answered) is not list:  # read twice: by the chain, by the sides
                        answered = list(answered)
                    headers = [*answered, *exchange.headers]
                    for on_response, on_body in responses:
                        if on_response(exchange, answered, headers):
                            on_held_body = on_body  # until the body says what to do
                    message["headers"] = headers
                    if on_held_body is not None:
                        held = message
                        return
                elif held is not None and message["type"] == "http.response.body":
                    assert on_held_body is not None
                    start, held = held, None
                    message = on_held_body(exchange, start, message)
                    await send(start)
                await send(message)

            for on_admit in self._admits:
                reply = await on_admit(exchange)
                if reply is not None:
                    await send_reply(reply, respond)
                    return
            await self._app(scope, receive, respond)
        finally:
            exchange.elapsed = perf_counter() - exchange.started
            for on_done in self._dones:
                on_done(exchange)
            # The scope's state holds the exchange: without the scope, the request's objects
            # go when their last reference does, not when the cycle collector finds them.
            del exchange.scope
