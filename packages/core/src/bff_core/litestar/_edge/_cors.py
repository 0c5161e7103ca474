"""CORS for the browsers' BFF: explicit origins only, preflights answered, ``Vary: Origin``.

Not Litestar's CORS middleware: it turns a ``*`` inside an origin into a wildcard, answers a
refused preflight in plain text, and writes ``Vary: Origin`` over the ``Vary: Accept`` an
aggregate answer already has (and only on the allowed origins' answers, so a shared cache may
hand a refused origin's answer to an allowed one).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..._errors import ConfigurationError
from ..._report import Problem
from ._exchange import Exchange
from ._filter import NOSNIFF, Filter, Reply, problem_reply

__all__ = ["CorsPolicy"]

#: What a browser may ask a BFF for: reads and the writes (the admin API is not for browsers).
_METHODS = ("GET", "HEAD", "PUT", "POST")
#: The request headers a page may send: content negotiation, revalidation, tracing, identity.
_HEADERS = frozenset(
    {
        "accept",
        "accept-language",
        "content-language",
        "content-type",
        "if-none-match",
        "idempotency-key",
        "authorization",
        "x-request-id",
        "traceparent",
        "tracestate",
    }
)
#: The response headers a page may read besides the safelisted ones.
_EXPOSED = (
    b"etag, server-timing, x-request-id, retry-after, ratelimit, ratelimit-policy, www-authenticate"
    b", idempotent-replayed"
)


_ORIGIN = b"origin"
_ASKED_METHOD = b"access-control-request-method"
_ASKED_HEADERS = b"access-control-request-headers"


@dataclass(frozen=True)
class CorsPolicy(Filter):
    """The origins whose pages may call this BFF, and whether with credentials (cookies); as
    the edge's filter, it answers preflights and puts its headers on every other answer."""

    origins: frozenset[str]
    credentials: bool = False
    max_age: int = 600

    @classmethod
    def from_setting(
        cls, origins: str, *, credentials: bool = False, max_age: int = 600
    ) -> CorsPolicy | None:
        """``BFF_CORS_ORIGINS``: comma-separated origins such as ``https://shop.example``;
        empty: no cross-origin access at all."""
        allowed = set()
        for origin in (o.strip() for o in origins.split(",")):
            if not origin:
                continue
            parts = urlsplit(origin)
            if (
                "*" in origin
                or parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path
                or parts.query
                or parts.fragment
                or parts.username
            ):
                raise ConfigurationError(
                    "BFF_CORS_ORIGINS",
                    f"{origin!r} is not an origin (scheme://host[:port], no path, no '*': "
                    "name every origin)",
                )
            allowed.add(origin.lower())
        return cls(frozenset(allowed), credentials, max_age) if allowed else None

    def on_request(self, exchange: Exchange) -> Reply | None:
        named = exchange.request_headers
        origin = named.get(_ORIGIN)
        if exchange.method == "OPTIONS" and origin is not None:
            asked = named.get(_ASKED_METHOD)
            if asked is not None:
                return self._preflight_reply(origin, asked, named.get(_ASKED_HEADERS))
        exchange.headers.extend(self.answer_headers(origin))
        return None

    def _preflight_reply(self, origin: bytes, method: bytes, requested: bytes | None) -> Reply:
        status, headers, problem = self.preflight(origin, method, requested)
        if problem is not None:
            return problem_reply(problem, headers)
        return Reply(status, tuple(headers), (NOSNIFF, (b"content-length", b"0")))

    def allows(self, origin: bytes) -> bool:
        return origin.decode("latin-1").lower() in self.origins

    def answer_headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        """What every answer gets: ``Vary: Origin`` always (the answer depends on it), the
        permission only for an allowed origin."""
        headers = [(b"vary", b"Origin")]
        if origin is not None and self.allows(origin):
            headers += [
                (b"access-control-allow-origin", origin),
                (b"access-control-expose-headers", _EXPOSED),
            ]
            if self.credentials:
                headers.append((b"access-control-allow-credentials", b"true"))
        return headers

    def preflight(
        self, origin: bytes, method: bytes, requested: bytes | None
    ) -> tuple[int, list[tuple[bytes, bytes]], Problem | None]:
        """The answer to ``OPTIONS`` with ``Access-Control-Request-Method``: 204 with the
        permissions, or 403 naming what is not allowed."""
        headers = [
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
        ]
        asked = [h.strip().lower() for h in (requested or b"").decode("latin-1").split(",")]
        asked = [h for h in asked if h]
        refused = []
        if not self.allows(origin):
            refused.append(f"origin {origin.decode('latin-1')!r}")
        if method.decode("latin-1").upper() not in _METHODS:
            refused.append(f"method {method.decode('latin-1')!r}")
        if bad := [h for h in asked if h not in _HEADERS]:
            refused.append(f"header(s) {', '.join(bad)}")
        if refused:
            return (
                403,
                headers,
                Problem(
                    type="urn:bff:problem:cors-refused",
                    title="Cross-origin request not allowed",
                    status=403,
                    detail=f"not allowed: {'; '.join(refused)}",
                ),
            )
        headers += [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", ", ".join(_METHODS).encode()),
            (b"access-control-max-age", str(self.max_age).encode()),
        ]
        if asked:
            headers.append((b"access-control-allow-headers", ", ".join(asked).encode()))
        if self.credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return 204, headers, None
