"""The OpenAPI document: the aggregate routes' operations (ASGI routes, which Litestar's
document leaves out, documented as ordinary ``GET`` handlers would be), the write routes' request
bodies and ``Idempotency-Key``, their problem answers, and the bearer scheme."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Litestar, MediaType, Response, get
from litestar.di import Provide
from litestar.handlers import ASGIRouteHandler, HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.plugins import OpenAPISchemaPlugin
from litestar.routes import ASGIRoute, BaseRoute, HTTPRoute
from litestar.types import Scope
from litestar.typing import FieldDefinition

from .._declare import Mutation, Param
from .._errors import DeclarationError
from .._guards import IDEMPOTENCY_HEADER
from .._report import PROBLEM_JSON, Problem
from ._routes import DECLARED_OPT, MSGPACK_TYPES, Declared
from ._streaming import STREAM_TYPES, STREAMING_DESCRIPTION, stream_schema

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

__all__ = [
    "BEARER_SCHEME",
    "PROBLEM_RESPONSES",
    "WRITE_PROBLEM_RESPONSES",
    "ClosedStructSchemas",
    "document_aggregate_route",
    "openapi_config",
    "write_body_dependencies",
    "write_operation",
]

#: The OpenAPI security scheme of bearer tokens (components.securitySchemes).
BEARER_SCHEME = "bearer"

_BEARER = SecurityScheme(
    type="http",
    scheme="bearer",
    bearer_format="JWT",
    description="A token of the identity provider for this BFF's audience (BFF_JWT_AUDIENCE)",
)


def openapi_config(
    *, title: str, version: str, description: str | None, bearer: bool
) -> OpenAPIConfig:
    """The document at ``/schema``; with ``bearer`` (identity configured), the bearer scheme
    that the routes requiring an identity name."""
    return OpenAPIConfig(
        title=title,
        version=version,
        description=description,
        path="/schema",
        # Routes that require an identity say so themselves (security: bearer); the others
        # accept a token but do without one.
        components=(
            Components(security_schemes={BEARER_SCHEME: _BEARER}) if bearer else Components()
        ),
    )


def _problem_spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=Problem, media_type=PROBLEM_JSON, description=description)


#: OpenAPI descriptions of the problem answers of an aggregate route, for ``responses=``.
PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    400: _problem_spec("A parameter is missing or malformed, or `fields` names unknown parts"),
    401: _problem_spec(
        "The bearer token is invalid, or the route needs one and none was given "
        "(with identity configured); `WWW-Authenticate` says which"
    ),
    404: _problem_spec("The critical upstream answered 404: the item does not exist"),
    414: _problem_spec("The query string is over 2,048 bytes"),
    429: _problem_spec(
        "Over the client's rate limit (with limits configured); `Retry-After`, `RateLimit` "
        "and `RateLimit-Policy` say when and which"
    ),
    431: _problem_spec("The request's headers are over 16 KB in all"),
    502: _problem_spec("A critical upstream failed (unavailable, error status, invalid answer)"),
    503: _problem_spec(
        "Tokens or rate limits cannot be checked now (identity provider's keys not fetched "
        "yet, or limits failing closed while Redis is down); `Retry-After` says when to retry"
    ),
    504: _problem_spec("A critical upstream did not answer before the deadline"),
}


#: OpenAPI descriptions of the problem answers of a write route (``mutation_route``).
WRITE_PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    400: _problem_spec(
        "A path parameter is malformed, or the Idempotency-Key header is missing (every POST "
        "needs one) or not 1 to 255 printable ASCII characters"
    ),
    401: _problem_spec("No valid bearer token: every write needs one"),
    404: _problem_spec("The upstream does not know the item written to"),
    409: _problem_spec(
        "The first request with this Idempotency-Key is still running, or the upstream refused "
        "the write as conflicting (an order of an empty cart)"
    ),
    413: _problem_spec("The body is over the route's limit (64 KiB by default)"),
    415: _problem_spec("The body is not application/json"),
    422: _problem_spec(
        "The body is not the route's type (`fields` names the invalid fields; the body is "
        "never echoed), or this Idempotency-Key was used with another body"
    ),
    429: PROBLEM_RESPONSES[429],
    502: _problem_spec(
        "The upstream failed or could not be reached; when the connection was lost after "
        "sending, the outcome is unknown (the type says `outcome-unknown`)"
    ),
    503: _problem_spec(
        "The upstream's circuit breaker is open (nothing was sent), or idempotency keys "
        "cannot be checked now"
    ),
    504: _problem_spec(
        "No answer by the deadline: not sent (`timeout`, safe to retry) or sent and the "
        "outcome unknown (`outcome-unknown`: it may have taken effect; a retry with the same "
        "Idempotency-Key is never sent again and answers the same)"
    ),
}


def write_body_dependencies(mutation: Mutation) -> dict[str, Provide]:
    """What documents a write's body type as its operation's ``requestBody`` (``dependencies=``).

    Litestar documents the ``data`` parameter of a handler, or of one of its dependencies, with
    the type's schema among the document's components. The write route reads its body itself
    (its 415, 413 and 422 are the contract's problems, not Litestar's), so the ``data`` is a
    dependency's that no handler asks for: documented, never called.
    """
    if mutation.body is None:
        return {}

    async def documented_body(data: Any) -> None:  # pragma: no cover - documents, never called
        raise NotImplementedError("the write route decodes its body; this only documents it")

    documented_body.__annotations__ = {"data": mutation.body, "return": None}
    return {f"{mutation.name}_body": Provide(documented_body)}


class ClosedStructSchemas(OpenAPISchemaPlugin):
    """Documents a Struct that forbids unknown fields (a write's body) as a closed object,
    ``additionalProperties: false``: what the route accepts, so that generated clients and
    contract tests send no field it refuses. Litestar's own Struct schema does the rest."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        kind = field_definition.type_
        return (
            not field_definition.is_union
            and isinstance(kind, type)
            and issubclass(kind, msgspec.Struct)
            and bool(kind.__struct_config__.forbid_unknown_fields)
        )

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        # The next plugin for Structs (Litestar's own, after the application's plugins).
        struct_plugin = next(
            plugin
            for plugin in schema_creator.plugins
            if plugin is not self and schema_creator.plugin_supports_field(plugin, field_definition)
        )
        schema = struct_plugin.to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


#: What a key is (``check_idempotency_key``): 1 to 255 printable ASCII characters.
_KEY_SCHEMA = Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern="^[ -~]+$")


