"""Litestar integration: the only part of bff-core that imports Litestar, one module per concern.

- :class:`GatewayPlugin` owns the :class:`~bff_core.Gateway` for the application's lifespan,
  provides it to handlers as the ``gateway`` dependency, answers every error as
  ``application/problem+json`` and serves ``/healthz`` and ``/readyz``.
- :func:`create_gateway_app` builds a whole BFF application from settings, aggregates and
  route handlers, with the OpenAPI document at ``/schema/openapi.json``.
- :func:`aggregate_route` is a whole ``GET`` route for an aggregate: parameters from the query,
  ``fields``, the client's view, ``Server-Timing``; one line per route in a service.
- :func:`mutation_route` is a whole ``PUT``/``POST`` route for a :class:`~bff_core.Mutation`:
  JSON bodies, idempotency keys, the write's problems.
- :func:`aggregate_response` wraps a custom handler's payload with the ``Server-Timing`` header.
- :func:`serve` is the command line of a BFF: ``--host``, ``--port``, ``--workers`` (a number,
  or ``auto``: the container's CPU limit).
"""

from ._app import create_gateway_app
from ._health import Health, Readiness
from ._openapi import PROBLEM_RESPONSES
from ._plugin import GatewayPlugin
from ._routes import aggregate_response, aggregate_route
from ._serve import serve
from ._writes import mutation_route

__all__ = [
    "PROBLEM_RESPONSES",
    "GatewayPlugin",
    "Health",
    "Readiness",
    "aggregate_response",
    "aggregate_route",
    "create_gateway_app",
    "mutation_route",
    "serve",
]
