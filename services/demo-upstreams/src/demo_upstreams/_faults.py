"""Fault definitions, the run-time fault registry and the ``--fault`` flag syntax."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping
from typing import Annotated, Any, Final

import msgspec

__all__ = [
    "IDS_SEPARATOR",
    "MAX_FAULT_IDS",
    "SERVICES",
    "Fault",
    "FaultRegistry",
    "parse_fault_flags",
    "validate_fault",
]

SERVICES: Final[tuple[str, ...]] = (
    "product",
    "inventory",
    "pricing",
    "reviews",
    "category",
    "recommendations",
    "cart",
    "orders",
)
"""The simulated services, as named in the admin API and in ``--fault``.

The review write (``POST /reviews/{id}``) is the reviews service's: a fault of ``reviews``
applies to it as to the reads.
"""

MAX_FAULT_IDS: Final = 50
"""The most ids one fault may be scoped to (as many as one batch read may name)."""


# A header value: printable ASCII, no leading or trailing space (HTTP trims those), 1-200
# characters. \A and \Z because ``$`` would also match before a final newline.
_CacheControl = Annotated[str, msgspec.Meta(max_length=200, pattern=r"\A[!-~](?:[ -~]*[!-~])?\Z")]
_Ids = Annotated[
    tuple[Annotated[str, msgspec.Meta(min_length=1)], ...],
    msgspec.Meta(min_length=1, max_length=MAX_FAULT_IDS),
]


class Fault(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """A misbehaviour to inject into one service's answers.

    When a request draws the fault (see ``rate`` and ``count``) its parts apply in this order:
    ``latency_ms`` is added to the service's usual latency; then ``hang`` (never answer, until
    the client goes away or the server stops) or ``drop`` (close the TCP connection without an
    answer) ends the request. Otherwise the answer's status is ``status`` (200 if unset) and its
    body, by precedence, ``malformed`` (the normal JSON cut short), ``wrong_shape`` (valid JSON
    of the wrong type: an array where an object is expected, an object where an array is),
    ``huge_bytes`` (a valid JSON object of exactly that many bytes), an error object when
    ``status`` is set, else the normal body. ``cache_control`` replaces the service's
    ``Cache-Control`` header on a 200 answer (error answers always carry ``no-store``); a
    fault with only ``cache_control`` (and perhaps ``latency_ms``) serves the normal body.

    ``ids`` (1 to 50 non-empty strings) scopes the fault to the requests that name one of them,
    so one product can fail while its neighbours on a list screen do not: the id of a single
    read, any id in a batch read's ``?ids=``, a category's slug, a recommendations user. Other
    requests are served normally and neither roll ``rate`` nor use up ``count``. Without
    ``ids`` every request of the service may draw the fault. A batch read that draws a fault
    with ``ids`` and ``status: 404`` answers 200 and leaves those ids out, as it does for ids it
    does not know (the other statuses fail the whole batch request): one product's price can go
    missing on a grid while the others' come.

    ``after_write`` matters to writes (``PUT /carts/...``, ``POST /orders``, ``POST
    /reviews/...``): without it a fault strikes before the write is carried out (a 503 or a
    hang means nothing was written); with it the write is carried out first, then the fault
    spoils the answer: ``{"hang": true, "after_write": true}`` on ``orders`` places the order
    and never answers, the case where the caller cannot know the outcome. ``latency_ms`` is
    spent before the write either way, so a caller's deadline that passes during it means
    nothing was written (the service answers 504 and gives up). A read has nothing to write:
    there the fault applies as without it.

    The constraints are checked when a fault is decoded (admin API, ``--fault``) or passed to
    :func:`validate_fault`, not when the struct is built directly.
    """

    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    status: Annotated[int, msgspec.Meta(ge=400, le=599)] | None = None
    hang: bool = False
    drop: bool = False
    malformed: bool = False
    wrong_shape: bool = False
    huge_bytes: Annotated[int, msgspec.Meta(ge=2)] | None = None
    cache_control: _CacheControl | None = None
    rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    count: Annotated[int, msgspec.Meta(ge=1)] | None = None
    ids: _Ids | None = None
    after_write: bool = False


def validate_fault(fault: Fault) -> Fault:
    """Check a fault's field constraints; raise ``msgspec.ValidationError`` if one is broken."""
    # msgspec only enforces Meta constraints while decoding, so round-trip through builtins.
    return msgspec.convert(msgspec.to_builtins(fault), Fault)


class _Armed(msgspec.Struct):
    fault: Fault
    remaining: int | None
    ids: frozenset[str] | None


