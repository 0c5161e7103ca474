"""The last layer of every chain: the deadline and trace headers, then the transport.

:class:`Send` is a read's (``GET``), built once per gateway; :class:`SendWrite` one write's,
built per request because it carries that request's method and body, and it remembers whether
the request may have left (what an unknown outcome is decided by).
"""

from __future__ import annotations

from collections.abc import Mapping

from .._deadline import Deadline
from .._errors import OutcomeUnknown, UpstreamUnavailable
from .._telemetry import Tracing
from .._transports import Transport, UpstreamResponse, WriteMethod, WritingTransport

__all__ = ["DEADLINE_HEADER", "Send", "SendWrite"]

#: The default name of the header that carries the time left to an upstream.
DEADLINE_HEADER = "x-request-timeout-ms"


class Send:
    """Sends the request through ``transport``, telling the upstream how many milliseconds are
    left in ``deadline_header`` (``None``: not told) and the trace context (with tracing)."""

    __slots__ = ("_deadline_header", "_tracing", "transport")

    def __init__(
        self, transport: Transport, deadline_header: str | None, tracing: Tracing | None
    ) -> None:
        self.transport = transport
        self._deadline_header = deadline_header
        self._tracing = tracing

    async def __call__(
        self, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        time_left = deadline.left()
        headers = self.outgoing(headers, time_left)
        return await self.transport.get(url, headers=headers, time_left=time_left)

    def outgoing(self, headers: Mapping[str, str], time_left: float) -> Mapping[str, str]:
        """``headers`` with the trace context and the milliseconds left."""
        if self._tracing is not None:
            headers = self._tracing.outgoing(headers)
        if self._deadline_header is not None:
            left = int(time_left * 1000)
            headers = {**headers, self._deadline_header: str(left if left > 0 else 0)}
        return headers


class SendWrite:
    """Sends one write (``method`` with ``body``) through ``transport``, with ``send``'s
    headers, and keeps whether it may have reached the upstream (``maybe_sent``): set when an
    attempt starts, set back when the transport says the attempt certainly did not leave.
    """

    __slots__ = ("body", "maybe_sent", "method", "send", "transport")

    def __init__(
        self, send: Send, transport: WritingTransport, method: WriteMethod, body: bytes
    ) -> None:
        self.send = send
        self.transport = transport
        self.method: WriteMethod = method
        self.body = body
        self.maybe_sent = False

    async def __call__(
        self, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        time_left = deadline.left()
        headers = self.send.outgoing(headers, time_left)
        before = self.maybe_sent
        self.maybe_sent = True
        try:
            return await self.transport.send(
                self.method, url, headers=headers, body=self.body, time_left=time_left
            )
        except OutcomeUnknown:
            raise
        except UpstreamUnavailable:
            # Refused, or not sendable at all: this attempt did not leave.
            self.maybe_sent = before
            raise
