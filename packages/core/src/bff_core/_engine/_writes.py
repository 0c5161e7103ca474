"""One write: a :class:`~bff_core.Mutation` carried out for a verified caller.

In order, and nothing sent before the first three pass: the caller (a write needs one), the
route's parameters, the body (decoded into the declared type, the one place a client's JSON is
judged); then the upstream request through :meth:`Upstreams.write` (a write's resilience: no
hedge, no coalescing, no cache); then, after a 2xx, the cached parts it touched are dropped on
every instance and the answer is made: the upstream's, decoded, or the declared aggregate read
afresh. Every way to fail is a :class:`WriteFailed` with the status to answer (or
:class:`InvalidParameter`/:class:`InvalidBody` before anything was sent).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from .._deadline import Deadline
from .._declare import Mutation
from .._errors import (
    CircuitOpen,
    InvalidBody,
    InvalidParameter,
    OutcomeUnknown,
    ResponseTooLarge,
    UpstreamUnavailable,
    WriteFailed,
)
from .._guards import IDEMPOTENCY_HEADER, Identity, check_idempotency_key
from .._outcome import AggregateResult
from .._upstream import Upstreams

__all__ = ["WriteResult", "carry_out", "decode_body"]

logger = logging.getLogger("bff_core")

_ACCEPT_JSON = {"accept": "application/json"}
_EMPTY_BODIES = (b"", b"{}")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A write that took effect: the upstream's status, and what to answer."""

    #: the upstream's 2xx status (201 for a created order or review, 200 for a set line)
    status: int
    #: the upstream's answer decoded into ``returns`` (``None`` with ``then``)
    value: Any
    #: the aggregate read after the write (``then``), else ``None``
    aggregate: AggregateResult | None
    #: the cache tags dropped (on every instance)
    invalidated: tuple[str, ...]


def decode_body(mutation: Mutation, body: bytes | None) -> Any:
    """The client's body as ``mutation.body`` (``None`` when it declares none).

    Raises :class:`InvalidBody` naming the field that is wrong and what was expected, never
    the value sent.
    """
    raw = body or b""
    decoder = mutation.body_decoder
    if decoder is None:
        if raw.strip() in _EMPTY_BODIES:
            return None
        raise InvalidBody("this write takes no body (send none, or {})")
    if not raw.strip():
        raise InvalidBody("a JSON body is required")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        whole = _with_whole_numbers(mutation, raw)
        if whole is not None:
            return whole
        # msgspec says "Expected `int`, got `str` - at `$.quantity`": the path and the
        # expectation, never the value.
        text = str(exc)
        path = text.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in text else "$"
        raise InvalidBody(f"invalid body: {text}", fields=(path,)) from None
    except msgspec.DecodeError:
        raise InvalidBody("the body is not valid JSON") from None


def _with_whole_numbers(mutation: Mutation, raw: bytes) -> Any:
    """The body, if it is valid once every whole float (``3.0``) is read as an integer; else
    ``None``. JSON has one kind of number, and to JSON Schema (the route's documented type)
    ``3.0`` is the integer 3; msgspec wants it written ``3``. Only tried on a body already
    refused, so a valid one costs nothing more."""
    try:
        content = msgspec.json.decode(raw)
        return msgspec.convert(_whole_floats_as_ints(content), mutation.body, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def _whole_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    return value


def _forwarded(mutation: Mutation, value: Any, subject: str) -> bytes:
    """What the upstream gets: the validated body, plus the caller where it is declared."""
    content: dict[str, Any] = {} if value is None else msgspec.to_builtins(value)
    if mutation.user_field is not None:
        content[mutation.user_field] = subject
    return msgspec.json.encode(content)


async def carry_out(
    mutation: Mutation,
    *,
    base_url: str,
    upstreams: Upstreams,
    params: Mapping[str, str | None],
    body: bytes | None,
    identity: Identity | None,
    idempotency_key: str | None,
    headers: Mapping[str, str] | None,
    time_limit: float,
    invalidate: Callable[[Sequence[str]], Awaitable[object]],
    read: Callable[[Mapping[str, str]], Awaitable[AggregateResult]],
) -> WriteResult:
    """Carry out ``mutation`` once (see the module documentation)."""
    name = mutation.name
    if identity is None:
        raise WriteFailed(name, "unauthenticated", 401, "a write needs a signed-in user")
    values = mutation.validate_params(params)
    value = decode_body(mutation, body)
    request_headers = dict(_ACCEPT_JSON) if headers is None else {**_ACCEPT_JSON, **headers}
    if idempotency_key is not None or mutation.needs_key:
        if idempotency_key is None:
            raise InvalidParameter(
                f"an {IDEMPOTENCY_HEADER} header is required", parameter=IDEMPOTENCY_HEADER
            )
        request_headers[IDEMPOTENCY_HEADER.lower()] = check_idempotency_key(idempotency_key)
    if mutation.subject_header is not None:
        request_headers[mutation.subject_header] = identity.subject
    values["user"] = identity.subject
    url = base_url + mutation.render(values)
    deadline = Deadline.after(mutation.timeout or time_limit)
    response = await _send(mutation, upstreams, url, request_headers, value, identity, deadline)
    tags = mutation.invalidated(values)
    if tags:
        try:
            await invalidate(tags)
        except Exception:
            # The write took effect; a cache that could not be told ages out by its TTL.
            logger.warning("mutation %s: could not invalidate %s", name, tags, exc_info=True)
    if mutation.then is not None:
        read_params = {p.name: values[p.name] for p in mutation.then.params if p.name in values}
        aggregate = await read(read_params)
        return WriteResult(response.status, None, aggregate, tuple(tags))
    assert mutation.answer_decoder is not None
    try:
        answer = mutation.answer_decoder.decode(response.body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise WriteFailed(
            name, "bad_answer", 502, f"the write took effect but its answer is malformed: {exc}"
        ) from None
    return WriteResult(response.status, answer, None, tuple(tags))


async def _send(
    mutation: Mutation,
    upstreams: Upstreams,
    url: str,
    headers: Mapping[str, str],
    value: Any,
    identity: Identity,
    deadline: Deadline,
) -> Any:
    name = mutation.name
    content = _forwarded(mutation, value, identity.subject)
    try:
        response = await upstreams.write(mutation, url, headers, content, deadline)
    except OutcomeUnknown as exc:
        status = 504 if exc.timed_out else 502
        why = "no answer came by the deadline" if exc.timed_out else "the connection was lost"
        raise WriteFailed(
            name,
            "outcome_unknown",
            status,
            f"the outcome is unknown: the request was sent and {why}; it may have taken "
            "effect (look before trying again: a retry with this Idempotency-Key is never sent "
            "again and answers the same)",
        ) from exc
    except CircuitOpen as exc:
        raise WriteFailed(name, "circuit_open", 503, f"not sent: {exc}") from exc
    except TimeoutError as exc:
        raise WriteFailed(name, "timeout", 504, "not sent before the deadline") from exc
    except UpstreamUnavailable as exc:
        raise WriteFailed(name, "unavailable", 502, f"not sent: {exc}") from exc
    except ResponseTooLarge as exc:
        raise WriteFailed(name, "bad_answer", 502, f"the answer is too large: {exc}") from exc
    status = response.status
    if 200 <= status < 300:
        return response
    if 400 <= status < 500 and status != 429:
        raise WriteFailed(
            name, "rejected", status, f"the upstream refused it ({status})", upstream_status=status
        )
    raise WriteFailed(
        name, "upstream_status", 502, f"the upstream failed ({status})", upstream_status=status
    )