class FaultRegistry:
    """The current fault of each service, consumed by the request handlers."""

    __slots__ = ("_armed",)

    def __init__(self, faults: Mapping[str, Fault] | None = None) -> None:
        self._armed: dict[str, _Armed] = {}
        for service, fault in (faults or {}).items():
            if service not in SERVICES:
                raise ValueError(
                    f"unknown service {service!r} (expected one of {', '.join(SERVICES)})"
                )
            self.set(service, fault)

    def set(self, service: str, fault: Fault) -> Fault:
        """Replace ``service``'s fault; return it as stored.

        Raises ``KeyError`` for an unknown service and ``msgspec.ValidationError`` (a
        ``ValueError``) for a fault whose values are out of range.
        """
        if service not in SERVICES:
            raise KeyError(service)
        fault = validate_fault(fault)
        ids = None if fault.ids is None else frozenset(fault.ids)
        self._armed[service] = _Armed(fault, fault.count, ids)
        return fault

    def clear(self, service: str | None = None) -> None:
        """Clear one service's fault, or all of them."""
        if service is None:
            self._armed.clear()
        elif service in SERVICES:
            self._armed.pop(service, None)
        else:
            raise KeyError(service)

    def snapshot(self) -> dict[str, Fault]:
        """The current faults (``count`` is what is left of it), keyed by service."""
        return {
            service: msgspec.structs.replace(armed.fault, count=armed.remaining)
            for service, armed in self._armed.items()
        }

    def draw(self, service: str, named: Collection[str] = ()) -> Fault | None:
        """The fault that applies to the request being served now, if any.

        Called once per request with the ids the request names (see ``Fault.ids``): a fault
        with ``count`` is used up by the requests it applies to (not by those ``rate`` spares or
        whose ids it is not scoped to), and removed when none is left.
        """
        armed = self._armed.get(service)
        if armed is None:
            return None
        if armed.ids is not None and armed.ids.isdisjoint(named):
            return None
        fault = armed.fault
        if fault.rate < 1.0 and random.random() >= fault.rate:
            return None
        if armed.remaining is not None:
            armed.remaining -= 1
            if armed.remaining <= 0:
                del self._armed[service]
        return fault


_FLAG_SYNTAX = "SERVICE:KEY=VALUE[,KEY=VALUE...]"
#: Separates the ids of ``ids=`` in a ``--fault`` value, where commas already separate keys.
IDS_SEPARATOR: Final = "+"
# Keys that mean nothing without a value, with an example of one.
_NEEDS_VALUE: Final[Mapping[str, str]] = {
    "cache_control": "cache_control=no-store",
    "ids": f"ids=p-1003{IDS_SEPARATOR}p-1004",
}


def _split_items(flag: str, spec: str) -> list[str]:
    """Split ``spec`` at the commas outside double quotes, dropping the quotes.

    ``cache_control="max-age=1, stale-while-revalidate=5"`` keeps its comma; inside quotes,
    ``""`` stands for one literal ``"`` (as in CSV).
    """
    items: list[str] = []
    current: list[str] = []
    quoted = False
    i, end = 0, len(spec)
    while i < end:
        char = spec[i]
        if char == '"':
            if quoted and spec.startswith('"', i + 1):
                current.append('"')
                i += 1
            else:
                quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    if quoted:
        raise ValueError(f"--fault {flag!r}: unterminated double quote")
    items.append("".join(current))
    return items


def _parse_one(flag: str) -> tuple[str, dict[str, str]]:
    service, sep, spec = flag.partition(":")
    service = service.strip()
    if not sep or not spec.strip():
        raise ValueError(f"--fault {flag!r}: expected {_FLAG_SYNTAX}, e.g. reviews:status=503")
    if service not in SERVICES:
        raise ValueError(
            f"--fault {flag!r}: unknown service {service!r} (expected one of {', '.join(SERVICES)})"
        )
    fields: dict[str, str] = {}
    for item in _split_items(flag, spec):
        key, has_value, value = item.partition("=")
        key = key.strip()
        if not key:
            raise ValueError(f"--fault {flag!r}: empty field name; expected {_FLAG_SYNTAX}")
        if key not in Fault.__struct_fields__:
            raise ValueError(
                f"--fault {flag!r}: unknown field {key!r} "
                f"(expected one of {', '.join(Fault.__struct_fields__)})"
            )
        if not has_value and key in _NEEDS_VALUE:
            raise ValueError(f"--fault {flag!r}: {key} needs a value, e.g. {_NEEDS_VALUE[key]}")
        # A bare flag name such as ``reviews:hang`` switches that flag on.
        fields[key] = value.strip() if has_value else "true"
    return service, fields


def parse_fault_flags(flags: Iterable[str]) -> dict[str, Fault]:
    """Turn ``--fault`` values into one fault per service.

    Each value is ``SERVICE:KEY=VALUE[,KEY=VALUE...]``, e.g. ``reviews:status=503`` or
    ``pricing:latency_ms=300,rate=0.5``; a bare ``KEY`` means ``KEY=true``. A value holding
    commas goes in double quotes: ``reviews:cache_control="max-age=1, stale-if-error=60"``
    (``""`` inside the quotes is a literal ``"``). ``ids`` takes its ids separated by ``+``:
    ``pricing:status=503,ids=p-1003+p-1004`` (surrounding spaces are dropped). Several values
    for the same service are merged, later keys winning. Raises ``ValueError`` with a message
    fit for the command line when a value is malformed or out of range.
    """
    merged: dict[str, tuple[str, dict[str, str]]] = {}
    for flag in flags:
        service, fields = _parse_one(flag)
        previous = merged.get(service)
        merged[service] = (flag, {**previous[1], **fields} if previous else fields)
    faults: dict[str, Fault] = {}
    for service, (flag, fields) in merged.items():
        raw: dict[str, Any] = dict(fields)
        if "ids" in raw:
            raw["ids"] = [part.strip() for part in fields["ids"].split(IDS_SEPARATOR)]
        try:
            # strict=False lets msgspec turn the flag's strings into numbers and booleans.
            faults[service] = msgspec.convert(raw, Fault, strict=False)
        except msgspec.ValidationError as exc:
            raise ValueError(f"--fault {flag!r}: {exc}") from None
    return faults
