"""Requests refused before any route looks at them: too long a query, too many header bytes,
a body where none belongs."""

from __future__ import annotations

from itertools import chain

from ..._report import Problem
from ._exchange import Exchange
from ._filter import Filter, Reply, problem_reply

__all__ = ["MAX_HEADER_BYTES", "MAX_QUERY_BYTES", "Hygiene"]

#: Longer query strings are refused (an aggregate's parameters are ids, not documents).
MAX_QUERY_BYTES = 2048
#: More header bytes in all are refused (room for an 8 KB bearer token and the rest).
MAX_HEADER_BYTES = 16384
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class Hygiene(Filter):
    """Answers a malformed request with its problem (414, 431 or 400)."""

    __slots__ = ()

    def on_request(self, exchange: Exchange) -> Reply | None:
        scope = exchange.scope
        if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            return problem_reply(_URI_TOO_LONG)
        headers = scope["headers"]
        if sum(map(len, chain.from_iterable(headers))) > MAX_HEADER_BYTES:  # names and values
            return problem_reply(_HEADERS_TOO_LARGE)
        method = exchange.method
        named = exchange.request_headers
        if method in _BODILESS and (b"content-length" in named or b"transfer-encoding" in named):
            for name, value in headers:
                if (name == b"content-length" and value.strip() not in (b"", b"0")) or (
                    name == b"transfer-encoding"
                ):
                    return problem_reply(
                        Problem(
                            type="urn:bff:problem:unexpected-body",
                            title="Bad Request",
                            status=400,
                            detail=f"a {method} request has no body here",
                        )
                    )
        return None


_URI_TOO_LONG = Problem(
    type="urn:bff:problem:uri-too-long",
    title="URI Too Long",
    status=414,
    detail=f"the query string is over {MAX_QUERY_BYTES} bytes",
)
_HEADERS_TOO_LARGE = Problem(
    type="urn:bff:problem:headers-too-large",
    title="Request Header Fields Too Large",
    status=431,
    detail=f"the request's headers are over {MAX_HEADER_BYTES} bytes in all",
)
