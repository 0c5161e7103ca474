"""Gateway settings read from the environment, checked before anything starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias
from urllib.parse import urlsplit

from ._errors import ConfigurationError
from ._transport import Transport

__all__ = ["GatewaySettings"]

DEFAULT_UPSTREAM_URL = "http://127.0.0.1:9000"
DEFAULT_TIMEOUT_MS = 1000
_MAX_TIMEOUT_MS = 10 * 60 * 1000

HttpClient: TypeAlias = Literal["pyreqwest", "aiohttp"]
HTTP_CLIENTS: tuple[HttpClient, ...] = ("pyreqwest", "aiohttp")


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """Everything a gateway needs from its environment.

    Attributes:
        services: base URL of every upstream service, by service name (no trailing slash).
        redis_url: the shared Redis, or ``None`` for in-process state only.
        timeout: deadline of a whole aggregation, in seconds.
        http_client: the upstream client: ``pyreqwest`` (fastest; a request abandoned before
            the deadline ends at the deadline) or ``aiohttp`` (a cancelled request's
            connection is closed at once).
    """

    services: Mapping[str, str]
    redis_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT_MS / 1000
    http_client: HttpClient = "pyreqwest"

    @classmethod
    def from_env(
        cls,
        service_variables: Mapping[str, str],
        environ: Mapping[str, str] | None = None,
        *,
        default_upstream_url: str = DEFAULT_UPSTREAM_URL,
    ) -> GatewaySettings:
        """Read the settings; raise :class:`ConfigurationError` naming the first bad variable.

        Args:
            service_variables: service name -> the environment variable holding its base URL,
                e.g. ``{"product": "PRODUCT_SERVICE_URL"}``.
            environ: the environment (``os.environ`` by default).
            default_upstream_url: the base URL of a service whose variable is unset.
        """
        env = os.environ if environ is None else environ
        services = {
            service: _http_url(variable, env.get(variable, default_upstream_url))
            for service, variable in service_variables.items()
        }
        redis_url = env.get("REDIS_URL") or None
        if redis_url is not None:
            _redis_url("REDIS_URL", redis_url)
        timeout_ms = _positive_int(
            "BFF_TIMEOUT_MS", env.get("BFF_TIMEOUT_MS", str(DEFAULT_TIMEOUT_MS)), _MAX_TIMEOUT_MS
        )
        http_client = env.get("BFF_HTTP_CLIENT", "pyreqwest").strip()
        if http_client not in HTTP_CLIENTS:
            raise ConfigurationError(
                "BFF_HTTP_CLIENT", f"{http_client!r} is not one of {', '.join(HTTP_CLIENTS)}"
            )
        return cls(
            services=services,
            redis_url=redis_url,
            timeout=timeout_ms / 1000,
            http_client=http_client,
        )


def _http_url(variable: str, value: str) -> str:
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise ConfigurationError(variable, f"{value!r} is not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            variable, f"{value!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:9000"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(variable, f"{value!r} must not have a query or a fragment")
    del port
    return value.rstrip("/")


def _redis_url(variable: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix") or (
        parts.scheme != "unix" and not parts.hostname
    ):
        raise ConfigurationError(
            variable, f"{value!r} is not a Redis URL, e.g. redis://127.0.0.1:6379/0"
        )


def _positive_int(variable: str, value: str, maximum: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigurationError(variable, f"{value!r} is not a whole number") from None
    if not 0 < number <= maximum:
        raise ConfigurationError(variable, f"{number} is not between 1 and {maximum}")
    return number


def make_transport(http_client: HttpClient) -> Transport:
    """A new transport of the kind ``http_client`` names."""
    from ._transport_aiohttp import AiohttpTransport

    if http_client == "aiohttp":
        return AiohttpTransport()
    if http_client != "pyreqwest":
        raise ValueError(f"http_client must be one of {', '.join(HTTP_CLIENTS)}")
    from ._transport_pyreqwest import PyreqwestTransport

    # aiohttp for the rare URL pyreqwest cannot send byte for byte (dot segments).
    return PyreqwestTransport(fallback=AiohttpTransport())
