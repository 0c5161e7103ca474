"""The plugin that owns the gateway: its lifespan, the edge, the operational routes, the
problem answers and the aggregate routes' OpenAPI operations."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.plugins import InitPlugin, ReceiveRoutePlugin
from litestar.routes import BaseRoute
from litestar.types import ControllerRouterHandler

from .._engine import Gateway
from .._errors import AggregationFailed, RequestError
from .._guards import Network, RateLimits, TokenVerifier
from .._loop_first import LoopFirst
from .._settings import DEFAULT_STREAM_HEARTBEAT_MS
from ._admin import invalidate_cache
from ._drain import keep_an_early_drain, on_drain_signal
from ._edge import Compression, CorsPolicy, edge_filters, edge_middleware
from ._health import healthz, metrics_endpoint, readyz
from ._openapi import ClosedStructSchemas, document_aggregate_route
from ._ops import OperationsListener, operations_app
from ._problems import on_aggregation_failed, on_http_exception, on_request_error, on_unexpected

__all__ = ["GatewayPlugin"]


class GatewayPlugin(InitPlugin, ReceiveRoutePlugin):
    """Wires a :class:`Gateway` into a Litestar application, and documents its aggregate
    routes (ASGI routes, see :func:`aggregate_route`) in the OpenAPI document.

    Args:
        gateway: built at start-up (so a misdeclared aggregate or a missing service stops the
            application before it serves anything); closed when the application shuts down.
        ops_port: the operations listener's port (``BFF_OPS_PORT``): ``/metrics`` and
            ``/admin/*`` answer there (on ``ops_host``) while the application runs, and not
            on the serving port; ``None``: on the serving port.
        loop_first: started with the application (``BFF_LOOP_FIRST``): while the worker's
            core is saturated, its other threads stop preempting the event loop.
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
        ops_port: int | None = None,
        ops_host: str = "127.0.0.1",
        loop_first: LoopFirst | None = None,
    ) -> None:
        self.gateway = gateway
        self.loop_first = loop_first
        self.stream_heartbeat = stream_heartbeat
        self.verifier = verifier
        self.rate_limits = rate_limits
        self.trusted_proxies = tuple(trusted_proxies)
        self.realm = realm
        self.cors = cors
        self.compression = compression
        self.admin_token = admin_token
        self.access_log = access_log
        #: with a port: /metrics and /admin/* answer there, and not on the serving port
        self.ops_port = ops_port
        self.ops_host = ops_host
        self._ops: OperationsListener | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        keep_an_early_drain()
        app_config.lifespan.append(self._lifespan)
        # A schema plugin is chosen by its place in the list: before Litestar's own, which
        # are already at its end; after this one, which Litestar is iterating over now.
        app_config.plugins.insert(app_config.plugins.index(self) + 1, ClosedStructSchemas())
        app_config.dependencies["gateway"] = Provide(
            self._provide_gateway, use_cache=True, sync_to_thread=False
        )
        app_config.route_handlers.extend([healthz, readyz])
        operations: list[ControllerRouterHandler] = [invalidate_cache]
        if self.gateway.metrics is not None:
            operations.append(metrics_endpoint)
            self.gateway.metrics.declare_edge()
        if self.ops_port is None:
            app_config.route_handlers.extend(operations)
        else:
            # Their own listener: on the serving port they are paths no route matches (404).
            self._ops = OperationsListener(
                operations_app(
                    self.gateway, self.admin_token, operations, access_log=self.access_log
                ),
                self.ops_host,
                self.ops_port,
            )
        # The edge's filters, assembled once: what is not configured is not in the chain.
        filters = edge_filters(
            metrics=self.gateway.metrics,
            tracing=self.gateway.tracing,
            access_log=self.access_log,
            cors=self.cors,
            compression=self.compression,
            verifier=self.verifier,
            rate_limits=self.rate_limits,
            trusted_proxies=self.trusted_proxies,
            realm=self.realm,
        )
        app_config.middleware.insert(0, edge_middleware(filters))
        app_config.exception_handlers.update(
            {
                AggregationFailed: on_aggregation_failed,
                RequestError: on_request_error,
                HTTPException: on_http_exception,
                Exception: on_unexpected,
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
        if self.loop_first is not None:
            self.loop_first.start(asyncio.get_running_loop())
        await self.gateway.start()
        if self.verifier is not None:
            await self.verifier.start()
        if self.rate_limits is not None:
            await self.rate_limits.start()
        if self._ops is not None:
            await self._ops.start()
        on_drain_signal(self.gateway.drain)
        try:
            yield
        finally:
            if self._ops is not None:
                await self._ops.aclose()
            if self.rate_limits is not None:
                await self.rate_limits.aclose()
            if self.verifier is not None:
                await self.verifier.aclose()
            await self.gateway.aclose()
            if self.loop_first is not None:
                self.loop_first.stop()
