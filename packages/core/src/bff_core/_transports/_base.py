"""The seam between the engine and an HTTP client library; it knows no adapter.

The engine only ever issues ``GET`` requests with a few headers and reads status, headers and the
whole body. Everything a client library does beyond that (pools, DNS, TLS) stays behind this
protocol, so the default fast client and the httpx adapter are interchangeable and a team can
plug in its own.

Timeouts are *not* the transport's job: the engine wraps every call in an asyncio deadline and
cancels it. A transport must therefore be cancellation-safe (a cancelled ``get`` releases its
connection) and must raise only :class:`UpstreamUnavailable` or :class:`ResponseTooLarge` for
failures it can name (:class:`RequestNotSent`, a kind of :class:`UpstreamUnavailable`, for a
request its library refuses to build); anything else escaping it is a bug in the adapter.

Writes (``PUT``/``POST`` with a JSON body) go through :class:`WritingTransport`, a transport
that also has ``send``; every built-in adapter is one. ``send`` keeps ``get``'s deadline, size
and error semantics and tells two failures apart that a write must not confuse: the request
certainly did not leave (:class:`UpstreamUnavailable`: could not connect, refused; safe to send
again) and it may have reached the upstream (:class:`OutcomeUnknown`: connection lost after
sending, a client timeout while the answer was awaited). ``Transport`` itself is unchanged, so
a team's read-only transport still plugs in.

A transport whose library cannot stop a cancelled request (pyreqwest) may offer, as a
``cancellable`` attribute, another transport that can; hedged requests, whose loser is
cancelled, are sent through that one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "HTTP_CLIENTS",
    "HttpClient",
    "Transport",
    "UpstreamResponse",
    "WriteMethod",
    "WritingTransport",
    "json_headers",
]

#: Bodies above this are refused (``ResponseTooLarge``) rather than buffered: a runaway upstream
#: must not be able to exhaust the gateway's memory.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024

#: The built-in transports a gateway can make by name (``BFF_HTTP_CLIENT``).
HttpClient: TypeAlias = Literal["pyreqwest", "aiohttp"]
HTTP_CLIENTS: tuple[HttpClient, ...] = ("pyreqwest", "aiohttp")

#: The methods a write is sent with: ``PUT`` (idempotent by nature) and ``POST`` (not).
WriteMethod: TypeAlias = Literal["PUT", "POST"]


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """What an upstream answered: status, headers (lower-cased names) and the complete body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@runtime_checkable
class Transport(Protocol):
    """An HTTP client the engine can send upstream ``GET`` requests through."""

    async def get(
        self, url: str, *, headers: Mapping[str, str], time_left: float | None = None
    ) -> UpstreamResponse:
        """Send ``GET url`` and return the whole response.

        ``time_left`` is how many seconds the engine will wait for this answer before it
        cancels the call. A transport whose library cannot abort a cancelled request (it goes
        on in a background thread) uses it to make that request end by itself; the others may
        ignore it.

        Raises:
            UpstreamUnavailable: the connection could not be made, was refused or was lost
                before the whole response arrived.
            RequestNotSent: the request cannot be sent as it is (a header value the library
                refuses); no breaker counts it.
            ResponseTooLarge: the body is longer than the transport's limit.
        """
        ...

    async def aclose(self) -> None:
        """Release every connection. The transport is not used afterwards."""
        ...


@runtime_checkable
class WritingTransport(Transport, Protocol):
    """A :class:`Transport` that can also send writes: a method and a JSON body."""

    async def send(
        self,
        method: WriteMethod,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        time_left: float | None = None,
    ) -> UpstreamResponse:
        """Send ``method url`` with ``body`` (``Content-Type: application/json``, unless
        ``headers`` names another) and return the whole response.

        A ``POST`` is never sent again by the transport itself: whether to retry is the
        resilience layer's decision, which needs to know what was sent. (aiohttp resends an
        idempotent ``PUT`` once when a reused keep-alive connection turns out closed.)

        Raises:
            OutcomeUnknown: the request may have reached the upstream (the connection was lost
                after it was written, a client timeout fired while the answer was awaited).
            UpstreamUnavailable: the request certainly did not leave (the connection could
                not be made or was refused).
            RequestNotSent: the request cannot be sent as it is; no breaker counts it.
            ResponseTooLarge: the answer's body is longer than the transport's limit.
        """
        ...


def json_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` with ``Content-Type: application/json`` unless they name a type already."""
    if any(name.lower() == "content-type" for name in headers):
        return headers
    return {**headers, "content-type": "application/json"}
