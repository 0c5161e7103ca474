"""Aggregate routes: the query, the whole-answer cache, ETag and 304, Server-Timing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints
from urllib.parse import parse_qsl, quote

import msgspec
from litestar import MediaType, Request, Response
from litestar.enums import ScopeType
from litestar.exceptions import MethodNotAllowedException
from litestar.handlers import ASGIRouteHandler, asgi
from litestar.types import Message, Receive, Scope, Send

from .._declare import Aggregate
from .._engine import Gateway
from .._errors import AggregationFailed, DeclarationError, InvalidParameter
from .._guards import Identity
from .._outcome import AggregateResult
from .._report import Problem
from ._edge import (
    AGGREGATE_OPT,
    EXCHANGE,
    REQUEST_ID_HEADER,
    Exchange,
    Reply,
    problem_reply,
    send_reply,
    weighted,
)
from ._streaming import STREAM_TYPES, stream_answer

T = TypeVar("T")


def aggregate_response(result: AggregateResult, payload: T) -> Response[T]:
    """Answer ``payload`` with a ``Server-Timing`` header giving each part's duration."""
    return Response(payload, headers={"server-timing": result.server_timing()})


def aggregate_route(
    path: str,
    aggregate: Aggregate,
    view: Callable[[AggregateResult], T],
    *,
    summary: str,
    description: str | None = None,
) -> ASGIRouteHandler:
    """``GET path``: run ``aggregate`` with the query's parameters and answer ``view(result)``.

    The query holds the aggregate's parameters and ``fields`` (comma-separated part names;
    the other parts' upstreams are not called). A parameter given twice is a 400, like every
    malformed request. The OpenAPI document shows the parameters and the view's type, which
    must be the return annotation of ``view``.

    This is the hot path, so the route is a Litestar ASGI route handler: the application's
    middleware (the edge and its filters) and exception handlers (every problem answer) are around
    it as around every route, but not Litestar's per-request handler machinery (the request
    object, parameter and dependency injection, the response object and its conversion), which
    cost more than the rest of the route together (``docs/decisions/0012-hot-path-second-pass.md``).
    Its operation is documented as an ordinary ``GET`` handler's would be: :class:`GatewayPlugin`
    hands such a handler, built from the route's :class:`Declared` but never routed, to the
    OpenAPI document (``_openapi``).
    """
    view_type = get_type_hints(view).get("return")
    if view_type is None:
        raise DeclarationError(f"view {view!r} of route {path} needs a return annotation")
    names = frozenset(p.name for p in aggregate.params) | {"fields"}

    encoders = {
        MediaType.JSON.value: msgspec.json.Encoder().encode,
        **dict.fromkeys(MSGPACK_TYPES, msgspec.msgpack.Encoder().encode),
    }
    # A whole answer read from Redis is served only if it decodes as the view: anything that
    # can write to Redis could have written it.
    decoders: dict[str, Callable[[bytes], object]] = {
        MediaType.JSON.value: msgspec.json.Decoder(view_type).decode,
        **dict.fromkeys(MSGPACK_TYPES, msgspec.msgpack.Decoder(view_type).decode),
    }
    # Whole answers are cached under the view's shape too: a release that changes the view
    # never reads an answer encoded by the one before.
    view_shape = hashlib.blake2b(
        msgspec.json.encode(msgspec.json.schema(view_type)), digest_size=6
    ).hexdigest()
    param_names = [p.name for p in aggregate.params]
    uses_identity = aggregate.uses_identity
    requires_caller = aggregate.requires_identity

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:  # a websocket: refused (servers answer 403)
            await send({"type": "websocket.close", "code": 1008, "reason": "not a websocket"})
            return
        method = scope["method"]
        if method != "GET":
            await _not_get(method, send)
            return
        query = _query(scope["query_string"], names)
        app = scope["app"]
        gateway: Gateway = app.state.gateway
        exchange: Exchange = scope["state"][EXCHANGE]  # the edge is around every route
        if requires_caller and exchange.identity is None:
            # The guard refuses first; a BFF without identity has no guard, and a screen a
            # write answers (the cart) starts there and must answer no one's: 401, as writes.
            await send_reply(_no_caller(scope["path"]), send)
            return
        if_none_match = exchange.request_headers.get(b"if-none-match")
        # The request id travels to every upstream this request calls.
        headers = {REQUEST_ID_HEADER: exchange.request_id}
        media_type = _negotiate(exchange.request_headers.get(b"accept"))
        # The verified caller (the guard left it), if any: only the sources that declare it
        # get it, and then the answer is this caller's own.
        identity: Identity | None = exchange.identity if uses_identity else None
        if media_type in STREAM_TYPES:
            streamed = await stream_answer(
                gateway,
                aggregate,
                view,
                query,
                query.get("fields"),
                headers,
                exchange,
                identity,
                media_type,
                app.state.stream_heartbeat,
            )
            request: Request[Any, Any, Any] = Request(scope, receive, send)
            # app=None: Litestar finds the app on the request (passing it is deprecated).
            await streamed.to_asgi_response(app=None, request=request)(scope, receive, send)
            return
        encode = encoders[media_type]
        cache = gateway.cache
        private = identity is not None
        if cache is None:
            result = await _run(
                gateway, aggregate, query, query.get("fields"), headers, exchange, identity
            )
            await _send_body(
                send,
                encode(view(result)),
                if_none_match,
                result.server_timing(),
                media_type,
                private,
            )
            return
        values = aggregate.validate_params(query)
        fields = aggregate.plan(query.get("fields")).reported
        encoded = "&".join(f"{n}={quote(values[n], safe='')}" for n in param_names)
        key = (
            f"agg:{aggregate.name}:{view_shape}:{encoded}:{','.join(sorted(fields))}"
            f":{'json' if media_type == MediaType.JSON.value else 'msgpack'}"
        )
        if identity is not None:
            key += ":user=" + identity.digest
        cached = await cache.answer(key, decoders[media_type])
        if gateway.metrics is not None:
            gateway.metrics.observe_answer(aggregate.name, cached is not None)
        if cached is not None:
            exchange.answer_cache = "hit"
            await _send_body(send, cached.body, if_none_match, _CACHE_HIT, media_type, private)
            return
        exchange.answer_cache = "miss"
        result = await _run(
            gateway, aggregate, values, query.get("fields"), headers, exchange, identity
        )
        body = encode(view(result))
        if (fresh_for := result.fresh_for) > 0:
            # Tagged with its parameters and its lists' items: invalidating a product drops
            # the grids that show it too.
            tags = [f"{n}={values[n]}" for n in param_names]
            cache.keep_answer(key, body, fresh_for, [*tags, *result.item_tags()])
        await _send_body(send, body, if_none_match, result.server_timing(), media_type, private)

    name = f"aggregate_{aggregate.name}"
    answer.__annotations__ = {"scope": Scope, "receive": Receive, "send": Send, "return": None}
    answer.__name__ = answer.__qualname__ = name
    declared = Declared(path, aggregate, view_type, name, summary, description)
    return asgi(path, copy_scope=False, opt={AGGREGATE_OPT: aggregate, DECLARED_OPT: declared})(
        answer
    )


