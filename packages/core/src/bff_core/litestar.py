"""Litestar integration: the only module of bff-core that imports Litestar.

- :class:`GatewayPlugin` owns the :class:`~bff_core.Gateway` for the application's lifespan,
  provides it to handlers as the ``gateway`` dependency, answers every error as
  ``application/problem+json`` and serves ``/healthz`` and ``/readyz``.
- :func:`create_gateway_app` builds a whole BFF application from settings, aggregates and
  route handlers, with the OpenAPI document at ``/schema/openapi.json``.
- :func:`aggregate_route` is a whole ``GET`` route for an aggregate: parameters from the query,
  ``fields``, the client's view, ``Server-Timing``; one line per route in a service.
- :func:`aggregate_response` wraps a custom handler's payload with the ``Server-Timing`` header.
- :func:`serve` is the command line of a BFF: ``--host``, ``--port``, ``--workers`` (a number,
  or ``auto``: the container's CPU limit).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gc
import hashlib
import hmac
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any, TypeVar, get_type_hints
from urllib.parse import parse_qsl, quote

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import OpenAPIType, Operation, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.plugins import InitPlugin
from litestar.types import ASGIApp, ControllerRouterHandler, Message, Receive, Scope, Send

from ._cache import make_store
from ._cpus import workers_for_cpu_limit
from ._declaration import Aggregate
from ._engine import Gateway
from ._errors import (
    AggregationFailed,
    ConfigurationError,
    DeclarationError,
    InvalidParameter,
    RequestError,
)
from ._logs import ACCESS_LOGGER, configure_logging
from ._metrics import METRICS_CONTENT_TYPE, METRICS_DIR_VARIABLE, Metrics
from ._outcome import AggregateResult
from ._report import PROBLEM_JSON, Problem, problem_for
from ._resilience import DEFAULT_BREAKER, BreakerPolicy, RetryBudget, UpstreamStatus
from ._settings import GatewaySettings
from ._tracing import Tracing
from ._transport import Transport

__all__ = [
    "PROBLEM_RESPONSES",
    "GatewayPlugin",
    "Health",
    "Readiness",
    "aggregate_response",
    "aggregate_route",
    "create_gateway_app",
    "serve",
]

T = TypeVar("T")
logger = logging.getLogger("bff_core")
_problem_encoder = msgspec.json.Encoder()


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    #: what decides readiness: configuration loaded, cache reachable
    checks: dict[str, str]
    #: detail that does not: each upstream's breaker state, retries and hedges
    upstreams: dict[str, UpstreamStatus]
    #: whether breaker state is shared with the other instances (through Redis)
    breaker_sharing: str


def _problem_spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=Problem, media_type=PROBLEM_JSON, description=description)


#: OpenAPI descriptions of the problem answers of an aggregate route, for ``responses=``.
PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    400: _problem_spec("A parameter is missing or malformed, or `fields` names unknown parts"),
    404: _problem_spec("The critical upstream answered 404: the item does not exist"),
    502: _problem_spec("A critical upstream failed (unavailable, error status, invalid answer)"),
    504: _problem_spec("A critical upstream did not answer before the deadline"),
}


def aggregate_response(result: AggregateResult, payload: T) -> Response[T]:
    """Answer ``payload`` with a ``Server-Timing`` header giving each part's duration."""
    return Response(payload, headers={"server-timing": result.server_timing()})


