"""The request id: the client's ``X-Request-ID`` if it is a sane token, else a new one, in the
answer, the access log and every upstream request."""

from __future__ import annotations

import os
import re

from litestar.types import Scope

from ._exchange import Exchange, header
from ._filter import Filter, Reply

__all__ = ["REQUEST_ID_HEADER", "RequestId", "request_id"]

REQUEST_ID_HEADER = "x-request-id"

_REQUEST_ID = REQUEST_ID_HEADER.encode()
#: What a client may send as its request id: a token of up to 128 visible characters.
_REQUEST_ID_PATTERN = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


class RequestId(Filter):
    """Names the request, and says its name in every answer."""

    __slots__ = ()

    def on_request(self, exchange: Exchange) -> Reply | None:
        given = exchange.request_headers.get(_REQUEST_ID)
        if given is not None and _REQUEST_ID_PATTERN.fullmatch(given):
            exchange.request_id = given.decode()
            exchange.headers.append((_REQUEST_ID, given))
        else:
            exchange.request_id = new = os.urandom(16).hex()
            exchange.headers.append((_REQUEST_ID, new.encode()))
        return None


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID`` if it is a sane token, else a new id (what the filter
    does, for the answers of requests the edge never saw)."""
    given = header(scope, _REQUEST_ID)
    if given is not None and _REQUEST_ID_PATTERN.fullmatch(given):
        return given.decode()
    # 128 random bits in 32 hex digits, as uuid4().hex gave, without building a UUID object.
    return os.urandom(16).hex()