def write_operation(mutation: Mutation, *, max_body_bytes: int) -> type[Operation]:
    """The operation of a write route: the bearer token, the ``Idempotency-Key`` header
    (required where ``mutation`` needs a key, accepted on the others), the path's ids as
    they are validated, and the request body (required where the mutation declares a body
    type; ``{}`` or none otherwise)."""
    if mutation.needs_key:
        key_text = (
            "Required: one key per attempt, the same key for a retry of that attempt. A "
            "request with a key already used gets that first answer again "
            "(`Idempotent-Replayed: true`), or 409 while it runs, or 422 with another body."
        )
    else:
        key_text = (
            "Optional: the write is idempotent by nature. When sent, the key is kept as on a "
            "POST (a replay answers the first answer again, `Idempotent-Replayed: true`)."
        )
    key = OpenAPIParameter(
        name=IDEMPOTENCY_HEADER,
        param_in="header",
        required=mutation.needs_key,
        description=key_text,
        schema=_KEY_SCHEMA,
    )
    params = {p.name: p for p in mutation.params}
    no_body = RequestBody(
        required=False,
        description="None, or an empty JSON object: this write takes no fields",
        content={
            MediaType.JSON.value: OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.OBJECT, max_properties=0)
            )
        },
    )

    @dataclass
    class WriteOperation(Operation):
        def __post_init__(self) -> None:
            self.security = [{BEARER_SCHEME: []}]
            # The path's ids as Param.validate accepts them (Litestar knows only "a string").
            for parameter in self.parameters or []:
                if not isinstance(parameter, OpenAPIParameter):
                    continue
                declared = params.get(parameter.name)
                if declared is not None and parameter.param_in == "path":
                    parameter.schema = _param_schema(declared)
                    parameter.description = declared.description or parameter.description
            self.parameters = [*(self.parameters or []), key]
            if mutation.body is None:
                self.request_body = no_body
            elif isinstance(self.request_body, RequestBody):
                self.request_body.required = True
                self.request_body.description = (
                    f"JSON only (else 415), at most {max_body_bytes} bytes (else 413), "
                    "validated against this type (else 422 naming the invalid fields)"
                )

    return WriteOperation