def aggregate_route(
    path: str,
    aggregate: Aggregate,
    view: Callable[[AggregateResult], T],
    *,
    summary: str,
    description: str | None = None,
) -> HTTPRouteHandler:
    """``GET path``: run ``aggregate`` with the query's parameters and answer ``view(result)``.

    The query holds the aggregate's parameters and ``fields`` (comma-separated part names;
    the other parts' upstreams are not called). A parameter given twice is a 400, like every
    malformed request. The OpenAPI document shows the parameters and the view's type, which
    must be the return annotation of ``view``.

    The handler reads the query string itself instead of declaring Litestar parameters:
    Litestar's parameter and dependency injection costs more per request than the rest of its
    routing together (see ``docs/decisions/0002-hot-path.md``), and this is the hot path.
    """
    view_type = get_type_hints(view).get("return")
    if view_type is None:
        raise DeclarationError(f"view {view!r} of route {path} needs a return annotation")
    names = frozenset(p.name for p in aggregate.params) | {"fields"}

    encode = msgspec.json.Encoder().encode
    # Whole answers are cached under the view's shape too: a release that changes the view
    # never reads an answer encoded by the one before.
    view_shape = hashlib.blake2b(
        msgspec.json.encode(msgspec.json.schema(view_type)), digest_size=6
    ).hexdigest()
    param_names = [p.name for p in aggregate.params]

    async def handler(scope: Scope) -> Response[Any]:
        query = _query(scope["query_string"], names)
        gateway: Gateway = scope["app"].state.gateway
        if_none_match = _header(scope, b"if-none-match")
        seen: dict[str, Any] = scope["state"][_STATE_KEY]
        # The request id travels to every upstream this request calls.
        headers = {REQUEST_ID_HEADER: seen["request_id"]}
        cache = gateway.cache
        if cache is None:
            result = await _run(gateway, aggregate, query, query.get("fields"), headers, seen)
            return _body_response(encode(view(result)), if_none_match, result.server_timing())
        values = aggregate.validate_params(query)
        fields = aggregate.plan(query.get("fields")).reported
        encoded = "&".join(f"{n}={quote(values[n], safe='')}" for n in param_names)
        key = f"agg:{aggregate.name}:{view_shape}:{encoded}:{','.join(sorted(fields))}"
        cached = await cache.answer(key)
        if gateway.metrics is not None:
            gateway.metrics.observe_answer(aggregate.name, cached is not None)
        if cached is not None:
            seen["answer_cache"] = "hit"
            return _body_response(cached.body, if_none_match, 'cache;desc="hit"')
        seen["answer_cache"] = "miss"
        result = await _run(gateway, aggregate, values, query.get("fields"), headers, seen)
        body = encode(view(result))
        if (fresh_for := result.fresh_for) > 0:
            cache.keep_answer(key, body, fresh_for, [f"{n}={v}" for n, v in values.items()])
        return _body_response(body, if_none_match, result.server_timing())

    handler.__annotations__ = {"scope": Scope, "return": Response[view_type]}  # type: ignore[valid-type]
    handler.__name__ = handler.__qualname__ = f"aggregate_{aggregate.name}"
    parameters = [
        OpenAPIParameter(
            name=p.name,
            param_in="query",
            required=p.required,
            description=p.description or None,
            schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=p.max_length),
        )
        for p in aggregate.params
    ]
    parameters.append(
        OpenAPIParameter(
            name="fields",
            param_in="query",
            required=False,
            description="Comma-separated parts to return; the other upstreams are not called. "
            f"Parts: {', '.join(aggregate.part_names)}. Default: all.",
            schema=Schema(type=OpenAPIType.STRING),
        )
    )

    @dataclass
    class AggregateOperation(Operation):
        def __post_init__(self) -> None:
            self.parameters = [*parameters, *(self.parameters or [])]

    return get(
        path,
        summary=summary,
        description=description,
        responses=PROBLEM_RESPONSES,
        operation_class=AggregateOperation,
    )(handler)


async def _run(
    gateway: Gateway,
    aggregate: Aggregate,
    values: Mapping[str, str | None],
    fields: str | None,
    headers: Mapping[str, str],
    seen: dict[str, Any],
) -> AggregateResult:
    """``gateway.run``, leaving every part's outcome for the access log."""
    try:
        result = await gateway.run(aggregate, values, fields=fields, headers=headers)
    except AggregationFailed as failed:
        seen["outcomes"] = failed.outcomes
        raise
    seen["outcomes"] = result.values()
    return result


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _body_response(body: bytes, if_none_match: bytes | None, timing: str) -> Response[Any]:
    """The encoded answer with its ETag, or 304 when the client already has it."""
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    # no-cache: clients may keep the answer but ask again, with If-None-Match, every time.
    headers = {"server-timing": timing, "etag": etag, "cache-control": "no-cache"}
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        return Response(None, status_code=304, headers=headers)
    return Response(body, media_type=MediaType.JSON, headers=headers)


