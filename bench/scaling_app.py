"""A bench-only BFF whose aggregates have 4, 8 and 16 sources: how cost grows with fan-out.

Built with bff-core exactly like ``web-bff`` (settings from the environment, declared
aggregates, ``create_gateway_app``) and served by the same production server
(``bff_core.litestar.serve``: granian, uvloop), so the only thing that changes between the
routes is the number of upstream calls per aggregate:

    GET /agg/4?id=p-1001    GET /agg/8?id=p-1001    GET /agg/16?id=p-1001

Source names are distinct (``s00`` .. ``s15``); their paths cycle over the four demo upstreams,
so the upstreams' answers are the same bytes web-bff aggregates. The first source is critical,
as web-bff's product is.

    PYTHONPATH=. python -m bench.scaling_app --port 8301 [--workers 1] [--log-level warning]
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Annotated, Any

import msgspec
from bff_core import Aggregate, AggregateResult, Gateway, GatewaySettings, Param, Source
from bff_core import part_errors as _part_errors
from bff_core.litestar import PROBLEM_RESPONSES, aggregate_response, create_gateway_app, serve
from litestar import Litestar, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

__all__ = ["FAN_OUTS", "SERVICE_URL_VARIABLES", "aggregate_of", "create_app", "main"]

#: The same services and variables as web-bff, so the harness wires both alike.
SERVICE_URL_VARIABLES = {
    "product": "PRODUCT_SERVICE_URL",
    "inventory": "INVENTORY_SERVICE_URL",
    "pricing": "PRICING_SERVICE_URL",
    "reviews": "REVIEWS_SERVICE_URL",
}

#: Sources per aggregate; each is served at ``/agg/<n>``.
FAN_OUTS = (4, 8, 16)


# Small views of the upstreams' answers: decoding still reads every byte, but only these
# fields become Python objects (what a BFF that trims payloads does).
class ProductSummary(msgspec.Struct):
    id: str
    name: str


class Stock(msgspec.Struct):
    product_id: str
    in_stock: bool
    quantity: int


class Price(msgspec.Struct):
    product_id: str
    currency: str
    amount: int


class Rating(msgspec.Struct):
    product_id: str
    average: float
    count: int


#: (service, path template, returns), cycled over by the sources of every aggregate.
_UPSTREAMS: tuple[tuple[str, str, type[msgspec.Struct]], ...] = (
    ("product", "/products/{id}", ProductSummary),
    ("inventory", "/inventory/{id}", Stock),
    ("pricing", "/prices/{id}", Price),
    ("reviews", "/reviews/{id}", Rating),
)


def aggregate_of(fan_out: int) -> Aggregate:
    """An aggregate of ``fan_out`` sources, all independent, the first one critical."""
    sources = []
    for index in range(fan_out):
        service, path, returns = _UPSTREAMS[index % len(_UPSTREAMS)]
        sources.append(
            Source(
                f"s{index:02d}", service=service, path=path, returns=returns, critical=index == 0
            )
        )
    return Aggregate(f"fan_out_{fan_out}", params=[Param("id", max_length=128)], sources=sources)


AGGREGATES = {fan_out: aggregate_of(fan_out) for fan_out in FAN_OUTS}

_Handler = Callable[[Gateway, str | None], Coroutine[Any, Any, Response[dict[str, Any]]]]


def _route(fan_out: int) -> HTTPRouteHandler:
    aggregate = AGGREGATES[fan_out]

    async def handler(
        gateway: Gateway,
        id: Annotated[str | None, Parameter(description="The product's id")] = None,
    ) -> Response[dict[str, Any]]:
        result: AggregateResult = await gateway.run(aggregate, {"id": id})
        body: dict[str, Any] = {name: outcome.value for name, outcome in result.items()}
        errors = _part_errors(result)
        if errors:
            body["errors"] = errors
        return aggregate_response(result, body)

    # Litestar names operations after the function, so each route gets its own name.
    handler.__name__ = handler.__qualname__ = f"aggregate_{fan_out}"
    typed: _Handler = handler
    return get(
        f"/agg/{fan_out}",
        summary=f"{fan_out} upstream calls, aggregated",
        responses=PROBLEM_RESPONSES,
    )(typed)


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    """The scaling application, configured from the environment like web-bff."""
    return create_gateway_app(
        name="scaling-bench",
        title="Scaling bench BFF",
        version="0.1.0",
        description="Aggregates of 4, 8 and 16 sources, for the gateway benchmark only.",
        settings=GatewaySettings.from_env(SERVICE_URL_VARIABLES, environ),
        aggregates=list(AGGREGATES.values()),
        route_handlers=[_route(fan_out) for fan_out in FAN_OUTS],
    )


def main(argv: Sequence[str] | None = None) -> None:
    serve(
        prog="scaling-app",
        app_factory="bench.scaling_app:create_app",
        default_port=8301,
        argv=argv,
        check=create_app,
    )


if __name__ == "__main__":
    main()
