"""What a write asks of its upstream: a :class:`Mutation`, declared like an aggregate.

A mutation is one upstream write (``PUT`` or ``POST``) with a JSON body, for a signed-in user.
Everything that can be checked without a request is checked when it is declared, so a service
with a misdeclared write fails at start-up with a :class:`DeclarationError` naming it. The rules
a write lives by (never hedged, coalesced or cached; a ``POST`` never sent twice once it may
have reached the upstream; idempotency keys) are the engine's, from what is declared here.
Kept apart from ``_sources`` (reads) because nothing of a read's caching, batching or
dependencies applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from .._errors import DeclarationError
from ._aggregate import Aggregate
from ._policies import RetryPolicy
from ._sources import Param, check_unique, settable_header
from ._template import NAME, USER, Placeholder, encode_value, parse_template

__all__ = ["Idempotency", "Mutation"]

#: How a write is made safe to repeat: by an ``Idempotency-Key`` the client sends (required),
#: or by its nature (a ``PUT`` that sets a state: sending it twice sets it once).
Idempotency = Literal["key", "natural"]


@dataclass(frozen=True, slots=True)
class Mutation:
    """One write a screen makes: its upstream request, its body, and what it answers.

    Args:
        name: names the write (in logs, metrics and idempotency records: a key is one
            user's for one mutation).
        method: ``"PUT"`` (idempotent by nature) or ``"POST"`` (not).
        service: which configured upstream service (base URL) to call.
        path: the upstream path template. ``{param}`` is one of ``params`` (a path parameter
            of the route), ``{user}`` the verified caller's subject: never a value from the
            path, the query or the body. Every value is percent-encoded as one path segment.
        params: the route's parameters (its path's ids), validated before anything is sent.
        body: the type the client's JSON body is decoded and validated into (a msgspec
            ``Struct``), before anything is sent; ``None``: the write takes no body (an empty
            one, or ``{}``, is accepted).
        user_field: a field of the upstream's body that the gateway sets to the caller's
            subject (a review's ``"author"``, an order's ``"user"``). The client's body type
            must not have it, so a client can never write as someone else.
        idempotency: ``"key"``: every request carries an ``Idempotency-Key`` (a ``POST``
            must say so, and does by default); ``"natural"``: the write is idempotent by
            nature (a ``PUT``'s default).
        invalidates: the cache tags dropped after a successful write, on every instance:
            ``tag -> parameter`` (``{"id": "product_id"}`` drops what is tagged
            ``id=<the product_id>``), or a sequence of parameters named like their tags.
        returns: the type the upstream's answer is decoded into, answered to the client.
        then: an aggregate read after the write and answered instead (the cart after a line
            changed is the cart screen). Its parameters come from the mutation's (same names)
            and the caller. Exactly one of ``returns`` and ``then``.
        timeout: seconds the write may take; ``None``: the gateway's deadline.
        retry: how a failed ``PUT`` is sent again (it is idempotent). A ``POST`` is sent again
            only when it certainly did not leave (the connection was refused), whatever the
            policy says.
        subject_header: also send the caller's subject in this header (``"x-user-id"``).
        requires_user: writes always do (the contract); a mutation that does not is refused.
    """

    name: str
    method: Literal["PUT", "POST"]
    service: str
    path: str
    params: Sequence[Param] = ()
    body: Any = None
    user_field: str | None = None
    idempotency: Idempotency | None = None
    invalidates: Mapping[str, str] | Sequence[str] = ()
    returns: Any = None
    then: Aggregate | None = None
    timeout: float | None = None
    retry: RetryPolicy | None = None
    subject_header: str | None = None
    requires_user: bool = True
    #: parsed when declared
    literals: tuple[str, ...] = field(init=False, repr=False, compare=False)
    placeholders: tuple[Placeholder, ...] = field(init=False, repr=False, compare=False)
    body_decoder: msgspec.json.Decoder[Any] | None = field(init=False, repr=False, compare=False)
    answer_decoder: msgspec.json.Decoder[Any] | None = field(init=False, repr=False, compare=False)
    #: the cache tags to drop: (tag name, parameter)
    tags: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"mutation {self.name!r}"
        if not NAME.match(self.name):
            raise DeclarationError(f"mutation name {self.name!r} is not an identifier")
        if self.method not in ("PUT", "POST"):
            raise DeclarationError(f"{where}: method must be 'PUT' or 'POST', got {self.method!r}")
        if not self.service:
            raise DeclarationError(f"{where}: service is empty")
        if not self.path.startswith("/") or "#" in self.path:
            raise DeclarationError(
                f"{where}: path {self.path!r} must start with '/' and have no fragment"
            )
        if not self.requires_user:
            raise DeclarationError(
                f"{where}: every write needs a signed-in user (requires_user=True)"
            )
        if self.timeout is not None and not self.timeout > 0:
            raise DeclarationError(f"{where}: timeout must be positive")
        object.__setattr__(self, "params", tuple(self.params))
        check_unique(self.name, "parameter", [p.name for p in self.params])
        self._check_idempotency(where)
        self._parse_path(where)
        self._check_body(where)
        self._check_answer(where)
        self._check_invalidates(where)
        if self.subject_header is not None:
            header = settable_header(where, self.subject_header)
            object.__setattr__(self, "subject_header", header)

    def _check_idempotency(self, where: str) -> None:
        idempotency = self.idempotency or ("key" if self.method == "POST" else "natural")
        if idempotency not in ("key", "natural"):
            raise DeclarationError(
                f"{where}: idempotency must be 'key' or 'natural', got {idempotency!r}"
            )
        if self.method == "POST" and idempotency != "key":
            raise DeclarationError(
                f"{where}: a POST is not idempotent by nature: it needs idempotency='key' "
                "(every request carries an Idempotency-Key)"
            )
        if self.method == "POST" and self.retry is not None:
            raise DeclarationError(
                f"{where}: a POST is never sent again once it may have reached the upstream; "
                "declare no retry (a refused connection is retried anyway)"
            )
        object.__setattr__(self, "idempotency", idempotency)

    def _parse_path(self, where: str) -> None:
        literals, placeholders = parse_template(self.name, self.path)
        names = {p.name for p in self.params}
        for placeholder in placeholders:
            if placeholder.source is not None or placeholder.in_query:
                raise DeclarationError(
                    f"{where}: {{{placeholder.text}}}: a write's path may use only its "
                    "parameters and {user}, in the path"
                )
            if placeholder.path[0] != USER and placeholder.path[0] not in names:
                raise DeclarationError(
                    f"{where}: {{{placeholder.text}}} is not a parameter "
                    f"(parameters: {', '.join(sorted(names)) or 'none'}; {{user}}: the caller)"
                )
        object.__setattr__(self, "literals", literals)
        object.__setattr__(self, "placeholders", placeholders)

    def _check_body(self, where: str) -> None:
        if self.body is None:
            object.__setattr__(self, "body_decoder", None)
        else:
            if not (isinstance(self.body, type) and issubclass(self.body, msgspec.Struct)):
                raise DeclarationError(
                    f"{where}: body {self.body!r} must be a msgspec Struct (the fields a "
                    "client may send, validated before anything is sent)"
                )
            if self.body.__struct_config__.array_like:
                raise DeclarationError(f"{where}: body must be a JSON object, not array_like")
            object.__setattr__(self, "body_decoder", msgspec.json.Decoder(self.body))
        if self.user_field is not None:
            if not NAME.match(self.user_field):
                raise DeclarationError(
                    f"{where}: user_field {self.user_field!r} is not a field name"
                )
            if self.body is not None and self._has_field(self.user_field):
                raise DeclarationError(
                    f"{where}: the body type {self.body.__name__} has the field "
                    f"{self.user_field!r}, which the gateway sets to the caller: a client "
                    "must not be able to send it"
                )

    def _has_field(self, name: str) -> bool:
        fields = msgspec.structs.fields(self.body)
        return any(f.name == name or f.encode_name == name for f in fields)

    def _check_answer(self, where: str) -> None:
        if (self.returns is None) == (self.then is None):
            raise DeclarationError(
                f"{where}: declare exactly one of returns (the upstream's answer) and then "
                "(an aggregate read after the write)"
            )
        if self.returns is not None:
            try:
                decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.returns)
            except TypeError as exc:
                raise DeclarationError(
                    f"{where}: returns {self.returns!r} is not a type msgspec can decode"
                ) from exc
            object.__setattr__(self, "answer_decoder", decoder)
            return
        object.__setattr__(self, "answer_decoder", None)
        assert self.then is not None
        names = {p.name for p in self.params}
        missing = [p.name for p in self.then.params if p.required and p.name not in names]
        if missing:
            raise DeclarationError(
                f"{where}: then={self.then.name!r} needs parameter(s) {', '.join(missing)}, "
                "which the mutation does not have"
            )

    def _check_invalidates(self, where: str) -> None:
        pairs = (
            tuple(self.invalidates.items())
            if isinstance(self.invalidates, Mapping)
            else tuple((name, name) for name in self.invalidates)
        )
        names = {p.name for p in self.params} | {USER}
        for tag, param in pairs:
            if not NAME.match(tag):
                raise DeclarationError(f"{where}: invalidates tag {tag!r} is not a name")
            if param not in names:
                raise DeclarationError(
                    f"{where}: invalidates {tag!r} by {param!r}, which is not a parameter"
                )
        object.__setattr__(self, "tags", pairs)

    @property
    def needs_key(self) -> bool:
        """Whether every request must carry an ``Idempotency-Key``."""
        return self.idempotency == "key"

    def validate_params(self, raw: Mapping[str, str | None]) -> dict[str, str]:
        """The route's parameters, validated (:class:`InvalidParameter` otherwise)."""
        return {p.name: p.validate(raw.get(p.name)) for p in self.params}

    def render(self, params: Mapping[str, str]) -> str:
        """The upstream path for these parameters (``user`` among them)."""
        pieces: list[str] = []
        for literal, placeholder in zip(self.literals, self.placeholders, strict=False):
            pieces.append(literal)
            pieces.append(encode_value(params[placeholder.path[0]], placeholder))
        pieces.append(self.literals[-1])
        return "".join(pieces)

    def invalidated(self, params: Mapping[str, str]) -> list[str]:
        """The cache tags a successful write with these parameters drops."""
        return [f"{tag}={params[param]}" for tag, param in self.tags]
