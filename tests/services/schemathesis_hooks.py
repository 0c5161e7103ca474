"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in the contract-fuzzing test: lets it read the
MessagePack answers and the streamed ones (SSE, NDJSON: the list of their events) too, so they
are validated against the schema like the JSON ones, and gives every write a fresh
``Idempotency-Key``, as a client does for each attempt."""

from __future__ import annotations

import re
import uuid
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


#: A key the schema allows (1 to 255 printable ASCII characters); the BFF's own rule.
_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A fresh key in place of a valid generated one: generated keys repeat ("0", " "), and
    a repeated key is, rightly, a replay or a 422 for another body. An invalid key, or none,
    is left as it is: the negative cases check that the BFF refuses it."""
    headers = case.headers or {}
    for name, value in list(headers.items()):
        valid = isinstance(value, str) and _VALID_KEY.fullmatch(value) is not None
        if name.lower() == "idempotency-key" and valid:
            headers[name] = f"fuzz-{uuid.uuid4()}"
