"""The admin API: cache invalidation."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, post
from litestar.exceptions import NotAuthorizedException, NotFoundException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Operation, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter

from .._engine import Gateway
from .._errors import InvalidParameter
from .._report import PROBLEM_JSON, Problem
from ._edge import OPERATIONAL_OPT

logger = logging.getLogger("bff_core")


class Invalidated(msgspec.Struct, frozen=True):
    #: entries deleted where they are shared (in-process: here)
    invalidated: int
    tags: list[str]
    #: instances told to drop their near-cache copies, this one included (``null``: no Redis,
    #: or Redis could not be told; their copies then end within BFF_CACHE_NEAR_MS)
    instances_told: int | None = None


@dataclass
class _InvalidateOperation(Operation):
    """The entries to drop are named by free query parameters (``?id=p-1001``): documented as
    one object parameter, exploded into the query, with at least one member."""

    def __post_init__(self) -> None:
        self.parameters = [
            OpenAPIParameter(
                name="tags",
                param_in="query",
                required=True,
                description="The parameters of the entries to drop, e.g. id=p-1001",
                schema=Schema(
                    type=OpenAPIType.OBJECT,
                    additional_properties=Schema(type=OpenAPIType.STRING),
                    min_properties=1,
                ),
                style="form",
                explode=True,
            ),
            *(self.parameters or []),
        ]


@post(
    "/admin/cache/invalidate",
    tags=["admin"],
    summary="Invalidate cached entries",
    status_code=200,
    opt={OPERATIONAL_OPT: True},
    responses={
        400: ResponseSpec(Problem, media_type=PROBLEM_JSON, description="No parameter named"),
        401: ResponseSpec(Problem, media_type=PROBLEM_JSON, description="Missing or wrong token"),
        404: ResponseSpec(Problem, media_type=PROBLEM_JSON, description="Admin API disabled"),
    },
    operation_class=_InvalidateOperation,
)
async def invalidate_cache(request: Request[Any, Any, Any]) -> Invalidated:
    """Drop every cached part and answer made with these parameters, e.g. ``?id=p-1001``.

    With Redis that is every instance of the deployment at once; in-process, this instance.
    Needs ``Authorization: Bearer <BFF_ADMIN_TOKEN>``; without that setting the endpoint is off.
    With Redis, every instance also drops its near-cache copies at once (Redis pub/sub).
    """
    token: str | None = request.app.state.admin_token
    if token is None:
        raise NotFoundException("the admin API is disabled: BFF_ADMIN_TOKEN is not set")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise NotAuthorizedException(
            "a valid 'Authorization: Bearer <token>' header is required",
            headers={"www-authenticate": "Bearer"},
        )
    tags = [f"{name}={value}" for name, value in request.query_params.items()]
    if not tags:
        raise InvalidParameter(
            "name the entries to drop by their parameters, e.g. ?id=p-1001", parameter="query"
        )
    gateway: Gateway = request.app.state.gateway
    count, told = await gateway.invalidate(tags)
    logger.info(
        "cache invalidated for %s: %d entries%s",
        ", ".join(tags),
        count,
        "" if told is None else f", {told} instances told",
    )
    return Invalidated(invalidated=count, tags=tags, instances_told=told)