def _etag_matches(if_none_match: bytes, etag: str) -> bool:
    # RFC 9110 13.1.2: weak comparison, a list of tags, or "*".
    text = if_none_match.decode("latin-1").strip()
    if text == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in text.split(","))


def _query(raw: bytes, names: frozenset[str]) -> dict[str, str]:
    """The query parameters this route knows; a known one given twice is refused."""
    query: dict[str, str] = {}
    if not raw:
        return query
    text = raw.decode("utf-8", "replace")
    pairs: Iterable[tuple[str, str]]
    if "%" in text or "+" in text or ";" in text:
        pairs = parse_qsl(text, keep_blank_values=True)
    else:  # nothing to decode: the common case, without urllib's general machinery
        pairs = (pair.partition("=")[::2] for pair in text.split("&") if pair)
    for name, value in pairs:
        if name in names:
            if name in query:
                raise InvalidParameter(
                    f"query parameter {name!r} is given more than once", parameter=name
                )
            query[name] = value
    return query


class GatewayPlugin(InitPlugin):
    """Wires a :class:`Gateway` into a Litestar application.

    Args:
        gateway: built at start-up (so a misdeclared aggregate or a missing service stops the
            application before it serves anything); closed when the application shuts down.
    """

    def __init__(
        self, gateway: Gateway, *, admin_token: str | None = None, access_log: bool = False
    ) -> None:
        self.gateway = gateway
        self.admin_token = admin_token
        self.access_log = access_log

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self._lifespan)
        app_config.dependencies["gateway"] = Provide(
            self._provide_gateway, use_cache=True, sync_to_thread=False
        )
        app_config.route_handlers.extend([healthz, readyz, invalidate_cache])
        if self.gateway.metrics is not None:
            app_config.route_handlers.append(metrics_endpoint)
        app_config.middleware.insert(
            0, _edge(self.gateway.metrics, self.access_log, self.gateway.tracing)
        )
        app_config.exception_handlers.update(
            {
                AggregationFailed: _aggregation_failed,
                RequestError: _request_error,
                HTTPException: _http_exception,
                Exception: _unexpected,
            }
        )
        app_config.state["gateway"] = self.gateway  # aggregate routes read it from here
        app_config.state["admin_token"] = self.admin_token
        return app_config

    def _provide_gateway(self) -> Gateway:
        return self.gateway

    @asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        # Everything allocated while starting (modules, the app, declarations) lives as long as
        # the process: moved out of the collector's sight, it is not traversed again on every
        # collection; and a serving process allocates fast, so collections run less often.
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        await self.gateway.start()
        _on_drain_signal(self.gateway.drain)
        try:
            yield
        finally:
            await self.gateway.aclose()


#: What the serving process sends each worker when a drain starts (see :func:`serve`).
DRAIN_SIGNAL = signal.SIGUSR1


def _on_drain_signal(drain: Callable[[], None]) -> None:
    """Call ``drain`` when this process receives :data:`DRAIN_SIGNAL`, if it can listen for
    signals at all (a loop in the main thread; not, say, a test client's portal thread)."""
    try:
        asyncio.get_running_loop().add_signal_handler(DRAIN_SIGNAL, drain)
    except (NotImplementedError, RuntimeError, ValueError):
        logger.debug("no drain signal handler in this process")


@get("/healthz", tags=["health"], summary="Alive", sync_to_thread=False)
def healthz() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


