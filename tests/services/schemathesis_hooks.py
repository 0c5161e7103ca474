"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in the contract-fuzzing test: lets it read the
MessagePack answers and the streamed ones (SSE, NDJSON: the list of their events) too, so they
are validated against the schema like the JSON ones."""

from __future__ import annotations

from typing import Any

import msgspec
import schemathesis


@schemathesis.deserializer(
    "application/msgpack", "application/vnd.msgpack", "application/x-msgpack"
)
def msgpack(ctx: Any, response: Any) -> Any:
    return msgspec.msgpack.decode(response.content)


@schemathesis.deserializer("application/x-ndjson")
def ndjson(ctx: Any, response: Any) -> Any:
    return [msgspec.json.decode(line) for line in response.content.splitlines() if line]


@schemathesis.deserializer("text/event-stream")
def event_stream(ctx: Any, response: Any) -> Any:
    events = []
    for block in response.content.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if fields:
            events.append({"event": fields["event"], "data": msgspec.json.decode(fields["data"])})
    return events
