"""Compressed answers: zstd, br or gzip, as the client's ``Accept-Encoding`` prefers.

Negotiated with the q-values of RFC 9110 (12.5.3); on a tie the server's order decides (zstd,
then br, then gzip: the cheapest to compress for a similar size). Only whole bodies of a
compressible type at or above a minimum size are compressed: never a 304 or a 204 (no body),
never a streamed answer (an event stream must not wait for a buffer to fill), never a body that
is already encoded. Every answer of a compressible type says ``Vary: Accept-Encoding``.
"""

from __future__ import annotations

import gzip
from typing import Literal

import brotli
import zstandard

from ._negotiation import weighted

__all__ = ["Compression", "Encoding"]

Encoding = Literal["zstd", "br", "gzip"]
_PREFERRED: tuple[Encoding, ...] = ("zstd", "br", "gzip")
_COMPRESSIBLE = (b"application/json", b"application/problem+json", b"application/msgpack",
                 b"application/vnd.msgpack", b"application/x-msgpack", b"text/")  # fmt: skip


class Compression:
    """``BFF_COMPRESSION`` and ``BFF_COMPRESSION_MIN_BYTES``."""

    __slots__ = ("_zstd", "min_bytes")

    def __init__(self, min_bytes: int = 512) -> None:
        self.min_bytes = min_bytes
        # Fast levels: an answer is compressed on every request (cached answers too).
        self._zstd = zstandard.ZstdCompressor(level=3)

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
        return content_type is not None and content_type.lower().startswith(_COMPRESSIBLE)

    def compress(self, encoding: Encoding, body: bytes) -> bytes:
        if encoding == "zstd":
            return self._zstd.compress(body)
        if encoding == "br":
            return bytes(brotli.compress(body, quality=4))
        return gzip.compress(body, compresslevel=5, mtime=0)
