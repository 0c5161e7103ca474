"""The one method every layer of an upstream request's chain has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .._deadline import Deadline
from .._transports import UpstreamResponse

__all__ = ["Layer"]


class Layer(Protocol):
    """One concern of an upstream request (a retry, a hedge, a breaker, the sending itself),
    around the next layer of its chain.

    Returns the upstream's answer, an error status included; raises :class:`CircuitOpen`,
    :class:`TimeoutError` or what the transport raises. ``deadline`` is the request's one
    deadline: every layer reads the time left from it, and a cancellation it sees was the
    deadline's when ``deadline.expired``.
    """

    async def __call__(
        self, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse: ...
