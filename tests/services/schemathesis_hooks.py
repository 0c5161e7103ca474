"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in the contract-fuzzing test: lets it read the
MessagePack answers too, so they are validated against the schema like the JSON ones."""

from __future__ import annotations

from typing import Any

import msgspec
import schemathesis


@schemathesis.deserializer(
    "application/msgpack", "application/vnd.msgpack", "application/x-msgpack"
)
def msgpack(ctx: Any, response: Any) -> Any:
    return msgspec.msgpack.decode(response.content)
