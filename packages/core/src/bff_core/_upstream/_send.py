"""The last layer of every chain: the deadline and trace headers, then the transport."""

from __future__ import annotations

from collections.abc import Mapping

from .._deadline import Deadline
from .._telemetry import Tracing
from .._transports import Transport, UpstreamResponse

__all__ = ["DEADLINE_HEADER", "Send"]

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
        if self._tracing is not None:
            headers = self._tracing.outgoing(headers)
        if self._deadline_header is not None:
            left = int(time_left * 1000)
            headers = {**headers, self._deadline_header: str(left if left > 0 else 0)}
        return await self.transport.get(url, headers=headers, time_left=time_left)
