"""The weighted lists of ``Accept`` and ``Accept-Encoding`` (RFC 9110 12.4.2), parsed once."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["weighted"]


def weighted(header: bytes) -> Iterator[tuple[str, float]]:
    """Each element's value (lower-cased, parameters other than ``q`` dropped) and its
    quality: 1 unless ``q`` says otherwise, clamped to 0..1, 0 when ``q`` is not a number."""
    for element in header.decode("latin-1").lower().split(","):
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
