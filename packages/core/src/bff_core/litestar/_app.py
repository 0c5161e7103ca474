"""The plugin that owns the gateway, and a whole BFF application built from settings."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import msgspec
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPlugin, ReceiveRoutePlugin
from litestar.routes import BaseRoute
from litestar.types import ControllerRouterHandler

from .._cache import make_store
from .._declare import DEFAULT_BREAKER, Aggregate, BreakerPolicy, Items, RetryBudget, Source
from .._engine import Gateway
from .._errors import AggregationFailed, ConfigurationError, RequestError
from .._guards import KeySet, Network, RateLimits, TokenVerifier, parse_limits, parse_networks
from .._settings import DEFAULT_STREAM_HEARTBEAT_MS, GatewaySettings
from .._telemetry import Metrics, Tracing
from .._transports import Transport
from ._admin import invalidate_cache
from ._compression import Compression
from ._cors import CorsPolicy
from ._drain import _on_drain_signal
from ._edge import _edge
from ._guard import _guard
from ._health import healthz, metrics_endpoint, readyz
from ._problems import _aggregation_failed, _http_exception, _request_error, _unexpected
from ._routes import BEARER_SCHEME, document_aggregate_route


class GatewayPlugin(InitPlugin, ReceiveRoutePlugin):
    """Wires a :class:`Gateway` into a Litestar application, and documents its aggregate
    routes (ASGI routes, see :func:`aggregate_route`) in the OpenAPI document.

    Args:
        gateway: built at start-up (so a misdeclared aggregate or a missing service stops the
            application before it serves anything); closed when the application shuts down.
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        admin_token: str | None = None,
        access_log: bool = False,
        cors: CorsPolicy | None = None,
        compression: Compression | None = None,
        verifier: TokenVerifier | None = None,
        rate_limits: RateLimits | None = None,
        trusted_proxies: Sequence[Network] = (),
        realm: str = "bff",
        stream_heartbeat: float = DEFAULT_STREAM_HEARTBEAT_MS / 1000,
    ) -> None:
        self.gateway = gateway
        self.stream_heartbeat = stream_heartbeat
        self.verifier = verifier
        self.rate_limits = rate_limits
        self.trusted_proxies = tuple(trusted_proxies)
        self.realm = realm
        self.cors = cors
        self.compression = compression
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
            self.gateway.metrics.declare_edge()
        app_config.middleware.insert(
            0,
            _edge(
                self.gateway.metrics,
                self.access_log,
                self.gateway.tracing,
                self.cors,
                self.compression,
            ),
        )
        if self.verifier is not None or self.rate_limits is not None:
            app_config.middleware.insert(
                1,
                _guard(
                    self.verifier,
                    self.rate_limits,
                    self.trusted_proxies,
                    self.realm,
                    self.gateway.metrics,
                ),
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
        app_config.state["verifier"] = self.verifier
        app_config.state["stream_heartbeat"] = self.stream_heartbeat
        return app_config

    def receive_route(self, route: BaseRoute) -> None:
        document_aggregate_route(route)

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
        if self.verifier is not None:
            await self.verifier.start()
        if self.rate_limits is not None:
            await self.rate_limits.start()
        _on_drain_signal(self.gateway.drain)
        try:
            yield
        finally:
            if self.rate_limits is not None:
                await self.rate_limits.aclose()
            if self.verifier is not None:
                await self.verifier.aclose()
            await self.gateway.aclose()


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
    ``BFF_BREAKER_FAILURES``, ``BFF_BREAKER_MIN_CALLS``, ``BFF_BREAKER_FAILURE_PERCENT``,
    ``BFF_BREAKER_WINDOW_MS`` and ``BFF_BREAKER_RESET_MS`` override their thresholds, and
    ``BFF_BREAKER=off`` removes them.
    """
    verifier = _verifier(settings, aggregates)
    rate_limits = _rate_limits(settings, aggregates, settings.cache_namespace or name)
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
        slowest_first=settings.slowest_first,
    )
    return Litestar(
        route_handlers=list(route_handlers),
        plugins=[
            GatewayPlugin(
                gateway,
                stream_heartbeat=settings.stream_heartbeat,
                admin_token=settings.admin_token,
                access_log=settings.access_log,
                cors=CorsPolicy.from_setting(
                    settings.cors_origins, credentials=settings.cors_credentials
                ),
                compression=(
                    Compression(settings.compression_min_bytes) if settings.compression else None
                ),
                verifier=verifier,
                rate_limits=rate_limits,
                trusted_proxies=parse_networks(settings.trusted_proxies),
                realm=name,
            )
        ],
        openapi_config=OpenAPIConfig(
            title=title,
            version=version,
            description=description,
            path="/schema",
            # Routes that require an identity say so themselves (security: bearer); the others
            # accept a token but do without one.
            components=(
                Components(security_schemes={BEARER_SCHEME: _BEARER})
                if verifier is not None
                else Components()
            ),
        ),
        logging_config=None,
    )


_BEARER = SecurityScheme(
    type="http",
    scheme="bearer",
    bearer_format="JWT",
    description="A token of the identity provider for this BFF's audience (BFF_JWT_AUDIENCE)",
)


def _verifier(settings: GatewaySettings, aggregates: Sequence[Aggregate]) -> TokenVerifier | None:
    jwt = settings.jwt
    if jwt is None:
        for aggregate in aggregates:
            if aggregate.requires_identity:
                raise ConfigurationError(
                    "BFF_JWT_JWKS_URL",
                    f"aggregate {aggregate.name!r} requires a verified identity: set "
                    "BFF_JWT_JWKS_URL, BFF_JWT_ISSUER and BFF_JWT_AUDIENCE",
                )
        return None
    keys = KeySet(
        jwt.jwks_url, refresh_every=jwt.refresh_every, unknown_kid_cooldown=jwt.kid_cooldown
    )
    return TokenVerifier(
        keys,
        issuer=jwt.issuer,
        audience=jwt.audience,
        algorithms=jwt.algorithms,
        leeway=jwt.leeway,
    )


def _rate_limits(
    settings: GatewaySettings, aggregates: Sequence[Aggregate], namespace: str
) -> RateLimits | None:
    names = {a.name.lower(): a.name for a in aggregates}
    for lowered in settings.rate_limit_by_aggregate:
        if lowered not in names:
            raise ConfigurationError(
                f"BFF_RATE_LIMIT_{lowered.upper()}",
                f"no aggregate is named {lowered!r} "
                f"(aggregates: {', '.join(sorted(names.values()))})",
            )
    if not settings.rate_limit and not settings.rate_limit_by_aggregate:
        return None
    return RateLimits(
        parse_limits(settings.rate_limit) if settings.rate_limit else [],
        per_aggregate={
            names[lowered]: parse_limits(text)
            for lowered, text in settings.rate_limit_by_aggregate.items()
        },
        redis_url=settings.redis_url,
        namespace=namespace,
        fail_closed=settings.rate_limit_fail_closed,
    )


def _tuned(
    breakers: BreakerPolicy | Mapping[str, BreakerPolicy], settings: GatewaySettings
) -> BreakerPolicy | dict[str, BreakerPolicy]:
    """The declared breaker policies with the thresholds the environment overrides."""

    def tune(policy: BreakerPolicy) -> BreakerPolicy:
        percent = settings.breaker_failure_percent
        return replace(
            policy,
            failures=settings.breaker_failures or policy.failures,
            min_calls=settings.breaker_min_calls or policy.min_calls,
            failure_rate=policy.failure_rate if percent is None else percent / 100,
            window=settings.breaker_window or policy.window,
            reset_timeout=settings.breaker_reset or policy.reset_timeout,
        )

    if isinstance(breakers, BreakerPolicy):
        return tune(breakers)
    declared = {**dict.fromkeys(settings.services, DEFAULT_BREAKER), **breakers}
    return {service: tune(policy) for service, policy in declared.items()}


def _declarations_digest(aggregates: Sequence[Aggregate]) -> str:
    def parts(source: Source | Items) -> list[Any]:
        if isinstance(source, Items):
            return [source.name, source.ids, [parts(s) for s in source.sources]]
        batch = source.batch
        return [
            source.name,
            source.service,
            source.path,
            None if batch is None else [batch.path, batch.key, batch.same_as_item],
            msgspec.json.schema(source.returns),
        ]

    described = [
        (a.name, [parts(s) for s in a.sources]) for a in sorted(aggregates, key=lambda a: a.name)
    ]
    return hashlib.blake2b(msgspec.json.encode(described), digest_size=4).hexdigest()