#: ``opt`` key of an aggregate route: its :class:`Declared`, for the OpenAPI document.
DECLARED_OPT = "bff_declared"


@dataclass(frozen=True)
class Declared:
    """What an aggregate route was declared with: ``_openapi`` documents its operation as an
    ordinary ``GET`` handler's would be, from this."""

    path: str
    aggregate: Aggregate
    view_type: Any
    name: str
    summary: str
    description: str | None


_CACHE_HIT = 'cache;desc="hit"'
_ALLOWED = "GET, OPTIONS"


def _no_caller(path: str) -> Reply:
    problem = Problem(
        type="urn:bff:problem:unauthorized",
        title="Unauthorized",
        status=401,
        detail="this route needs a bearer token",
        instance=path,
    )
    return problem_reply(problem, [(b"www-authenticate", b"Bearer")])


async def _not_get(method: str, send: Send) -> None:
    """What a ``GET`` route answers to other methods, as Litestar answers them."""
    if method == "OPTIONS":
        headers = [(b"allow", _ALLOWED.encode()), (b"content-type", b"text/plain; charset=utf-8")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    raise MethodNotAllowedException(headers={"allow": _ALLOWED})


async def _run(
    gateway: Gateway,
    aggregate: Aggregate,
    values: Mapping[str, str | None],
    fields: str | None,
    headers: Mapping[str, str],
    exchange: Exchange,
    identity: Identity | None,
) -> AggregateResult:
    """``gateway.run``, leaving every part's outcome for the access log."""
    try:
        result = await gateway.run(
            aggregate, values, fields=fields, headers=headers, identity=identity
        )
    except AggregationFailed as failed:
        exchange.outcomes = failed.outcomes
        raise
    exchange.outcomes = result.values()
    return result


#: MessagePack's media types, the registered one first; a client's spelling is answered in kind.
MSGPACK_TYPES = ("application/msgpack", "application/vnd.msgpack", "application/x-msgpack")
_JSON_RANGES = ("application/json", "application/*", "*/*")
_OTHER_TYPES = (*MSGPACK_TYPES, *STREAM_TYPES)


def _negotiate(accept: bytes | None) -> str:
    """JSON, unless ``Accept`` prefers MessagePack (one of its types), Server-Sent Events or
    NDJSON (RFC 9110 q-values; JSON on a tie with a range that covers it)."""
    if accept is None or not (
        b"msgpack" in accept or b"event-stream" in accept or b"ndjson" in accept
    ):
        return MediaType.JSON.value  # the hot path: no parsing
    best, best_q, json_q = MediaType.JSON.value, 0.0, 0.0
    for media, quality in weighted(accept):
        if media in _OTHER_TYPES and quality > best_q:
            best, best_q = media, quality
        elif media in _JSON_RANGES:
            json_q = max(json_q, quality)
    return best if best_q > 0 and best_q >= json_q else MediaType.JSON.value


async def _send_body(
    send: Send,
    body: bytes,
    if_none_match: bytes | None,
    timing: str,
    media_type: str = MediaType.JSON.value,
    private: bool = False,
) -> None:
    """The encoded answer with its ETag, or 304 when the client already has it."""
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    # no-cache: clients may keep the answer but ask again, with If-None-Match, every time.
    # Vary: the answer depends on Accept (JSON or MessagePack).
    headers = [
        (b"server-timing", timing.encode("latin-1")),
        (b"etag", etag.encode()),
        # One caller's own answer: no shared cache may keep it for another.
        (b"cache-control", b"private, no-cache" if private else b"no-cache"),
        (b"vary", b"Accept, Authorization" if private else b"Accept"),
    ]
    start: Message
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        start = {"type": "http.response.start", "status": 304, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    headers.append((b"content-type", media_type.encode()))
    headers.append((b"content-length", str(len(body)).encode()))
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _etag_matches(if_none_match: bytes, etag: str) -> bool:
    # RFC 9110 13.1.2: weak comparison, a list of tags, or "*".
    text = if_none_match.decode("latin-1").strip()
    if text == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in text.split(","))


def _query(raw: bytes, names: frozenset[str]) -> dict[str, str]:
    """The query parameters this route knows; a known one given twice is refused."""
    query: dict[str, str] = {}
    if not raw:
        return query
    text = raw.decode("utf-8", "replace")
    pairs: Iterable[tuple[str, str]]
    if "%" in text or "+" in text or ";" in text:
        pairs = parse_qsl(text, keep_blank_values=True)
    else:  # nothing to decode: the common case, without urllib's general machinery
        pairs = (pair.partition("=")[::2] for pair in text.split("&") if pair)
    for name, value in pairs:
        if name in names:
            if name in query:
                raise InvalidParameter(
                    f"query parameter {name!r} is given more than once", parameter=name
                )
            query[name] = value
    return query
