"""Compressed answers: zstd, br or gzip, as the client's ``Accept-Encoding`` prefers.

Negotiated with the q-values of RFC 9110 (12.5.3); on a tie the server's order decides (zstd,
then br, then gzip: the cheapest to compress for a similar size). Only whole bodies of a
compressible type at or above a minimum size are compressed: never a 304 or a 204 (no body),
never a streamed answer (an event stream must not wait for a buffer to fill), never a body that
is already encoded. Every answer of a compressible type says ``Vary: Accept-Encoding``.

The same answer is compressed once: hot items are asked for again and again (that is what the
answer cache is for), so the last few megabytes of compressed answers are kept, keyed by the
answer's own bytes (never by a header that could lie about them).

The weighted lists of ``Accept-Encoding`` and ``Accept`` (:func:`weighted`) are parsed here, for
the routes' content negotiation too.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence

import brotli
import zstandard
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent

from ._exchange import Encoding, Exchange
from ._filter import Filter, Reply

__all__ = ["Compression", "Encoding", "weighted"]

_PREFERRED: tuple[Encoding, ...] = ("zstd", "br", "gzip")
_COMPRESSIBLE = (b"application/json", b"application/problem+json", b"application/msgpack",
                 b"application/vnd.msgpack", b"application/x-msgpack", b"text/")  # fmt: skip


_ACCEPT_ENCODING = b"accept-encoding"


class Compression(Filter):
    """``BFF_COMPRESSION`` and ``BFF_COMPRESSION_MIN_BYTES``; as the edge's filter, it chooses
    the coding on the request side, and holds a compressible answer's start until its body
    says whether compressing is worth it."""

    __slots__ = ("_kept", "_kept_bytes", "_zstd", "min_bytes")

    #: Compressed answers kept, in bytes of plain and compressed bodies together.
    KEEP_BYTES = 4 * 1024 * 1024
    #: Larger answers are compressed every time (rare, and they would crowd out the rest).
    KEEP_BODY_BYTES = 64 * 1024

    def __init__(self, min_bytes: int = 512) -> None:
        self.min_bytes = min_bytes
        # Fast levels: what is not kept is compressed on every request.
        self._zstd = zstandard.ZstdCompressor(level=3)
        self._kept: dict[tuple[str, bytes], bytes] = {}
        self._kept_bytes = 0

    def on_request(self, exchange: Exchange) -> Reply | None:
        exchange.encoding = self.choose(exchange.request_headers.get(_ACCEPT_ENCODING))
        return None

    def on_response(
        self,
        exchange: Exchange,
        answered: Sequence[tuple[bytes, bytes]],
        headers: list[tuple[bytes, bytes]],
    ) -> bool:
        content_type = None
        for name, value in answered:  # the edge's own headers never set these two
            name = name.lower()
            if name == b"content-type":
                content_type = value
            elif name == b"content-encoding":
                return False  # already encoded
        if not self.compressible(content_type):
            return False
        headers.append((b"vary", b"Accept-Encoding"))
        return exchange.encoding is not None and exchange.status not in (204, 304)

    def on_body(
        self, exchange: Exchange, start: HTTPResponseStartEvent, message: HTTPResponseBodyEvent
    ) -> HTTPResponseBodyEvent:
        body = message.get("body", b"")
        encoding = exchange.encoding
        if message.get("more_body") or len(body) < self.min_bytes or encoding is None:
            return message
        body = self.compress(encoding, body)
        start["headers"] = [
            *(h for h in start["headers"] if h[0].lower() != b"content-length"),
            (b"content-encoding", encoding.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        return {"type": "http.response.body", "body": body, "more_body": False}

    @staticmethod
    def choose(accept_encoding: bytes | None) -> Encoding | None:
        """The encoding to answer in, or ``None`` for the body as it is."""
        if not accept_encoding:
            return None
        offered = dict(weighted(accept_encoding))
        wildcard = offered.get("*", 0.0)
        best: Encoding | None = None
        best_q = 0.0
        for encoding in _PREFERRED:
            quality = offered.get(encoding, wildcard)
            if quality > best_q:
                best, best_q = encoding, quality
        return best

    @staticmethod
    def compressible(content_type: bytes | None) -> bool:
        if content_type is None:
            return False
        content_type = content_type.lower()
        # A stream's events must leave as they are made: compressing would hold them back.
        return content_type.startswith(_COMPRESSIBLE) and not content_type.startswith(
            b"text/event-stream"
        )

    def compress(self, encoding: Encoding, body: bytes) -> bytes:
        """``body`` in ``encoding``: the one compressed before, if it is kept."""
        if len(body) > self.KEEP_BODY_BYTES:
            return self._compress(encoding, body)
        key = (encoding, body)
        compressed = self._kept.get(key)
        if compressed is None:
            compressed = self._kept[key] = self._compress(encoding, body)
            self._kept_bytes += len(body) + len(compressed)
            while self._kept_bytes > self.KEEP_BYTES:  # the oldest go first
                (_, old), old_compressed = next(iter(self._kept.items()))
                del self._kept[(_, old)]
                self._kept_bytes -= len(old) + len(old_compressed)
        return compressed

    def _compress(self, encoding: Encoding, body: bytes) -> bytes:
        if encoding == "zstd":
            return self._zstd.compress(body)
        if encoding == "br":
            return bytes(brotli.compress(body, quality=4))
        return gzip.compress(body, compresslevel=5, mtime=0)


def weighted(field: bytes) -> Iterator[tuple[str, float]]:
    """The weighted list of an ``Accept`` or ``Accept-Encoding`` header (RFC 9110 12.4.2):
    each element's value (lower-cased, parameters other than ``q`` dropped) and its quality:
    1 unless ``q`` says otherwise, clamped to 0..1, 0 when ``q`` is not a number."""
    for element in field.decode("latin-1").lower().split(","):
        value, *params = (piece.strip() for piece in element.split(";"))
        if not value:
            continue
        quality = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = min(max(float(number), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        yield value, quality
