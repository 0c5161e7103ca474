"""A BFF for the edge tests: web-bff's product page (anyone may call it) next to an aggregate
that answers only a verified caller, whose sources get the caller's identity each its own way:
the pricing service the subject in ``x-user-id``, the reviews service the bearer token itself,
the product service nothing.

``python -m tests.services.guarded_bff --port P`` serves it like any BFF (granian, settings
from the environment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from bff_core import (
    Aggregate,
    AggregateResult,
    CachePolicy,
    GatewaySettings,
    Param,
    PartError,
    Source,
    part_errors,
)
from bff_core.litestar import aggregate_route, create_gateway_app, serve
from litestar import Litestar
from msgspec import UNSET, UnsetType
from web_bff.app import PRODUCT_PAGE, SERVICE_URL_VARIABLES, product_page

PER_USER = CachePolicy(ttl=30, per_user=True)

ACCOUNT_PRODUCT = Aggregate(
    "account_product",
    params=[Param("id")],
    requires_identity=True,
    sources=[
        Source(
            "product",
            service="product",
            path="/products/{id}",
            returns=dict[str, Any],
            critical=True,
            cache=CachePolicy(ttl=30),
        ),
        Source(
            "pricing",
            service="pricing",
            path="/prices/{id}",
            returns=dict[str, Any],
            subject_header="x-user-id",
            cache=PER_USER,
        ),
        Source(
            "reviews",
            service="reviews",
            path="/reviews/{id}",
            returns=dict[str, Any],
            pass_token=True,
        ),
    ],
)


class AccountProduct(msgspec.Struct):
    product: dict[str, Any] | UnsetType | None = UNSET
    pricing: dict[str, Any] | UnsetType | None = UNSET
    reviews: dict[str, Any] | UnsetType | None = UNSET
    errors: list[PartError] | UnsetType = UNSET


def account_view(result: AggregateResult) -> AccountProduct:
    parts = {name: outcome.value for name, outcome in result.items()}
    return AccountProduct(**parts, errors=part_errors(result) or UNSET)


def create_app(environ: Mapping[str, str] | None = None) -> Litestar:
    return create_gateway_app(
        name="guarded-bff",
        title="Guarded BFF",
        version="0.1.0",
        settings=GatewaySettings.from_env(SERVICE_URL_VARIABLES, environ),
        aggregates=[PRODUCT_PAGE, ACCOUNT_PRODUCT],
        route_handlers=[
            product_page,
            aggregate_route(
                "/api/account/product",
                ACCOUNT_PRODUCT,
                account_view,
                summary="The product as the signed-in caller sees it",
            ),
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    serve(
        prog="guarded-bff",
        app_factory="tests.services.guarded_bff:create_app",
        default_port=8009,
        argv=argv,
        check=create_app,
    )


if __name__ == "__main__":
    main()
