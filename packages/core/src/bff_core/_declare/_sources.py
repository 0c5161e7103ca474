"""What one part asks of its upstream: parameters, sources, their batches, and lists of items.

Everything that can be checked without a request is checked when a declaration is built:
template syntax, values out of range, options that contradict each other. A service with a
broken declaration therefore fails at start-up with a :class:`DeclarationError` naming the
culprit. What needs the whole aggregate (unknown variables, fields, cycles) is checked by
:class:`~bff_core._declare._aggregate.Aggregate`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_origin

import msgspec

from .._errors import DeclarationError, InvalidParameter
from ._policies import CachePolicy, RetryPolicy
from ._template import (
    IDS,
    ITEM,
    NAME,
    UNRESERVED,
    USER,
    Placeholder,
    encode_value,
    parse_template,
    split_around,
)

__all__ = ["Batch", "Items", "Param", "Source", "check_unique", "settable_header"]

#: Unicode's control characters (category Cc): C0, DEL and C1.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_HEADER_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_INTEGER = re.compile(r"-?[0-9]{1,18}")
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
    #: with ``maximum``: the value must be a whole number in ``minimum..maximum`` (inclusive)
    minimum: int | None = None
    maximum: int | None = None

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise DeclarationError(f"parameter name {self.name!r} is not an identifier")
        if self.name in (ITEM, USER):
            raise DeclarationError(
                f"parameter name {self.name!r} is reserved: {{{self.name}}} is filled by the "
                "gateway itself"
            )
        if self.max_length < 1:
            raise DeclarationError(f"parameter {self.name!r}: max_length must be at least 1")
        if not self.required and self.default is None:
            raise DeclarationError(f"optional parameter {self.name!r} needs a default")
        if (self.minimum is None) != (self.maximum is None):
            raise DeclarationError(
                f"parameter {self.name!r}: a whole-number parameter needs both minimum and maximum"
            )
        if self.minimum is not None and self.maximum is not None:
            if self.minimum > self.maximum:
                raise DeclarationError(
                    f"parameter {self.name!r}: minimum {self.minimum} is above maximum "
                    f"{self.maximum}"
                )
            if self.default is not None:
                try:
                    self.validate(self.default)
                except InvalidParameter as exc:
                    raise DeclarationError(
                        f"parameter {self.name!r}: default {self.default!r} is not valid: {exc}"
                    ) from None

    @property
    def integer(self) -> bool:
        """Whether the value is a whole number within bounds."""
        return self.minimum is not None

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
        if (
            self.minimum is not None
            and self.maximum is not None
            and (not _INTEGER.fullmatch(value) or not self.minimum <= int(value) <= self.maximum)
        ):
            raise InvalidParameter(
                f"query parameter {self.name!r} must be a whole number from "
                f"{self.minimum} to {self.maximum}, got {value!r}",
                parameter=self.name,
            )
        return value


@dataclass(frozen=True, slots=True)
class Batch:
    """How an item source reads many items in one request: the upstream's batch endpoint.

    Args:
        path: the batch request's template, with ``{ids}`` in its query
            (``"/prices?ids={ids}"``): the ids of one chunk, each percent-encoded,
            comma-separated. Any other placeholder is a request parameter.
        size: at most this many ids per request (the upstream's limit, or less). A list
            longer than that is read in several chunks, concurrently; a chunk is one request
            for the breakers, retries and the retry budget, and a chunk that fails marks only
            its own items.
        key: the field of each element of the answer (a JSON array) that holds its item's
            id. Elements are matched to items by it, so their order does not matter, and an
            id the answer leaves out is an item the upstream does not know (a 404 for it).
        same_as_item: each element is exactly what the item source's own path answers for
            that id (a product, a price), so an item read in a batch and one read alone (a
            product page) share one cache entry. ``False`` when the batch answers a summary
            (a rating without the reviews' texts): its items are then cached apart.
    """

    path: str
    size: int
    key: str
    same_as_item: bool = True
    _literals: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _placeholders: tuple[Placeholder, ...] = field(init=False, repr=False, compare=False)
    #: the request parameters its path uses
    param_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    #: decodes one element of a batch answer to its key alone
    key_decoder: msgspec.json.Decoder[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise DeclarationError(f"batch path {self.path!r} must start with '/'")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise DeclarationError(
                f"batch {self.path!r}: size must be a whole number of at least 1, got {self.size!r}"
            )
        if not NAME.match(self.key):
            raise DeclarationError(f"batch {self.path!r}: key {self.key!r} is not a field name")
        literals, placeholders = parse_template(f"batch {self.path}", self.path)
        ids = [p for p in placeholders if p.source is None and p.path[0] == IDS]
        if len(ids) != 1 or not ids[0].in_query:
            raise DeclarationError(
                f"batch path {self.path!r} needs exactly one {{ids}} placeholder, in its query "
                "(e.g. '/prices?ids={ids}'): it is where a chunk's ids go"
            )
        for placeholder in placeholders:
            if placeholder.source is not None:
                raise DeclarationError(
                    f"batch path {self.path!r}: {{{placeholder.text}}}: a batch path may use "
                    "only {ids} and request parameters"
                )
        object.__setattr__(self, "_literals", literals)
        object.__setattr__(self, "_placeholders", placeholders)
        object.__setattr__(
            self,
            "param_names",
            tuple(dict.fromkeys(p.path[0] for p in placeholders if p.path[0] != IDS)),
        )
        keyed = msgspec.defstruct("BatchElement", [(self.key, str | int)])
        object.__setattr__(self, "key_decoder", msgspec.json.Decoder(keyed))

    def around_ids(self, params: Mapping[str, str]) -> tuple[str, str]:
        """The path before and after ``{ids}``, for these parameters (once per request)."""
        return split_around(self._literals, self._placeholders, IDS, params)


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
        default: part of the answer when the request does not say ``fields``. ``False``: only
            when ``fields`` names it (an expensive extra, such as related products).
        batch: for an item source (one of an :class:`Items`' sources): the upstream's batch
            endpoint, which reads many items per request. Without one, each item is one
            request to ``path``.
        concurrency: for an item source: at most this many of its requests (per item, or
            batch chunks) are in flight at once for one list.

    A path may use ``{user}``: the verified caller's subject, or ``anonymous`` without one.
    A source given the caller's identity (``pass_token``, ``subject_header`` or ``{user}``)
    answers per user: its ``cache`` must say ``per_user=True``, and its entries are then kept
    per user, while anonymous requests keep sharing one entry.

    An item source's path has ``{item}`` (the item's id) once, and otherwise only request
    parameters; its ``critical`` means that an item without this part is left out of the list.
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
    default: bool = True
    batch: Batch | None = None
    concurrency: int = 8
    #: the path template, parsed: its literals (one more than its placeholders) and placeholders
    literals: tuple[str, ...] = field(init=False, repr=False, compare=False)
    placeholders: tuple[Placeholder, ...] = field(init=False, repr=False, compare=False)
    decoder: msgspec.json.Decoder[Any] = field(init=False, repr=False, compare=False)
    #: the sources whose values this one's path needs
    depends_on: frozenset[str] = field(init=False, repr=False, compare=False)
    #: the name of the task that fetches this part (visible in debuggers and task dumps)
    task_name: str = field(init=False, repr=False, compare=False)
    #: the request parameters its path uses (cache entries are tagged with their values)
    param_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    #: with a batch: decodes a batch answer into each element's value by its id (raises
    #: ``msgspec.DecodeError``/``ValidationError`` when it is not an array of such elements)
    batch_values: Callable[[bytes], dict[str, Any]] | None = field(
        init=False, repr=False, compare=False, default=None
    )

    def __post_init__(self) -> None:
        # In this order, so that a declaration with several mistakes is told the first one.
        self._check_names()
        self._check_timing()
        self._check_subject_header()
        self._check_path_and_concurrency()
        self._parse()
        self._check_identity_cache()

    def _check_names(self) -> None:
        if not NAME.match(self.name):
            raise DeclarationError(f"source name {self.name!r} is not an identifier")
        if not self.service:
            raise DeclarationError(f"source {self.name!r}: service is empty")
        if not self.path.startswith("/"):
            raise DeclarationError(f"source {self.name!r}: path {self.path!r} must start with '/'")

    def _check_timing(self) -> None:
        """The timeout, the hedge, and whether the request may be sent twice at all."""
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

    def _check_subject_header(self) -> None:
        """A header the gateway may set; kept lower-cased."""
        if self.subject_header is not None:
            header = settable_header(f"source {self.name!r}", self.subject_header)
            object.__setattr__(self, "subject_header", header)

    def _check_path_and_concurrency(self) -> None:
        if "#" in self.path:
            raise DeclarationError(f"source {self.name!r}: path must not contain a fragment")
        if (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise DeclarationError(
                f"source {self.name!r}: concurrency must be a whole number of at least 1, "
                f"got {self.concurrency!r}"
            )

    def _parse(self) -> None:
        """Parse the template and build the decoders once, for every request to come."""
        literals, placeholders = parse_template(self.name, self.path)
        try:
            decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.returns)
        except TypeError as exc:
            raise DeclarationError(
                f"source {self.name!r}: returns {self.returns!r} is not a type msgspec can decode"
            ) from exc
        object.__setattr__(self, "literals", literals)
        object.__setattr__(self, "placeholders", placeholders)
        object.__setattr__(self, "decoder", decoder)
        if self.batch is not None:
            object.__setattr__(self, "batch_values", _batch_values(self.returns, self.batch))
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

    def _check_identity_cache(self) -> None:
        if self.passes_identity and self.cache is not None and not self.cache.per_user:
            raise DeclarationError(
                f"source {self.name!r} is given the caller's identity: its cache must be "
                "CachePolicy(..., per_user=True), or one user's answer would be served to others"
            )

    @property
    def passes_identity(self) -> bool:
        """Whether the caller's identity reaches this source's upstream."""
        return self.pass_token or self.subject_header is not None or self.uses_user

    @property
    def uses_user(self) -> bool:
        """Whether the path has ``{user}``, the caller's subject."""
        return USER in self.param_names

    @property
    def item_count(self) -> int:
        """How many ``{item}`` placeholders the path has."""
        return sum(1 for p in self.placeholders if p.source is None and p.path[0] == ITEM)

    def around_item(self, params: Mapping[str, str]) -> tuple[str, str]:
        """An item source's path before and after ``{item}``, for these parameters."""
        return split_around(self.literals, self.placeholders, ITEM, params)

    def render(self, params: Mapping[str, str], values: Mapping[str, Any]) -> str:
        """The request path (and query) for these parameters and earlier sources' values.

        Raises ``LookupError`` when a source field it needs is ``None`` or absent.
        """
        pieces: list[str] = []
        for literal, placeholder in zip(self.literals, self.placeholders, strict=False):
            pieces.append(literal)
            if placeholder.source is None:
                raw: Any = params[placeholder.path[0]]
                if type(raw) is str and UNRESERVED.fullmatch(raw):
                    pieces.append(raw)  # nothing to encode: the common case, kept cheap
                    continue
            else:
                raw = values[placeholder.source]
                for attr in placeholder.path:
                    raw = raw[attr] if isinstance(raw, Mapping) else getattr(raw, attr)
            pieces.append(encode_value(raw, placeholder))
        pieces.append(self.literals[-1])
        return "".join(pieces)


def _batch_values(returns: Any, batch: Batch) -> Callable[[bytes], dict[str, Any]]:
    """How a batch answer (a JSON array of ``returns``) becomes each element's value by id.

    When ``returns`` declares the key field, in one decoding of the whole array; otherwise
    each element is read twice, once for its key and once as ``returns`` (so the value is
    exactly a ``returns``, with nothing added that a view could pass on to its client).
    """
    key = batch.key
    if isinstance(returns, type) and issubclass(returns, msgspec.Struct):
        if key in returns.__struct_fields__:
            whole = msgspec.json.Decoder(list[returns])

            def by_field(body: bytes) -> dict[str, Any]:
                return {str(getattr(v, key)): v for v in whole.decode(body)}

            return by_field
    elif get_origin(returns) in (dict, Mapping) or returns in (dict, Any):
        mappings = msgspec.json.Decoder(list[returns])

        def by_item(body: bytes) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for value in mappings.decode(body):
                if not isinstance(value, Mapping) or value.get(key) is None:
                    raise msgspec.ValidationError(f"a batch element has no {key!r}")
                found[str(value[key])] = value
            return found

        return by_item
    elements = msgspec.json.Decoder(list[msgspec.Raw])
    keys = batch.key_decoder
    values = msgspec.json.Decoder(returns)

    def by_key(body: bytes) -> dict[str, Any]:
        return {
            str(getattr(keys.decode(raw), key)): values.decode(raw) for raw in elements.decode(body)
        }

    return by_key


@dataclass(frozen=True, slots=True)
class Items:
    """A list part: ids from a parameter or another source, each enriched by item sources.

    Args:
        name: the part's name (in the answer, ``fields`` and ``errors``).
        ids: where the ids come from: a list field of another source (``"category.product_ids"``,
            which makes this part wait for that source), a field of each element of one
            (``"cart.items.product_id"``: the product of each of the cart's lines), or a
            request parameter (``"ids"``, comma-separated).
        sources: the item sources, each run for every item: through its :class:`Batch` in
            chunks, concurrently, or one request per item (at most ``concurrency`` at once).
            Their names are the item's parts; in ``errors`` they appear as ``list.source``
            with the ids of the items affected.
        limit: at most this many items: a number, or the name of a whole-number parameter.
        offset: the name of a whole-number parameter: how many ids to skip first.
        exclude: the name of a parameter whose value is left out of the list (a product's
            own id among its related products).
        critical: without this part there is no answer. The part fails when its ids cannot
            be had, or when a critical item source failed for every item.
        default: part of the answer when the request does not say ``fields``.
        tag: cache entries and cached answers that hold an item are tagged ``tag=<its id>``,
            so that invalidating ``id=p-1001`` drops them too.

    The whole list is bounded by the aggregation's deadline: what has not arrived by then is
    a ``timeout`` of the items it concerns, and the items keep what did arrive.
    """

    name: str
    ids: str
    sources: Sequence[Source]
    limit: int | str | None = None
    offset: str | None = None
    exclude: str | None = None
    critical: bool = False
    default: bool = True
    tag: str = "id"
    #: the source the ids come from (``None``: a parameter), and the field path inside it
    ids_source: str | None = field(init=False, repr=False, compare=False)
    ids_path: tuple[str, ...] = field(init=False, repr=False, compare=False)
    depends_on: frozenset[str] = field(init=False, repr=False, compare=False)
    task_name: str = field(init=False, repr=False, compare=False)
    #: the request parameters the list and its item sources use
    param_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    #: what the engine reads of every part; a list part has no request and no cache of its own
    cache: None = field(init=False, repr=False, compare=False, default=None)
    passes_identity: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise DeclarationError(f"list name {self.name!r} is not an identifier")
        where = f"list {self.name!r}"
        object.__setattr__(self, "sources", tuple(self.sources))
        if not self.sources:
            raise DeclarationError(f"{where} has no item sources")
        check_unique(self.name, "item source", [s.name for s in self.sources])
        pieces = self.ids.split(".") if self.ids else [""]
        if not all(NAME.match(piece) for piece in pieces):
            raise DeclarationError(
                f"{where}: ids {self.ids!r} is neither a parameter name nor a source's field "
                "(e.g. 'category.product_ids')"
            )
        if isinstance(self.limit, int) and (isinstance(self.limit, bool) or self.limit < 1):
            raise DeclarationError(f"{where}: limit must be at least 1, got {self.limit!r}")
        if not NAME.match(self.tag):
            raise DeclarationError(f"{where}: tag {self.tag!r} is not a name")
        for source in self.sources:
            source_where = f"{where}, item source {source.name!r}"
            if source.item_count != 1:
                raise DeclarationError(
                    f"{source_where}: its path {source.path!r} needs {{item}} exactly once "
                    "(the item's id)"
                )
            for placeholder in source.placeholders:
                if placeholder.source is not None:
                    raise DeclarationError(
                        f"{source_where}: {{{placeholder.text}}}: an item source's path may use "
                        "only {item} and request parameters"
                    )
        object.__setattr__(self, "ids_source", pieces[0] if len(pieces) > 1 else None)
        object.__setattr__(self, "ids_path", tuple(pieces[1:]) if len(pieces) > 1 else ())
        object.__setattr__(self, "depends_on", frozenset(() if len(pieces) == 1 else (pieces[0],)))
        object.__setattr__(self, "task_name", f"bff-list:{self.name}")
        used = [pieces[0]] if len(pieces) == 1 else []
        used += [n for n in (self.limit, self.offset, self.exclude) if isinstance(n, str)]
        for source in self.sources:
            used += [n for n in source.param_names if n != ITEM]
            if source.batch is not None:
                used += source.batch.param_names
        object.__setattr__(self, "param_names", tuple(dict.fromkeys(used)))
        object.__setattr__(self, "passes_identity", any(s.passes_identity for s in self.sources))

    @property
    def services(self) -> frozenset[str]:
        return frozenset(s.service for s in self.sources)

    def ids_of(self, params: Mapping[str, str], values: Mapping[str, Any]) -> tuple[list[str], int]:
        """This request's ids (excluded, paged, without repeats) and how many there are in all.

        Raises ``LookupError`` when the source's field is missing, null or not a list.
        """
        if self.ids_source is None:
            every = [piece for piece in params[self.ids].split(",") if piece]
        else:
            raw: Any = values[self.ids_source]
            for index, attr in enumerate(self.ids_path):
                if isinstance(raw, list | tuple):
                    # a field of each element: a cart's lines name their products
                    rest = self.ids_path[index:]
                    raw = [_field_at(one, rest) for one in raw]
                    break
                raw = _field_at(raw, (attr,))
            if not isinstance(raw, list | tuple):
                kind = "null" if raw is None else f"a {type(raw).__name__}"
                raise LookupError(f"{self.ids} is {kind}, not a list of ids")
            every = []
            for one in raw:
                if isinstance(one, bool) or not isinstance(one, str | int):
                    raise LookupError(f"{self.ids} holds a {type(one).__name__}, not an id")
                if one != "":
                    every.append(str(one))
        if self.exclude is not None:
            left_out = params[self.exclude]
            every = [one for one in every if one != left_out]
        every = list(dict.fromkeys(every))
        offset = int(params[self.offset]) if self.offset is not None else 0
        limit = self.limit if not isinstance(self.limit, str) else int(params[self.limit])
        page = every[offset:] if limit is None else every[offset : offset + limit]
        return page, len(every)


def _field_at(value: Any, path: Sequence[str]) -> Any:
    for attr in path:
        value = value[attr] if isinstance(value, Mapping) else getattr(value, attr)
    return value


def check_unique(aggregate: str, kind: str, names: list[str]) -> None:
    """Refuse a name used twice among one aggregate's (or one list's) ``kind``."""
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise DeclarationError(f"aggregate {aggregate!r}: duplicate {kind} name {n!r}")
        seen.add(n)


def settable_header(where: str, name: str) -> str:
    """``name`` lower-cased, if it is a header the gateway may set on an upstream request."""
    header = name.lower()
    if not _HEADER_NAME.fullmatch(header) or header in _RESERVED_HEADERS:
        raise DeclarationError(
            f"{where}: subject_header {name!r} is not a header name the gateway may set "
            "(letters, digits and '-'; not one of "
            f"{', '.join(sorted(_RESERVED_HEADERS))})"
        )
    return header