def _documented_get(declared: Declared) -> HTTPRouteHandler:
    """The ``GET`` handler whose OpenAPI operation describes an aggregate route: parameters,
    the view in JSON and MessagePack, the streamed events, the problem answers."""
    aggregate = declared.aggregate
    view_type: Any = declared.view_type

    async def handler(scope: Scope) -> Any:  # pragma: no cover - documents, never called
        raise NotImplementedError("the aggregate route answers; this handler only documents it")

    handler.__annotations__ = {"scope": Scope, "return": Response[view_type]}
    handler.__name__ = handler.__qualname__ = declared.name
    parameters = [
        OpenAPIParameter(
            name=p.name,
            param_in="query",
            required=p.required,
            description=p.description or None,
            schema=_param_schema(p),
        )
        for p in aggregate.params
    ]
    defaults = sorted(aggregate.default_parts)
    default_text = "all" if len(defaults) == len(aggregate.part_names) else ", ".join(defaults)
    parameters.append(
        OpenAPIParameter(
            name="fields",
            param_in="query",
            required=False,
            description="Comma-separated parts to return; the other upstreams are not called. "
            f"Parts: {', '.join(aggregate.part_names)}. Default: {default_text}.",
            # What the server accepts, so that clients' generated types and contract tests
            # agree with it: one or more part names, comma-separated (form, not exploded).
            schema=Schema(
                type=OpenAPIType.ARRAY,
                items=Schema(type=OpenAPIType.STRING, enum=list(aggregate.part_names)),
                min_items=1,
            ),
            style="form",
            explode=False,
        )
    )

    @dataclass
    class AggregateOperation(Operation):
        def __post_init__(self) -> None:
            self.parameters = [*parameters, *(self.parameters or [])]
            if aggregate.requires_identity:
                self.security = [{BEARER_SCHEME: []}]
            # The same view, in MessagePack for the clients that ask for it, and streamed.
            ok = (self.responses or {}).get("200")
            if isinstance(ok, OpenAPIResponse) and ok.content:
                json_type = ok.content.get(MediaType.JSON.value)
                if json_type is not None:
                    ok.content[MSGPACK_TYPES[0]] = json_type
                    events = stream_schema()
                    for streamed in STREAM_TYPES:
                        ok.content[streamed] = OpenAPIMediaType(schema=events)
            self.description = (
                f"{self.description}\n\n{STREAMING_DESCRIPTION}"
                if self.description
                else STREAMING_DESCRIPTION
            )

    return get(
        declared.path,
        summary=declared.summary,
        description=declared.description,
        responses=PROBLEM_RESPONSES,
        operation_class=AggregateOperation,
    )(handler)


def document_aggregate_route(route: BaseRoute) -> None:
    """Put the operation of an aggregate route (an ASGI route, which Litestar's OpenAPI
    document leaves out) in the document of the application it was registered on, as its
    ``GET`` handler's; other routes are left as they are."""
    if not isinstance(route, ASGIRoute):
        return
    registered = route.route_handler
    declared: Declared | None = registered.opt.get(DECLARED_OPT)
    if declared is None:
        return
    app = _application(registered)
    # The same declaration may be registered on several applications: each gets its own
    # handler, owned where the route is, so that the document sees the route's layers (tags,
    # security).
    handler = _documented_get(declared)
    handler.owner = registered.owner
    http_route = HTTPRoute(path=route.path, route_handlers=[handler])
    for each in http_route.route_handlers:
        each.on_registration(app)
    http_route.create_handler_map()
    # Told to the plugins that receive routes (Litestar's OpenAPI plugin among them) as if it
    # were registered, but never put in the routing trie. (This function, in GatewayPlugin,
    # is one of them: an HTTP route it leaves alone.)
    for plugin in app.plugins.receive_route:
        plugin.receive_route(http_route)


def _application(handler: ASGIRouteHandler) -> Litestar:
    layer: Any = handler.owner
    while layer is not None and not isinstance(layer, Litestar):
        layer = layer.owner
    if layer is None:
        raise DeclarationError(f"aggregate route {handler.paths} is not registered on an app")
    return layer


def _param_schema(param: Param) -> Schema:
    """What ``Param.validate`` accepts, for clients' generated types and contract tests."""
    if param.integer:
        return Schema(
            type=OpenAPIType.INTEGER,
            minimum=param.minimum,
            maximum=param.maximum,
            default=None if param.default is None else int(param.default),
        )
    # No control character (Unicode Cc: C0, DEL, C1).
    return Schema(
        type=OpenAPIType.STRING,
        min_length=1,
        max_length=param.max_length,
        pattern=r"^[^\u0000-\u001F\u007F-\u009F]+$",
        default=param.default,
    )
