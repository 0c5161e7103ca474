"""Aggregates declared as data: parameters, sources, and the graph between them.

Everything that can be checked without a request is checked here, when the declaration is
built: template syntax, unknown variables, fields that the referenced source's type does not
have, duplicate names, dependency cycles. A service with a broken declaration therefore fails
at start-up with a :class:`DeclarationError` naming the culprit.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec

from ._cache import CachePolicy
from ._errors import DeclarationError, InvalidParameter, UnknownParts
from ._resilience import RetryPolicy

__all__ = ["Aggregate", "Param", "Source"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A value that percent-encoding leaves as it is (RFC 3986 unreserved characters), and that is
#: not made only of dots ("." and ".." are dot segments), which the encoder spells out.
_UNRESERVED = re.compile(r"(?!\.+$)[A-Za-z0-9_.~-]+")
#: Unicode's control characters (category Cc): C0, DEL and C1.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_FORMATTER = string.Formatter()
_HEADER_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
#: Headers the gateway itself sets on upstream requests, or that HTTP gives a meaning.
_RESERVED_HEADERS = frozenset(
    {
        "accept", "authorization", "connection", "content-length", "cookie", "host",
        "traceparent", "tracestate", "baggage", "transfer-encoding", "x-request-id",
        "x-request-timeout-ms",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Param:
    """A request parameter of an aggregate, validated before any upstream is called.

    Values are strings. A value that is missing (when required), empty, longer than
    ``max_length`` characters or that contains a control character is refused with
    :class:`InvalidParameter`, which a gateway answers with 400.
    """

    name: str
    max_length: int = 128
    required: bool = True
    default: str | None = None
    #: for the API documentation (OpenAPI)
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise DeclarationError(f"parameter name {self.name!r} is not an identifier")
        if self.max_length < 1:
            raise DeclarationError(f"parameter {self.name!r}: max_length must be at least 1")
        if not self.required and self.default is None:
            raise DeclarationError(f"optional parameter {self.name!r} needs a default")

    def validate(self, value: str | None) -> str:
        if value is None:
            if self.required:
                raise InvalidParameter(
                    f"query parameter {self.name!r} is required", parameter=self.name
                )
            assert self.default is not None
            return self.default
        if value == "":
            raise InvalidParameter(f"query parameter {self.name!r} is empty", parameter=self.name)
        if len(value) > self.max_length:
            raise InvalidParameter(
                f"query parameter {self.name!r} is longer than {self.max_length} characters",
                parameter=self.name,
            )
        if _CONTROL.search(value):
            raise InvalidParameter(
                f"query parameter {self.name!r} contains a control character",
                parameter=self.name,
            )
        return value


@dataclass(frozen=True, slots=True)
class _Placeholder:
    """One ``{...}`` of a template: a parameter (``{id}``) or a source field (``{a.b.c}``)."""

    source: str | None  # None: a request parameter
    path: tuple[str, ...]  # the parameter name, or the attribute path inside the source's value
    in_query: bool

    @property
    def text(self) -> str:
        return ".".join(((self.source,) if self.source else ()) + self.path)


@dataclass(frozen=True, slots=True)
class Source:
    """One upstream request of an aggregate.

    Args:
        name: the part's name, as it appears in the answer, in ``fields`` and in ``errors``.
        service: which configured upstream service (base URL) to call.
        path: a template appended to the service's base URL. ``{param}`` is a request parameter;
            ``{source.field}`` a field of another source's value, which makes this source wait
            for that one. Every value is percent-encoded as a single path segment (or a single
            query value), so no value can change the path or the query that the upstream gets.
        returns: the type the upstream's JSON is decoded into (a msgspec ``Struct`` usually;
            unknown fields are ignored, so declaring fewer fields trims the payload).
        critical: without this part there is no answer (the aggregate fails with 404/502/504).
        timeout: seconds this part may take, or ``None`` (the default) for no limit of its own;
            the aggregation's deadline applies either way.
        cache: how the part's answers may be cached (when the gateway has a cache); ``None``:
            never.
        retry: how a failed request is retried (connection failures, 5xx), within the
            deadline and the service's retry budget; ``None`` (the default): never.
        hedge_after: seconds after which, if the upstream has not answered, a second
            identical request is sent; the first good answer wins and the other request is
            cancelled. Set it near the upstream's usual slow answer (its p95, say). ``None``
            (the default): never.
        idempotent: whether sending the request twice is harmless. ``GET`` is idempotent by
            HTTP's rules; an upstream whose ``GET`` has side effects must say ``False``, and
            then cannot declare ``retry`` or ``hedge_after``.
        pass_token: send the caller's verified bearer token on (``Authorization``) when the
            request has one. No other source ever sees it.
        subject_header: send the verified caller's subject (the token's ``sub``) in this
            header, e.g. ``"x-user-id"``, when the request has one.

    A source given the caller's identity (``pass_token`` or ``subject_header``) answers per
    user: its ``cache`` must say ``per_user=True``, and its entries are then kept per user,
    while anonymous requests keep sharing one entry.
    """

    name: str
    service: str
    path: str
    returns: Any
    critical: bool = False
    timeout: float | None = None
    cache: CachePolicy | None = None
    retry: RetryPolicy | None = None
    hedge_after: float | None = None
    idempotent: bool = True
    pass_token: bool = False
    subject_header: str | None = None
    _placeholders: tuple[_Placeholder, ...] = field(init=False, repr=False, compare=False)
    _literals: tuple[str, ...] = field(init=False, repr=False, compare=False)
    decoder: msgspec.json.Decoder[Any] = field(init=False, repr=False, compare=False)
    #: the sources whose values this one's path needs
    depends_on: frozenset[str] = field(init=False, repr=False, compare=False)
    #: the name of the task that fetches this part (visible in debuggers and task dumps)
    task_name: str = field(init=False, repr=False, compare=False)
    #: the request parameters its path uses (cache entries are tagged with their values)
    param_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise DeclarationError(f"source name {self.name!r} is not an identifier")
        if not self.service:
            raise DeclarationError(f"source {self.name!r}: service is empty")
        if not self.path.startswith("/"):
            raise DeclarationError(f"source {self.name!r}: path {self.path!r} must start with '/'")
        if self.timeout is not None and not self.timeout > 0:
            raise DeclarationError(f"source {self.name!r}: timeout must be positive")
        if self.hedge_after is not None:
            if not self.hedge_after > 0:
                raise DeclarationError(f"source {self.name!r}: hedge_after must be positive")
            if self.timeout is not None and self.hedge_after >= self.timeout:
                raise DeclarationError(
                    f"source {self.name!r}: hedge_after ({self.hedge_after} s) must be shorter "
                    f"than its timeout ({self.timeout} s), or the hedge could never answer"
                )
        if not self.idempotent and (self.retry is not None or self.hedge_after is not None):
            raise DeclarationError(
                f"source {self.name!r} is not idempotent: it cannot be retried or hedged"
            )
        if self.subject_header is not None:
            header = self.subject_header.lower()
            if not _HEADER_NAME.fullmatch(header) or header in _RESERVED_HEADERS:
                raise DeclarationError(
                    f"source {self.name!r}: subject_header {self.subject_header!r} is not a "
                    "header name the gateway may set (letters, digits and '-'; not one of "
                    f"{', '.join(sorted(_RESERVED_HEADERS))})"
                )
            object.__setattr__(self, "subject_header", header)
        if self.passes_identity and self.cache is not None and not self.cache.per_user:
            raise DeclarationError(
                f"source {self.name!r} is given the caller's identity: its cache must be "
                "CachePolicy(..., per_user=True), or one user's answer would be served to others"
            )
        if "#" in self.path:
            raise DeclarationError(f"source {self.name!r}: path must not contain a fragment")
        literals, placeholders = _parse_template(self.name, self.path)
        try:
            decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.returns)
        except TypeError as exc:
            raise DeclarationError(
                f"source {self.name!r}: returns {self.returns!r} is not a type msgspec can decode"
            ) from exc
        object.__setattr__(self, "_literals", literals)
        object.__setattr__(self, "_placeholders", placeholders)
        object.__setattr__(self, "decoder", decoder)
        object.__setattr__(self, "task_name", f"bff-part:{self.name}")
        object.__setattr__(
            self,
            "param_names",
            tuple(dict.fromkeys(p.path[0] for p in placeholders if p.source is None)),
        )
        object.__setattr__(
            self,
            "depends_on",
            frozenset(p.source for p in placeholders if p.source is not None),
        )

    @property
    def passes_identity(self) -> bool:
        """Whether the caller's identity reaches this source's upstream."""
        return self.pass_token or self.subject_header is not None

    def render(self, params: Mapping[str, str], values: Mapping[str, Any]) -> str:
        """The request path (and query) for these parameters and earlier sources' values.

        Raises ``LookupError`` when a source field it needs is ``None`` or absent.
        """
        pieces: list[str] = []
        for literal, placeholder in zip(self._literals, self._placeholders, strict=False):
            pieces.append(literal)
            if placeholder.source is None:
                raw: Any = params[placeholder.path[0]]
                if type(raw) is str and _UNRESERVED.fullmatch(raw):
                    pieces.append(raw)  # nothing to encode: the common case, kept cheap
                    continue
            else:
                raw = values[placeholder.source]
                for attr in placeholder.path:
                    raw = raw[attr] if isinstance(raw, Mapping) else getattr(raw, attr)
            pieces.append(_encode(raw, placeholder))
        pieces.append(self._literals[-1])
        return "".join(pieces)


def _parse_template(source: str, template: str) -> tuple[tuple[str, ...], tuple[_Placeholder, ...]]:
    literals: list[str] = []
    placeholders: list[_Placeholder] = []
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
        if not field_name or not all(_NAME.match(p) for p in parts):
            raise DeclarationError(
                f"source {source!r}: placeholder {{{field_name}}} is not a name or a dotted path"
            )
        if len(parts) == 1:
            placeholders.append(_Placeholder(None, parts, in_query))
        else:
            placeholders.append(_Placeholder(parts[0], parts[1:], in_query))
        literals.append(literal)
    literals.append(literal_tail)
    return tuple(literals), tuple(placeholders)


def _encode(raw: Any, placeholder: _Placeholder) -> str:
    if raw is None:
        raise LookupError(f"{{{placeholder.text}}} is null")
    if isinstance(raw, list | tuple):
        if placeholder.in_query:
            return ",".join(_encode_one(item, placeholder) for item in raw)
        raise LookupError(f"{{{placeholder.text}}} is a list, which cannot be one path segment")
    return _encode_one(raw, placeholder)


def _encode_one(raw: Any, placeholder: _Placeholder) -> str:
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


class Aggregate:
    """A named set of sources answered together for one request.

    Construction validates the whole declaration and raises :class:`DeclarationError` for any
    mistake; a constructed aggregate is immutable and safe to share between requests.
    """

    __slots__ = (
        "_plans",
        "_sources_by_name",
        "name",
        "params",
        "requires_identity",
        "sources",
        "uses_identity",
    )

    def __init__(
        self,
        name: str,
        *,
        params: Sequence[Param],
        sources: Sequence[Source],
        requires_identity: bool = False,
    ) -> None:
        """``requires_identity``: only a caller with a verified bearer token is answered (the
        others get 401); by default anonymous callers are answered too."""
        if not _NAME.match(name):
            raise DeclarationError(f"aggregate name {name!r} is not an identifier")
        self.name = name
        self.requires_identity = requires_identity
        #: whether some source gets the caller's identity (so answers differ per user)
        self.uses_identity = any(s.passes_identity for s in sources)
        self.params: tuple[Param, ...] = tuple(params)
        if not sources:
            raise DeclarationError(f"aggregate {name!r} has no sources")
        _check_unique(name, "parameter", [p.name for p in self.params])
        _check_unique(name, "source", [s.name for s in sources])
        param_names = {p.name for p in self.params}
        by_name = {s.name: s for s in sources}
        for clash in sorted(param_names & by_name.keys()):
            raise DeclarationError(
                f"aggregate {name!r}: {clash!r} is both a parameter and a source name"
            )
        for source in sources:
            for placeholder in source._placeholders:
                _check_placeholder(name, source, placeholder, param_names, by_name)
        self.sources: tuple[Source, ...] = _topological_order(name, sources)
        self._sources_by_name = {s.name: s for s in self.sources}
        self._plans: dict[frozenset[str] | None, _Plan] = {}

    @property
    def part_names(self) -> tuple[str, ...]:
        """The names of every part, in declaration order (the dependency order, stably)."""
        return tuple(s.name for s in self.sources)

    @property
    def services(self) -> frozenset[str]:
        return frozenset(s.service for s in self.sources)

    def validate_params(self, raw: Mapping[str, str | None]) -> dict[str, str]:
        return {p.name: p.validate(raw.get(p.name)) for p in self.params}

    def plan(self, fields: str | Iterable[str] | None) -> _Plan:
        """Which sources to run for ``fields`` (all when ``None``), dependencies included."""
        if isinstance(fields, str):
            fields = [f.strip() for f in fields.split(",")]
        key = None if fields is None else frozenset(fields)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._make_plan(key)
            if len(self._plans) < 256:  # bounded: keys come from clients
                self._plans[key] = plan
        return plan

    def _make_plan(self, requested: frozenset[str] | None) -> _Plan:
        if requested is None:
            return _Plan(self.sources, frozenset(self._sources_by_name))
        unknown = requested - self._sources_by_name.keys()
        if unknown or not requested:
            raise UnknownParts(sorted(unknown) or ["(none)"], self.part_names)
        needed: set[str] = set()
        stack = list(requested)
        while stack:
            current = stack.pop()
            if current not in needed:
                needed.add(current)
                stack.extend(self._sources_by_name[current].depends_on)
        return _Plan(tuple(s for s in self.sources if s.name in needed), requested)

    def __repr__(self) -> str:
        return f"Aggregate({self.name!r}, parts={list(self.part_names)!r})"


@dataclass(frozen=True, slots=True)
class _Plan:
    sources: tuple[Source, ...]  # what to fetch, in dependency order
    reported: frozenset[str]  # what the caller asked for
    # Split once here (plans are cached), not on every run:
    roots: tuple[Source, ...] = field(init=False)  # start at once
    dependents: tuple[Source, ...] = field(init=False)  # wait for others, in dependency order

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(s for s in self.sources if not s.depends_on))
        object.__setattr__(self, "dependents", tuple(s for s in self.sources if s.depends_on))


def _check_unique(aggregate: str, kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise DeclarationError(f"aggregate {aggregate!r}: duplicate {kind} name {n!r}")
        seen.add(n)


def _check_placeholder(
    aggregate: str,
    source: Source,
    placeholder: _Placeholder,
    params: set[str],
    sources: Mapping[str, Source],
) -> None:
    where = f"aggregate {aggregate!r}, source {source.name!r}"
    if placeholder.source is None:
        if placeholder.path[0] not in params:
            if placeholder.path[0] in sources:
                raise DeclarationError(
                    f"{where}: {{{placeholder.text}}} names a source; use a field of it, "
                    f"e.g. {{{placeholder.text}.id}}"
                )
            raise DeclarationError(
                f"{where}: unknown template variable {{{placeholder.text}}} "
                f"(parameters: {', '.join(sorted(params)) or 'none'})"
            )
        return
    target = sources.get(placeholder.source)
    if target is None:
        raise DeclarationError(
            f"{where}: unknown template variable {{{placeholder.text}}}: no source "
            f"{placeholder.source!r} and no such parameter"
        )
    if target is source:
        raise DeclarationError(f"{where}: {{{placeholder.text}}} refers to the source itself")
    _check_field_path(where, placeholder, target.returns)


def _check_field_path(where: str, placeholder: _Placeholder, type_: Any) -> None:
    """Check a dotted field path against msgspec Struct types, as far as they are Structs."""
    current = type_
    for attr in placeholder.path:
        if not (isinstance(current, type) and issubclass(current, msgspec.Struct)):
            return  # a dict or Any: only the request can tell
        fields = {f.name: f.type for f in msgspec.structs.fields(current)}
        if attr not in fields:
            raise DeclarationError(
                f"{where}: {{{placeholder.text}}}: {current.__name__} has no field {attr!r}"
            )
        current = fields[attr]


def _topological_order(aggregate: str, sources: Sequence[Source]) -> tuple[Source, ...]:
    by_name = {s.name: s for s in sources}
    state: dict[str, int] = {}  # 1: visiting, 2: done
    order: list[Source] = []

    def visit(source: Source, trail: list[str]) -> None:
        mark = state.get(source.name)
        if mark == 2:
            return
        if mark == 1:
            cycle = [*trail[trail.index(source.name) :], source.name]
            raise DeclarationError(
                f"aggregate {aggregate!r}: dependency cycle {' -> '.join(cycle)}"
            )
        state[source.name] = 1
        for dependency in sorted(source.depends_on):
            visit(by_name[dependency], [*trail, source.name])
        state[source.name] = 2
        order.append(source)

    for source in sources:
        visit(source, [])
    return tuple(order)
