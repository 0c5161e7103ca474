"""Aggregates: named sets of parts answered together, and the plan of one request.

Building an :class:`Aggregate` checks the whole declaration: unique names, every template
variable known, every field a referenced source's type has, no dependency cycle. A plan
(which sources one request runs, in dependency order) is made once per ``fields`` and kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Sequence as AbstractSequence
from dataclasses import dataclass, field
from types import UnionType
from typing import Any, Union, get_args, get_origin

import msgspec

from .._errors import DeclarationError, UnknownParts
from ._sources import Batch, Items, Param, Source, check_unique
from ._template import ITEM, NAME, USER, Placeholder

__all__ = ["Aggregate", "Plan"]


class Aggregate:
    """A named set of sources answered together for one request.

    Construction validates the whole declaration and raises :class:`DeclarationError` for any
    mistake; a constructed aggregate is immutable and safe to share between requests.
    """

    __slots__ = (
        "_default_parts",
        "_plans",
        "_sources_by_name",
        "name",
        "params",
        "requires_identity",
        "sources",
        "uses_identity",
        "uses_user",
    )

    def __init__(
        self,
        name: str,
        *,
        params: Sequence[Param],
        sources: Sequence[Source | Items],
        requires_identity: bool = False,
    ) -> None:
        """``requires_identity``: only a caller with a verified bearer token is answered (the
        others get 401); by default anonymous callers are answered too."""
        if not NAME.match(name):
            raise DeclarationError(f"aggregate name {name!r} is not an identifier")
        self.name = name
        self.requires_identity = requires_identity
        #: whether some source gets the caller's identity (so answers differ per user)
        self.uses_identity = any(s.passes_identity for s in sources)
        self.params: tuple[Param, ...] = tuple(params)
        if not sources:
            raise DeclarationError(f"aggregate {name!r} has no sources")
        check_unique(name, "parameter", [p.name for p in self.params])
        check_unique(name, "source", [s.name for s in sources])
        params_by_name = {p.name: p for p in self.params}
        param_names = set(params_by_name)
        by_name = {s.name: s for s in sources}
        for clash in sorted(param_names & by_name.keys()):
            raise DeclarationError(
                f"aggregate {name!r}: {clash!r} is both a parameter and a source name"
            )
        for source in sources:
            if isinstance(source, Items):
                _check_items(name, source, params_by_name, by_name)
                continue
            if source.batch is not None:
                _check_batched(name, source, source.batch)
            for placeholder in source.placeholders:
                _check_placeholder(name, source, placeholder, param_names | {USER}, by_name)
        self.sources: tuple[Source | Items, ...] = _topological_order(name, sources)
        self._sources_by_name = {s.name: s for s in self.sources}
        self._default_parts = frozenset(s.name for s in self.sources if s.default)
        if not self._default_parts:
            raise DeclarationError(f"aggregate {name!r}: every part is default=False")
        #: whether some path has ``{user}`` (the run fills it in)
        self.uses_user = any(
            s.uses_user if isinstance(s, Source) else any(i.uses_user for i in s.sources)
            for s in self.sources
        )
        self._plans: dict[frozenset[str] | None, Plan] = {}

    @property
    def part_names(self) -> tuple[str, ...]:
        """The names of every part, in declaration order (the dependency order, stably)."""
        return tuple(s.name for s in self.sources)

    @property
    def services(self) -> frozenset[str]:
        found: set[str] = set()
        for s in self.sources:
            found |= s.services if isinstance(s, Items) else {s.service}
        return frozenset(found)

    @property
    def default_parts(self) -> frozenset[str]:
        """The parts answered when the request does not say ``fields``."""
        return self._default_parts

    def validate_params(self, raw: Mapping[str, str | None]) -> dict[str, str]:
        return {p.name: p.validate(raw.get(p.name)) for p in self.params}

    def plan(self, fields: str | Iterable[str] | None) -> Plan:
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

    def _make_plan(self, requested: frozenset[str] | None) -> Plan:
        if requested is None:
            if len(self._default_parts) == len(self.sources):
                return Plan(self.sources, self._default_parts)
            requested = self._default_parts
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
        return Plan(tuple(s for s in self.sources if s.name in needed), requested)

    def __repr__(self) -> str:
        return f"Aggregate({self.name!r}, parts={list(self.part_names)!r})"


@dataclass(frozen=True, slots=True)
class Plan:
    sources: tuple[Source | Items, ...]  # what to fetch, in dependency order
    reported: frozenset[str]  # what the caller asked for
    # Split once here (plans are cached), not on every run:
    roots: tuple[Source | Items, ...] = field(init=False)  # start at once
    #: wait for others, in dependency order
    dependents: tuple[Source | Items, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(s for s in self.sources if not s.depends_on))
        object.__setattr__(self, "dependents", tuple(s for s in self.sources if s.depends_on))


def _check_batched(aggregate: str, source: Source, batch: Batch) -> None:
    """A part of its own with a batch endpoint: its reads are batched across requests, so its
    path must name one id and nothing else, and a batch element must be what it reads."""
    where = f"aggregate {aggregate!r}, source {source.name!r}"
    if len(source.placeholders) != 1 or source.uses_user:
        raise DeclarationError(
            f"{where}: a part with a batch endpoint is read in batches across requests, so its "
            f"path must have exactly one placeholder, the id it reads (e.g. '/prices/{{id}}'); "
            f"{source.path!r} has {len(source.placeholders)}"
        )
    if batch.param_names:
        raise DeclarationError(
            f"{where}: batch path {batch.path!r} may use only {{ids}}: a batch serves "
            "requests with different parameters"
        )
    if not batch.same_as_item:
        raise DeclarationError(
            f"{where}: batch {batch.path!r} says same_as_item=False, but a part read in a "
            "batch gets its element as its answer: the batch must answer what the path does"
        )


def _check_items(
    aggregate: str,
    items: Items,
    params: Mapping[str, Param],
    sources: Mapping[str, Source | Items],
) -> None:
    where = f"aggregate {aggregate!r}, list {items.name!r}"
    if items.ids_source is None:
        if items.ids not in params:
            raise DeclarationError(
                f"{where}: ids {items.ids!r} is not a parameter "
                f"(parameters: {', '.join(sorted(params)) or 'none'}); a source's list is "
                "named with its field, e.g. 'category.product_ids'"
            )
    else:
        target = sources.get(items.ids_source)
        if target is None:
            raise DeclarationError(f"{where}: ids {items.ids!r}: no source {items.ids_source!r}")
        if isinstance(target, Items):
            raise DeclarationError(
                f"{where}: ids {items.ids!r}: {items.ids_source!r} is a list part, not a source"
            )
        found = _field_type(where, items.ids, items.ids_path, target.returns)
        if found is not _UNKNOWN and not _is_list_type(found):
            raise DeclarationError(
                f"{where}: ids {items.ids!r} is a {_type_name(found)}, not a list of ids"
            )
    for role, value in (("limit", items.limit), ("offset", items.offset)):
        if isinstance(value, str):
            param = params.get(value)
            if param is None or not param.integer:
                raise DeclarationError(
                    f"{where}: {role} {value!r} must name a whole-number parameter "
                    "(Param(..., minimum=, maximum=))"
                )
    if items.exclude is not None and items.exclude not in params:
        raise DeclarationError(f"{where}: exclude {items.exclude!r} is not a parameter")
    for source in items.sources:
        for name in (*source.param_names, *(source.batch.param_names if source.batch else ())):
            if name not in params and name not in (ITEM, USER):
                raise DeclarationError(
                    f"{where}, item source {source.name!r}: unknown template variable "
                    f"{{{name}}} (parameters: {', '.join(sorted(params)) or 'none'})"
                )


_UNKNOWN: Any = object()


def _field_type(where: str, text: str, path: Sequence[str], type_: Any) -> Any:
    """The declared type at ``path`` inside ``type_``, or ``_UNKNOWN`` past a non-Struct."""
    current = type_
    for index, attr in enumerate(path):
        element = _element_type(current)
        if element is not None:  # a field of each element: a list of that field
            _field_type(where, text, path[index:], element)  # the fields exist
            return list[Any]
        if not (isinstance(current, type) and issubclass(current, msgspec.Struct)):
            return _UNKNOWN
        fields = {f.name: f.type for f in msgspec.structs.fields(current)}
        if attr not in fields:
            raise DeclarationError(f"{where}: {text}: {current.__name__} has no field {attr!r}")
        current = fields[attr]
    return current


def _element_type(type_: Any) -> Any:
    """The element type of ``list[X]`` (or a sequence of it), else ``None``."""
    origin = get_origin(type_)
    args = get_args(type_)
    if origin in (list, Sequence, AbstractSequence) and len(args) == 1:
        return args[0]
    return None


def _is_list_type(type_: Any) -> bool:
    origin = get_origin(type_) or type_
    if origin in (list, tuple, Sequence, AbstractSequence) or origin is Any:
        return True
    if origin in (Union, UnionType):  # list[str] | None: a null is a failure at request
        return any(_is_list_type(a) for a in get_args(type_) if a is not type(None))
    return False


def _type_name(type_: Any) -> str:
    return getattr(type_, "__name__", None) or str(type_)


def _check_placeholder(
    aggregate: str,
    source: Source,
    placeholder: Placeholder,
    params: set[str],
    sources: Mapping[str, Source | Items],
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
    if isinstance(target, Items):
        raise DeclarationError(
            f"{where}: {{{placeholder.text}}}: {placeholder.source!r} is a list part; a path "
            "can use a source's field, not a list's"
        )
    _check_field_path(where, placeholder, target.returns)


def _check_field_path(where: str, placeholder: Placeholder, type_: Any) -> None:
    """Check a dotted field path against msgspec Struct types, as far as they are Structs."""
    _field_type(where, f"{{{placeholder.text}}}", placeholder.path, type_)


def _topological_order(
    aggregate: str, sources: Sequence[Source | Items]
) -> tuple[Source | Items, ...]:
    by_name = {s.name: s for s in sources}
    state: dict[str, int] = {}  # 1: visiting, 2: done
    order: list[Source | Items] = []

    def visit(source: Source | Items, trail: list[str]) -> None:
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
