"""Path templates: ``/products/{id}?fields={category.fields}``, parsed once when declared.

A template is literals around placeholders. A placeholder is a request parameter (``{id}``),
a field of another source's value (``{category.id}``), or a variable the gateway fills itself
(``{item}``, ``{ids}``, ``{user}``). Every value is percent-encoded as one path segment (or one
query value), so no value can change the path or the query the upstream gets.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .._errors import DeclarationError

__all__ = [
    "ANONYMOUS",
    "IDS",
    "ITEM",
    "NAME",
    "UNRESERVED",
    "USER",
    "Placeholder",
    "encode_id",
    "encode_value",
    "parse_template",
    "split_around",
]

#: What a declared name (a part, a parameter, a field) must look like.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A value that percent-encoding leaves as it is (RFC 3986 unreserved characters), and that is
#: not made only of dots ("." and ".." are dot segments), which the encoder spells out.
UNRESERVED = re.compile(r"(?!\.+$)[A-Za-z0-9_.~-]+")
_FORMATTER = string.Formatter()
#: Template variables the gateway fills itself: the item an item source reads (``{item}``),
#: the ids of a batch request (``{ids}``, batch paths only) and the verified caller's subject
#: (``{user}``; ``anonymous`` without one). No parameter may take these names.
ITEM, IDS, USER = "item", "ids", "user"
ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``{...}`` of a template: a parameter (``{id}``) or a source field (``{a.b.c}``)."""

    source: str | None  # None: a request parameter
    path: tuple[str, ...]  # the parameter name, or the attribute path inside the source's value
    in_query: bool

    @property
    def text(self) -> str:
        return ".".join(((self.source,) if self.source else ()) + self.path)


def parse_template(source: str, template: str) -> tuple[tuple[str, ...], tuple[Placeholder, ...]]:
    """The literals of ``template`` (one more than its placeholders) and its placeholders."""
    literals: list[str] = []
    placeholders: list[Placeholder] = []
    in_query = False
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise DeclarationError(f"source {source!r}: bad path template {template!r}: {exc}") from exc
    literal_tail = ""
    for literal, field_name, format_spec, conversion in parsed:
        in_query = in_query or "?" in literal
        if field_name is None:
            literal_tail = literal
            continue
        if format_spec or conversion:
            raise DeclarationError(
                f"source {source!r}: placeholder {{{field_name}}} "
                "may not have a format or a conversion"
            )
        parts = tuple(field_name.split("."))
        if not field_name or not all(NAME.match(p) for p in parts):
            raise DeclarationError(
                f"source {source!r}: placeholder {{{field_name}}} is not a name or a dotted path"
            )
        if len(parts) == 1:
            placeholders.append(Placeholder(None, parts, in_query))
        else:
            placeholders.append(Placeholder(parts[0], parts[1:], in_query))
        literals.append(literal)
    literals.append(literal_tail)
    return tuple(literals), tuple(placeholders)


def split_around(
    literals: Sequence[str],
    placeholders: Sequence[Placeholder],
    variable: str,
    params: Mapping[str, str],
) -> tuple[str, str]:
    """The rendered template before and after ``{variable}`` (which it has once)."""
    before: str | None = None
    pieces: list[str] = []
    for literal, placeholder in zip(literals, placeholders, strict=False):
        pieces.append(literal)
        name = placeholder.path[0]
        if name == variable:
            before, pieces = "".join(pieces), []
        else:
            pieces.append(encode_value(params[name], placeholder))
    pieces.append(literals[-1])
    assert before is not None  # checked when declared
    return before, "".join(pieces)


def encode_id(item: str) -> str:
    """One item id, percent-encoded as a path segment or a query value of its own."""
    if UNRESERVED.fullmatch(item):
        return item
    encoded = quote(item, safe="")
    return "%2E" * len(encoded) if encoded.strip(".") == "" else encoded


def encode_value(raw: Any, placeholder: Placeholder) -> str:
    """A placeholder's value, percent-encoded; a list is comma-separated, in a query only.

    Raises ``LookupError`` when the value cannot fill the placeholder (null, empty, not a
    scalar).
    """
    if raw is None:
        raise LookupError(f"{{{placeholder.text}}} is null")
    if isinstance(raw, list | tuple):
        if placeholder.in_query:
            return ",".join(_encode_one(item, placeholder) for item in raw)
        raise LookupError(f"{{{placeholder.text}}} is a list, which cannot be one path segment")
    return _encode_one(raw, placeholder)


def _encode_one(raw: Any, placeholder: Placeholder) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise LookupError(f"{{{placeholder.text}}} is a {type(raw).__name__}, not a scalar")
    text = str(raw)
    if text == "":
        raise LookupError(f"{{{placeholder.text}}} is empty")
    encoded = quote(text, safe="")
    # "." and ".." are path segments with a meaning of their own (RFC 3986 dot-segments), so a
    # value made only of dots is fully encoded: the upstream gets the literal name, not the parent.
    if encoded.strip(".") == "":
        encoded = "%2E" * len(encoded)
    return encoded
