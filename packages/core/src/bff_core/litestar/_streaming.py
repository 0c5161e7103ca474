"""Streamed answers: an aggregate's parts as events, as they end (SSE or NDJSON).

The same route, negotiated by ``Accept``: ``text/event-stream`` (Server-Sent Events, for
browsers) or ``application/x-ndjson`` (one JSON object per line, for the phones' HTTP
clients). Nothing is sent until the critical parts have arrived, so a failed critical part is
still the usual problem answer with its status (404/502/504). Then:

- ``ready``: ``{"parts": [...], "view": {...}}``, the client's view of the critical parts;
- ``part``: ``{"part", "view", "stale"[, "age"]}``, one per other part as soon as it ends, in
  the order they end: its value in the client's view (``stale`` with its age when it came from
  the cache past its freshness);
- ``failed``: ``{"source", "reason"[, "status"], "view"}``, like an ``errors`` entry, for a part
  that failed (``view`` sets it to ``null``);
- ``done``: ``{"errors", "stale", "timing"}``, the summary: every failure (a list's items
  included), every stale part, and each part's duration in milliseconds, ``total`` too.

A client merges each event's ``view`` into what it shows. In SSE each event is ``event:`` and
``data:`` lines; in NDJSON a line ``{"event": ..., "data": ...}``. When nothing happens for
``BFF_STREAM_HEARTBEAT_MS`` a heartbeat goes out (an SSE comment, ``{"event": "heartbeat"}``
in NDJSON), so idle proxies keep the stream open. The aggregation's deadline bounds the
stream; a client that goes away cancels the parts still running.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskGroup
from litestar.openapi.spec import OpenAPIType, Reference, Schema
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Send

from .._declare import Aggregate
from .._engine import AggregateStream, Gateway
from .._errors import AggregationFailed
from .._guards import Identity
from .._outcome import AggregateResult, PartOutcome
from .._report import part_errors, stale_parts
from ._edge import Exchange

__all__ = [
    "EVENT_STREAM",
    "NDJSON",
    "STREAMING_DESCRIPTION",
    "STREAM_TYPES",
    "event_schema",
    "stream_answer",
    "stream_schema",
]

EVENT_STREAM = "text/event-stream"
NDJSON = "application/x-ndjson"
STREAM_TYPES = (EVENT_STREAM, NDJSON)

_encode = msgspec.json.Encoder().encode
_SSE_HEARTBEAT = b": heartbeat\n\n"
_NDJSON_HEARTBEAT = b'{"event":"heartbeat"}\n'


#: Appended to every aggregate route's description in the OpenAPI document.
STREAMING_DESCRIPTION = """\
**Streaming.** With `Accept: text/event-stream` (Server-Sent Events) or
`Accept: application/x-ndjson` (one JSON object per line) the same answer comes as events, each
part as soon as it ends. Nothing is sent until the critical parts have arrived: if one failed,
the answer is the usual problem (404/502/504). Then: `ready` (`parts`, and `view`: the critical
parts in this view), one `part` per other part in the order they end (`part`, `view`, `stale`,
and `age` when stale) or `failed` for one that failed (`source`, `reason`, `status`, like an
`errors` entry, and `view` with it set to null), and last `done` (`errors`, `stale`, and
`timing`: each part's milliseconds and the `total`). Merge each `view` into what you show. A
heartbeat (an SSE comment, or `{"event": "heartbeat"}`) keeps a quiet stream open. In SSE an
event is `event: <name>` and `data: <the data as JSON>`; in NDJSON a line
`{"event": <name>, "data": <the data>}`."""


def event_schema() -> Schema:
    """The OpenAPI schema of one event (an NDJSON line; an SSE event carries the same)."""
    string, number, obj = OpenAPIType.STRING, OpenAPIType.NUMBER, OpenAPIType.OBJECT
    view = Schema(type=obj, description="fields of the answer's view, to merge into it")

    def event(name: str, data: Schema | None) -> Schema:
        if data is None:  # a heartbeat says nothing
            return Schema(
                type=obj,
                title=f"{name.capitalize()}Event",
                required=["event"],
                properties={"event": Schema(type=string, const=name)},
            )
        return Schema(
            type=obj,
            title=f"{name.capitalize()}Event",
            required=["event", "data"],
            properties={"event": Schema(type=string, const=name), "data": data},
        )

    return Schema(
        one_of=[
            event(
                "ready",
                Schema(
                    type=obj,
                    required=["parts", "view"],
                    properties={
                        "parts": Schema(type=OpenAPIType.ARRAY, items=Schema(type=string)),
                        "view": view,
                    },
                ),
            ),
            event(
                "part",
                Schema(
                    type=obj,
                    required=["part", "view", "stale"],
                    properties={
                        "part": Schema(type=string),
                        "view": view,
                        "stale": Schema(type=OpenAPIType.BOOLEAN),
                        "age": Schema(type=number, description="seconds, when stale"),
                    },
                ),
            ),
            event(
                "failed",
                Schema(
                    all_of=[
                        Reference(ref="#/components/schemas/PartError"),
                        Schema(type=obj, required=["view"], properties={"view": view}),
                    ]
                ),
            ),
            event(
                "done",
                Schema(
                    type=obj,
                    required=["errors", "stale", "timing"],
                    properties={
                        "errors": Schema(
                            type=OpenAPIType.ARRAY,
                            items=Reference(ref="#/components/schemas/PartError"),
                        ),
                        "stale": Schema(
                            type=OpenAPIType.ARRAY,
                            items=Reference(ref="#/components/schemas/StalePart"),
                        ),
                        "timing": Schema(
                            type=obj,
                            additional_properties=Schema(type=number),
                            description="milliseconds per part, and the total",
                        ),
                    },
                ),
            ),
            event("heartbeat", None),
        ]
    )


def stream_schema() -> Schema:
    """The OpenAPI schema of a streamed answer: its events, in the order they come."""
    return Schema(
        type=OpenAPIType.ARRAY,
        items=event_schema(),
        description="The events, in order (each an SSE event, or an NDJSON line)",
    )


#: writes given up on (held until they end, if they ever do: the loop keeps only weak references)
_abandoned: set[asyncio.Future[None]] = set()


class _Frames:
    """The events' frames, and how long one may take to leave before the client counts as
    gone."""

    __slots__ = ("events", "send_limit")

    def __init__(self, events: AsyncGenerator[bytes, None], send_limit: float) -> None:
        self.events = events
        self.send_limit = send_limit

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.events


class _Events(ASGIStreamingResponse):
    """Litestar's streaming response, made to notice a client that went away.

    granian tells an application that its client left only once a write fails, and a write to
    a connection the client closed may instead wait for ever. So a frame that cannot leave
    within ``send_limit`` ends the answer, and the events' generator is closed however the
    answer ends, which cancels the parts still running.
    """

    __slots__ = ()

    async def send_body(self, send: Send, receive: Receive) -> None:
        frames = self.iterator
        assert isinstance(frames, _Frames)

        async def stream(task_group: TaskGroup) -> None:
            async for frame in frames.events:
                # In a task of its own: a write stuck in granian does not heed a cancellation.
                sending = asyncio.ensure_future(
                    send({"type": "http.response.body", "body": frame, "more_body": True})
                )
                done, _ = await asyncio.wait((sending,), timeout=frames.send_limit)
                if not done:
                    _abandoned.add(sending)
                    sending.add_done_callback(_abandoned.discard)
                    break  # the client is gone
                sending.result()
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            task_group.cancel_scope.cancel()

        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(stream, task_group)
                await self._listen_for_disconnect(task_group.cancel_scope, receive)
        finally:
            await frames.events.aclose()


class EventStream(Stream):
    """A :class:`Stream` of events that notices a client gone (see ``_Events``)."""

    __slots__ = ()

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        # Litestar builds the response (status, headers, cookies, background) as for any
        # Stream; only the way its body is sent differs, so only the class is swapped.
        response = super().to_asgi_response(*args, **kwargs)
        assert isinstance(response, ASGIStreamingResponse)
        response.__class__ = _Events
        return response


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def _ndjson(event: str, data: Any) -> bytes:
    return _encode({"event": event, "data": data}) + b"\n"


class _Views:
    """The client's view of some parts: the route's view of a result holding only them."""

    __slots__ = ("_aggregate", "_view")

    def __init__(self, aggregate: str, view: Callable[[AggregateResult], Any]) -> None:
        self._aggregate = aggregate
        self._view = view

    def of(self, outcomes: Iterable[PartOutcome]) -> dict[str, Any]:
        partial = AggregateResult(self._aggregate, {o.name: o for o in outcomes}, 0.0)
        shown: dict[str, Any] = msgspec.to_builtins(self._view(partial))
        shown.pop("errors", None)  # told in the event itself, and in the summary
        shown.pop("stale", None)
        return shown


def _part_event(views: _Views, outcome: PartOutcome) -> tuple[str, dict[str, Any]]:
    view = views.of([outcome])
    if outcome.reason is not None:
        (error,) = part_errors([outcome])
        failed: dict[str, Any] = msgspec.to_builtins(error)
        failed["view"] = view
        return "failed", failed
    data: dict[str, Any] = {"part": outcome.name, "view": view, "stale": outcome.stale}
    if outcome.stale:
        data["age"] = round(outcome.age or 0.0, 1)
    return "part", data


def _summary(result: AggregateResult) -> dict[str, Any]:
    timing = {o.name: round(o.duration * 1000, 1) for o in result.values()}
    timing["total"] = round(result.duration * 1000, 1)
    return {
        "errors": msgspec.to_builtins(part_errors(result)),
        "stale": msgspec.to_builtins(stale_parts(result)),
        "timing": timing,
    }


async def stream_answer(
    gateway: Gateway,
    aggregate: Aggregate,
    view: Callable[[AggregateResult], Any],
    values: Mapping[str, str | None],
    fields: str | None,
    headers: Mapping[str, str],
    exchange: Exchange,
    identity: Identity | None,
    media_type: str,
    heartbeat: float,
) -> EventStream:
    """The streamed answer, once the critical parts have arrived.

    Raises :class:`AggregationFailed` (answered as a problem) when one of them failed.
    """
    stream = gateway.stream(aggregate, values, fields=fields, headers=headers, identity=identity)
    try:
        ready = await stream.ready()
    except AggregationFailed as failed:
        exchange.outcomes = failed.outcomes
        raise
    except BaseException:
        await stream.aclose()
        raise
    frame = _sse if media_type == EVENT_STREAM else _ndjson
    pulse = _SSE_HEARTBEAT if media_type == EVENT_STREAM else _NDJSON_HEARTBEAT
    views = _Views(aggregate.name, view)
    response_headers = {
        "cache-control": "no-cache",
        "vary": "Accept",
        # Proxies that buffer (nginx) are told not to: each event must leave when it is made.
        "x-accel-buffering": "no",
    }
    if identity is not None:
        response_headers["cache-control"] = "private, no-cache"
        response_headers["vary"] = "Accept, Authorization"
    return EventStream(
        # A frame waits at most two heartbeats (and a second) for a client to read it.
        _Frames(
            _events(stream, ready, views, frame, pulse, heartbeat, exchange), 2 * heartbeat + 1.0
        ),
        media_type=media_type,
        headers=response_headers,
    )


async def _events(
    stream: AggregateStream,
    ready: list[PartOutcome],
    views: _Views,
    frame: Callable[[str, Any], bytes],
    pulse: bytes,
    heartbeat: float,
    exchange: Exchange,
) -> AsyncGenerator[bytes, None]:
    following: asyncio.Task[PartOutcome] | None = None
    try:
        yield frame("ready", {"parts": [o.name for o in ready], "view": views.of(ready)})
        parts = aiter(stream)
        while True:
            if following is None:
                following = asyncio.ensure_future(anext(parts))
            done, _ = await asyncio.wait((following,), timeout=heartbeat)
            if not done:
                yield pulse
                continue
            try:
                outcome = following.result()
            except StopAsyncIteration:
                break
            finally:
                following = None
            yield frame(*_part_event(views, outcome))
        result = stream.result
        assert result is not None
        exchange.outcomes = result.values()
        yield frame("done", _summary(result))
    finally:
        # The end, or the client went away (the stream is cancelled): nothing keeps running.
        # Shielded: in a cancelled anyio scope (Litestar's, on a disconnect) every await would
        # be cancelled again at once, and the parts would run on.
        with anyio.CancelScope(shield=True):
            if following is not None:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)
            await stream.aclose()
