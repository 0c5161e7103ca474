"""Label values a client's request may choose among, bounded: the metrics' and the spans'."""

from __future__ import annotations

__all__ = ["KNOWN_METHODS", "METHODS", "UNMATCHED", "method_label"]

#: The ``method`` label's values: the methods HTTP defines that a BFF may answer, and ``OTHER``
#: for any other a client sends (HTTP lets a client invent methods; an aggregate route answers
#: each with 405, and each would otherwise be a series of its own).
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER")
#: Each method of :data:`METHODS` but ``OTHER``, by itself (a lookup for the hot path).
KNOWN_METHODS = {method: method for method in METHODS[:-1]}

#: The ``route`` label of a request no route matched, whatever its path.
UNMATCHED = "unmatched"


def method_label(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`, else ``OTHER`` (methods are case-sensitive:
    ``get`` is not ``GET``)."""
    return KNOWN_METHODS.get(method, "OTHER")
