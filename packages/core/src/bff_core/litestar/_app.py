"""A whole BFF application built from settings: the gateway, its guards, the plugin and the
OpenAPI document."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import msgspec
from litestar import Litestar
from litestar.types import ControllerRouterHandler

from .._cache import make_store
from .._declare import (
    DEFAULT_BREAKER,
    Aggregate,
    BreakerPolicy,
    Items,
    Mutation,
    RetryBudget,
    Source,
)
from .._engine import Gateway
from .._errors import ConfigurationError
from .._guards import (
    Idempotency,
    KeySet,
    RateLimits,
    RedisRecords,
    TokenVerifier,
    parse_limits,
    parse_networks,
)
from .._loop_first import LoopFirst
from .._settings import OPS_HOST_VARIABLE, GatewaySettings
from .._telemetry import Metrics, Tracing
from .._transports import Transport
from ._edge import Compression, CorsPolicy
from ._openapi import openapi_config
from ._plugin import GatewayPlugin

__all__ = ["create_gateway_app"]


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
    mutations: Sequence[Mutation] = (),
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

    ``mutations`` are the writes the routes carry out (:func:`mutation_route`), checked at
    start-up; ``BFF_RATE_LIMIT_<NAME>`` may name one of them as it names an aggregate (a
    separate, lower limit for writes). Their idempotency keys are kept in ``REDIS_URL``'s
    Redis when it is set, in process memory otherwise.
    """
    verifier = _verifier(settings, aggregates, mutations)
    limited = [*(a.name for a in aggregates), *(m.name for m in mutations)]
    rate_limits = _rate_limits(settings, limited, settings.cache_namespace or name)
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
        mutations=mutations,
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
        batch_window=settings.batch_window_us / 1_000_000 if settings.batch else None,
        idempotency=Idempotency(
            None if settings.redis_url is None else RedisRecords(settings.redis_url),
            namespace=settings.cache_namespace or name,
        ),
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
                ops_port=settings.ops_port,
                ops_host=os.environ.get(OPS_HOST_VARIABLE) or "127.0.0.1",
                loop_first=(LoopFirst() if settings.loop_first and LoopFirst.supported() else None),
            )
        ],
        openapi_config=openapi_config(
            title=title, version=version, description=description, bearer=verifier is not None
        ),
        logging_config=None,
    )


def _verifier(
    settings: GatewaySettings, aggregates: Sequence[Aggregate], mutations: Sequence[Mutation]
) -> TokenVerifier | None:
    jwt = settings.jwt
    if jwt is None:
        # A screen a write answers (the cart after a line changed) is on the write path: like
        # the writes, it answers 401 in a BFF without identity instead of stopping one that
        # serves reads.
        written = {id(m.then) for m in mutations if m.then is not None}
        for aggregate in aggregates:
            if aggregate.requires_identity and id(aggregate) not in written:
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
        typ=jwt.typ,
    )


def _rate_limits(
    settings: GatewaySettings, limited: Sequence[str], namespace: str
) -> RateLimits | None:
    names = {name.lower(): name for name in limited}
    for lowered in settings.rate_limit_by_aggregate:
        if lowered not in names:
            raise ConfigurationError(
                f"BFF_RATE_LIMIT_{lowered.upper()}",
                f"no aggregate or mutation is named {lowered!r} "
                f"(their names: {', '.join(sorted(names.values()))})",
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
        ipv6_prefix=settings.rate_limit_ipv6_prefix,
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
