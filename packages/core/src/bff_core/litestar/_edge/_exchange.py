"""One request as it passes the edge: what the filters and the route learn of it, in one place.

The edge opens an :class:`Exchange` for every HTTP request it sees and leaves it in the ASGI
scope's state, where the route finds it (:func:`exchange_of`): the route reads the request id and
the verified identity from it, and writes what the access log tells (each part's outcome, the
answer cache's verdict, a write's :class:`WriteNote`).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import Token
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal

from litestar.types import HTTPScope, Scope

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ..._guards import Identity
    from ..._outcome import PartOutcome

__all__ = ["EXCHANGE", "Encoding", "Exchange", "WriteNote", "exchange_of", "header"]

#: A content coding the edge can answer in (the compression filter chooses it).
Encoding = Literal["zstd", "br", "gzip"]

#: The key of the scope's state under which the edge leaves the exchange.
EXCHANGE = "bff"


class Exchange:
    """One request and its answer, as the edge's filters and the route see them."""

    # The edge makes one of these per request, on the hot path: slots, and only what every
    # request needs set at once. The rest belongs to one filter, which sets it before it reads
    # it: ``encoding`` (compression), ``span`` and ``span_token`` (the server span).
    __slots__ = (
        "answer_cache",
        "elapsed",
        "encoding",
        "headers",
        "identity",
        "method",
        "outcomes",
        "request_headers",
        "request_id",
        "route",
        "scope",
        "span",
        "span_token",
        "started",
        "status",
        "write",
    )

    #: The request's ASGI scope, until the request is over (the scope's state holds the
    #: exchange: letting go of it breaks the cycle, so that both go by reference counting).
    scope: HTTPScope
    #: The request's headers by name (ASGI gives names lower-case), the first value of each:
    #: the filters and the route look theirs up here instead of scanning the scope's list.
    request_headers: dict[bytes, bytes]
    method: str
    #: The route's path template: the metrics' and the server span's label.
    route: str
    #: When the edge first saw the request (``perf_counter``).
    started: float
    #: How long the request took in all: set once the answer is sent, before ``on_done``.
    elapsed: float
    #: The client's ``X-Request-ID`` if it is a sane token, else a new one.
    request_id: str
    #: What the edge adds to every answer of this request (the request id, CORS).
    headers: list[tuple[bytes, bytes]]
    #: The answer's status: 500 unless an answer starts (the request failed without one).
    status: int
    #: The caller the bearer token proves, when the guard verified one.
    identity: Identity | None
    #: Every part's outcome, when the route ran an aggregate (for the access log).
    outcomes: Iterable[PartOutcome]
    #: ``hit`` or ``miss`` when the route looked for a whole cached answer.
    answer_cache: str | None
    #: What a write route did (for the access log), when the route is one.
    write: WriteNote | None
    #: The coding compression chose for the answer, if any.
    encoding: Encoding | None
    #: The server span and the context token to restore, when tracing is on.
    span: Span | None
    span_token: Token[Any]

    def __init__(self, scope: HTTPScope) -> None:
        self.scope = scope
        headers = scope["headers"]
        # Reversed: the first value of a repeated name is the one kept (as header() does).
        try:
            self.request_headers = dict(reversed(headers))  # type: ignore[call-overload]
        except TypeError:  # an iterable that is not a sequence (a list, in practice)
            self.request_headers = dict(reversed(list(headers)))
        self.method = scope["method"]
        self.route = scope.get("path_template") or "unmatched"
        self.started = perf_counter()
        self.request_id = ""
        self.headers = []
        self.status = 500
        self.identity = None
        self.outcomes = ()
        self.answer_cache = None
        self.write = None


class WriteNote:
    """What a write route did with its request: the access log's ``mutation``,
    ``idempotency`` and ``write`` fields."""

    __slots__ = ("idempotency", "mutation", "outcome", "upstream_status")

    def __init__(self, mutation: str) -> None:
        #: the mutation's declared name
        self.mutation = mutation
        #: what the key's record said: ``new`` (this request claimed it), ``replayed``,
        #: ``conflict`` (its first request still running), ``mismatch`` (another body),
        #: ``abandoned`` (its first request's instance stopped mid-request); ``None``: no key
        self.idempotency: str | None = None
        #: how the write ended, one of ``WRITE_OUTCOMES`` (``failed`` until it is known)
        self.outcome = "failed"
        #: the upstream's status, when it answered
        self.upstream_status: int | None = None


def exchange_of(scope: Scope) -> Exchange | None:
    """The exchange the edge opened for this request; ``None`` when the edge never saw it
    (no route matched: the edge runs around routes)."""
    exchange: Exchange | None = scope.get("state", {}).get(EXCHANGE)
    return exchange


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the request header ``name`` (lower-case, as ASGI gives names), for
    the requests the edge did not see (``Exchange.request_headers`` for the others)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