@get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics",
    media_type=METRICS_CONTENT_TYPE,
    sync_to_thread=False,
)
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Every metric in Prometheus' text format (of every worker process); see the README,
    section Observability, for what each one means."""
    metrics: Metrics = request.app.state.gateway.metrics
    return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)


REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = REQUEST_ID_HEADER.encode()
#: What a client may send as its request id: a token of up to 128 visible characters.
_REQUEST_ID_PATTERN = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")
#: Where the edge middleware leaves what the handler learned, for the access log.
_STATE_KEY = "bff"


def _edge(
    metrics: Metrics | None, access_log: bool, tracing: Tracing | None
) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware around every route: the request id (the client's ``X-Request-ID`` if it is
    a sane token, else a new one) in the response and in every upstream request, each
    request's route, status and duration in the metrics, and the access log line."""
    access = logging.getLogger(ACCESS_LOGGER)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def edge(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            method = scope["method"]
            started = perf_counter()
            given = _header(scope, _REQUEST_ID)
            request_id = (
                given
                if given is not None and _REQUEST_ID_PATTERN.fullmatch(given)
                else uuid.uuid4().hex.encode()
            )
            seen: dict[str, Any] = {"request_id": request_id.decode()}
            scope.setdefault("state", {})[_STATE_KEY] = seen
            status = 500  # unless an answer starts: the request failed without one

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", ()), (_REQUEST_ID, request_id)]
                await send(message)

            route = scope.get("path_template") or "unmatched"
            if tracing is not None:
                span, token = tracing.start_request(
                    method, route, scope["headers"], scope.get("path", "")
                )
            try:
                await app(scope, receive, sending)
            finally:
                elapsed = perf_counter() - started
                if tracing is not None:
                    tracing.end_request(span, token, status)
                if metrics is not None:
                    metrics.observe_request(route, method, status, elapsed)
                if access_log:
                    _log_access(access, scope, method, route, status, elapsed, seen)

        return edge

    return middleware


def _log_access(
    access: logging.Logger,
    scope: Scope,
    method: str,
    route: str,
    status: int,
    elapsed: float,
    seen: dict[str, Any],
) -> None:
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("path", "")
    target = f"{path}?{query}" if query else path
    parts = [
        {
            "source": o.name,
            "outcome": o.reason or "ok",
            "duration_ms": round(o.duration * 1000, 2),
            **({"cache": o.cache} if o.cache is not None else {}),
            **({"status": o.upstream_status} if o.reason == "upstream_status" else {}),
        }
        for o in seen.get("outcomes", ())
    ]
    described = " ".join(
        f"{p['source']}={p['outcome']}" + (f"({p['cache']})" if "cache" in p else "") for p in parts
    )
    access.info(
        "%s %s %d %.1fms %s%s",
        method,
        target,
        status,
        elapsed * 1000,
        seen["request_id"],
        f" {described}" if described else "",
        extra={
            "event": "request",
            "request_id": seen["request_id"],
            "method": method,
            "route": route,
            "path": path,
            "query": query,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            **({"parts": parts} if parts else {}),
            **({"answer_cache": seen["answer_cache"]} if "answer_cache" in seen else {}),
        },
    )


@get(
    "/readyz",
    tags=["health"],
    summary="Ready",
    responses={},
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    """Ready to serve: configuration loaded, cache reachable. 503 when a check fails.

    The answer also shows each upstream's circuit breaker, retries and hedges. An open breaker
    does not make the instance unready: it still serves what it can.
    """
    gateway: Gateway = request.app.state.gateway
    checks = await gateway.readiness()
    ready = all(value.startswith("ok") for value in checks.values())
    return Response(
        Readiness(
            status="ready" if ready else "not ready",
            checks=checks,
            upstreams=gateway.upstream_status(),
            breaker_sharing=gateway.breaker_sharing(),
        ),
        status_code=200 if ready else 503,
    )


def create_gateway_app(
    *,
    name: str,
    title: str,
    version: str,
    settings: GatewaySettings,
    aggregates: Sequence[Aggregate],
    route_handlers: Sequence[ControllerRouterHandler],
    transport: Transport | None = None,
    description: str | None = None,
    breakers: BreakerPolicy | Mapping[str, BreakerPolicy] = DEFAULT_BREAKER,
) -> Litestar:
    """A complete BFF application: the gateway, its routes, health, problems and OpenAPI.

    ``name`` is the deployment's default cache namespace; with ``version`` and a digest of the
    aggregates' declarations it prefixes every cache key, so deployments sharing a Redis never
    collide and a new release never reads the shapes an older one stored. Breaker state is
    shared, through the same Redis, by the instances of that namespace, whatever their version.

    ``breakers`` declares the upstreams' circuit breakers (one policy for all, or per service);
    ``BFF_BREAKER_FAILURES`` and ``BFF_BREAKER_RESET_MS`` override their thresholds, and
    ``BFF_BREAKER=off`` removes them.
    """
    store = None
    if settings.cache:
        namespace = (
            f"{settings.cache_namespace or name}:{version}:{_declarations_digest(aggregates)}"
        )
        store = make_store(
            settings.redis_url,
            namespace=namespace,
            max_entries=settings.cache_max_entries,
            near_hold=settings.cache_near,
        )
    percent = settings.retry_budget_percent
    gateway = Gateway(
        services=settings.services,
        aggregates=aggregates,
        timeout=settings.timeout,
        transport=transport,
        http_client=settings.http_client,
        cache=store,
        breakers=_tuned(breakers, settings) if settings.breakers else None,
        retry_budget=RetryBudget(ratio=percent / 100) if percent else None,
        peers=settings.redis_url,
        peers_namespace=settings.cache_namespace or name,
        metrics=Metrics() if settings.metrics else None,
        tracing=Tracing.from_env(name, settings.otel),
    )
    return Litestar(
        route_handlers=list(route_handlers),
        plugins=[
            GatewayPlugin(gateway, admin_token=settings.admin_token, access_log=settings.access_log)
        ],
        openapi_config=OpenAPIConfig(
            title=title, version=version, description=description, path="/schema"
        ),
        logging_config=None,
    )


def _tuned(
    breakers: BreakerPolicy | Mapping[str, BreakerPolicy], settings: GatewaySettings
) -> BreakerPolicy | dict[str, BreakerPolicy]:
    """The declared breaker policies with the thresholds the environment overrides."""

    def tune(policy: BreakerPolicy) -> BreakerPolicy:
        return replace(
            policy,
            failures=settings.breaker_failures or policy.failures,
            reset_timeout=settings.breaker_reset or policy.reset_timeout,
        )

    if isinstance(breakers, BreakerPolicy):
        return tune(breakers)
    declared = {**dict.fromkeys(settings.services, DEFAULT_BREAKER), **breakers}
    return {service: tune(policy) for service, policy in declared.items()}


def _declarations_digest(aggregates: Sequence[Aggregate]) -> str:
    described = [
        (a.name, [(s.name, s.service, s.path, msgspec.json.schema(s.returns)) for s in a.sources])
        for a in sorted(aggregates, key=lambda a: a.name)
    ]
    return hashlib.blake2b(msgspec.json.encode(described), digest_size=4).hexdigest()


class Invalidated(msgspec.Struct, frozen=True):
    #: entries deleted where they are shared (in-process: here)
    invalidated: int
    tags: list[str]
    #: instances told to drop their near-cache copies, this one included (``null``: no Redis,
    #: or Redis could not be told; their copies then end within BFF_CACHE_NEAR_MS)
    instances_told: int | None = None


@post(
    "/admin/cache/invalidate",
    tags=["admin"],
    summary="Invalidate cached entries",
    status_code=200,
    responses={
        401: ResponseSpec(Problem, media_type=PROBLEM_JSON, description="Missing or wrong token"),
        404: ResponseSpec(Problem, media_type=PROBLEM_JSON, description="Admin API disabled"),
    },
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


def _problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        _problem_encoder.encode(problem),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _aggregation_failed(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, AggregationFailed)
    timing = ", ".join(
        f'{o.name};dur={o.duration * 1000:.1f};desc="{o.reason}"' for o in exc.failures
    )
    return _problem_response(
        problem_for(exc, instance=request.url.path), headers={"server-timing": timing}
    )


def _request_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, RequestError)
    return _problem_response(problem_for(exc, instance=request.url.path))


def _http_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        detail = f"{detail}: {exc.extra}"
    title = _status_phrase(exc.status_code)
    return _problem_response(
        Problem(
            type="about:blank",
            title=title,
            status=exc.status_code,
            detail=detail or title,
            instance=request.url.path,
        ),
        headers=exc.headers,
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _problem_response(
        Problem(
            type="about:blank",
            title="Internal Server Error",
            status=500,
            detail="the gateway failed unexpectedly; the error is logged",
            instance=request.url.path,
        )
    )


def _status_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def serve(
    *,
    prog: str,
    app_factory: str,
    default_port: int,
    argv: Sequence[str] | None = None,
    check: Callable[[], object] | None = None,
) -> None:
    """The command line of a BFF: validate configuration, then serve with granian.

    granian (a Rust HTTP server, ASGI interface, uvloop) is the production server: on one core
    it serves the aggregate well ahead of uvicorn (``docs/decisions/0002-hot-path.md``).
    SIGTERM drains first (``BFF_DRAIN_MS``: ``/readyz`` 503 while every request is still
    served), then stops; SIGINT stops at once (``docs/decisions/0005-draining.md``).

    Args:
        prog: the command's name, for ``--help`` and messages.
        app_factory: ``"module:function"`` returning the Litestar app (imported by each worker).
        default_port: the port when ``--port`` is not given.
        check: called once before serving; a :class:`ConfigurationError` it raises stops
            start-up with the message on stderr and exit status 2.
    """
    parser = argparse.ArgumentParser(prog=prog, description=f"Run the {prog} service.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=default_port, help="port to listen on")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes, one per core the service may use, or 'auto': the CPU limit "
        "of its container (cgroup), rounded down, at least 1 (default 1)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a TCP port")
    if args.workers == "auto":
        args.workers = workers_for_cpu_limit()
    if args.workers > 1 and not os.environ.get(METRICS_DIR_VARIABLE):
        # Several workers: each writes its metrics there, and /metrics adds them up; fresh for
        # each start.
        directory = tempfile.mkdtemp(prefix=f"{prog}-metrics-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ[METRICS_DIR_VARIABLE] = directory
    try:
        log_format = GatewaySettings.from_env({}).log_format
    except ConfigurationError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(args.log_level, log_format)
    if check is not None:
        try:
            check()
        except ConfigurationError as exc:
            print(f"{prog}: configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    drain = GatewaySettings.from_env({}).drain
    _draining_server(drain)(
        app_factory,
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        websockets=False,
        log_level=LogLevels(args.log_level),
        log_access=False,
        respawn_failed_workers=True,
        # After the drain, the requests in flight get this long to finish before a worker is
        # killed: more than any aggregation may take.
        workers_kill_timeout=_STOP_BOUND_S,
    ).serve()


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of workers, nor 'auto'"
        ) from None
    if workers < 1:
        raise argparse.ArgumentTypeError("must be at least 1, or 'auto'")
    return workers


#: Seconds the workers get to finish the requests in flight once they are told to stop.
_STOP_BOUND_S = 30


def _draining_server(drain: float) -> type[Any]:
    """granian's server, with a drain between SIGTERM and the stop.

    granian's main process owns the signals: SIGINT and SIGTERM both stop it at once (it closes
    the listening socket and tells every worker to finish what it has). This subclass keeps
    SIGINT so (Ctrl-C skips the drain) and turns the first SIGTERM into a drain: it tells every
    worker process (:data:`DRAIN_SIGNAL`), whose ``/readyz`` answers 503 from then on, keeps
    the socket open and serving for ``drain`` seconds, then stops as granian does. A second
    SIGTERM, or a SIGINT, during the drain stops at once. See docs/decisions/0005-draining.md.
    """
    from granian import Granian

    class DrainingGranian(Granian):  # type: ignore[misc, valid-type]
        _drain_timer: threading.Timer | None = None

        def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
            signum = args[0] if args else None
            if signum == signal.SIGTERM and drain > 0 and self._drain_timer is None:
                logger.info("SIGTERM: draining for %g s, then stopping", drain)
                for worker in list(self.wrks):
                    # granian's worker process is a multiprocessing.Process, ``inner``. One
                    # that is gone, or not started yet, takes no requests anyway.
                    pid = getattr(getattr(worker, "inner", None), "pid", None)
                    if pid is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, DRAIN_SIGNAL)
                self._drain_timer = threading.Timer(drain, super().signal_handler_interrupt)
                self._drain_timer.daemon = True
                self._drain_timer.start()
                return
            if self._drain_timer is not None:
                self._drain_timer.cancel()
            super().signal_handler_interrupt(*args, **kwargs)

    return DrainingGranian
