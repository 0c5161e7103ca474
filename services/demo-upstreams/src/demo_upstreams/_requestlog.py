"""What each simulated service received, for tests to assert on (``GET /admin/requests``)."""

from __future__ import annotations

from collections import deque

import msgspec
from aiohttp import web

from ._faults import SERVICES

__all__ = ["RecordedRequest", "RequestLog", "ServiceRequests"]


class RecordedRequest(msgspec.Struct, frozen=True):
    """One request as it arrived on the wire."""

    method: str
    path: str
    """The request target before ``?``, percent-encoding untouched (``/products/p%2F1001``)."""
    query: str
    """The raw query string after ``?`` (``""`` when there was none), still percent-encoded."""
    headers: dict[str, str]
    """Header names lower-cased; a repeated header's values joined with ``", "``."""


class ServiceRequests(msgspec.Struct, frozen=True):
    """Requests one service received since the last reset."""

    count: int
    requests: list[RecordedRequest]
    """The most recent ones, oldest first."""
    abandoned: int = 0
    """Requests whose client went away (closed the connection) before the answer was ready."""
    gave_up: int = 0
    """Requests answered 504 early because their deadline (``x-request-timeout-ms``) passed."""


class RequestLog:
    """Counts every request per service and keeps the most recent ones."""

    __slots__ = ("_abandoned", "_counts", "_gave_up", "_keep", "_recent")

    def __init__(self, *, keep: int = 100) -> None:
        # keep=0 still counts, but skips copying headers: the cheap mode for benchmarks.
        self._keep = keep
        self._counts: dict[str, int] = dict.fromkeys(SERVICES, 0)
        self._abandoned: dict[str, int] = dict.fromkeys(SERVICES, 0)
        self._gave_up: dict[str, int] = dict.fromkeys(SERVICES, 0)
        self._recent: dict[str, deque[RecordedRequest]] = {
            service: deque(maxlen=keep) for service in SERVICES
        }

    def record(self, service: str, request: web.BaseRequest) -> None:
        """Note that ``service`` received ``request``."""
        self._counts[service] += 1
        if not self._keep:
            return
        path, _, query = request.raw_path.partition("?")
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self._recent[service].append(
            RecordedRequest(method=request.method, path=path, query=query, headers=headers)
        )

    def abandoned(self, service: str) -> None:
        """Note that a client of ``service`` left before its answer was ready."""
        self._abandoned[service] += 1

    def gave_up(self, service: str) -> None:
        """Note that ``service`` stopped working on a request whose deadline passed."""
        self._gave_up[service] += 1

    def reset(self) -> None:
        """Forget everything recorded so far."""
        for service in SERVICES:
            self._counts[service] = 0
            self._abandoned[service] = 0
            self._gave_up[service] = 0
            self._recent[service].clear()

    def snapshot(self) -> dict[str, ServiceRequests]:
        """Per service, the request count and the most recent requests."""
        return {
            service: ServiceRequests(
                count=self._counts[service],
                requests=list(recent),
                abandoned=self._abandoned[service],
                gave_up=self._gave_up[service],
            )
            for service, recent in self._recent.items()
        }
