"""Gateway settings read from the environment, checked before anything starts."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from ._cache import DEFAULT_NEAR_HOLD
from ._errors import ConfigurationError
from ._guards import DEFAULT_ALGORITHMS, check_algorithms, parse_limits, parse_networks
from ._redis import parse_redis_url
from ._transports import HTTP_CLIENTS, HttpClient

__all__ = ["GatewaySettings", "JwtSettings"]

DEFAULT_UPSTREAM_URL = "http://127.0.0.1:9000"
DEFAULT_TIMEOUT_MS = 1000
_MAX_TIMEOUT_MS = 10 * 60 * 1000

_NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,64}")
DEFAULT_CACHE_NEAR_MS = round(DEFAULT_NEAR_HOLD * 1000)
DEFAULT_DRAIN_MS = 5000
DEFAULT_STREAM_HEARTBEAT_MS = 1000
_MAX_CACHE_NEAR_MS = 60_000


@dataclass(frozen=True, slots=True, kw_only=True)
class JwtSettings:
    """How bearer tokens are verified (see ``bff_core._guards._identity``)."""

    jwks_url: str
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    #: BFF_JWT_LEEWAY_S: clock skew allowed on exp and nbf (seconds)
    leeway: float = 30.0
    #: BFF_JWT_JWKS_REFRESH_S: seconds between refreshes of the key set
    refresh_every: float = 300.0
    #: BFF_JWT_KID_COOLDOWN_S: at most one fetch per this many seconds for unknown kids
    kid_cooldown: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JwtSettings | None:
        names = ("BFF_JWT_JWKS_URL", "BFF_JWT_ISSUER", "BFF_JWT_AUDIENCE")
        given = {name: env.get(name, "").strip() for name in names}
        if not any(given.values()):
            return None
        for name, value in given.items():
            if not value:
                set_ = ", ".join(n for n, v in given.items() if v)
                raise ConfigurationError(
                    name, f"is needed with {set_}: identity needs the key set, issuer and audience"
                )
        jwks_url = _http_url("BFF_JWT_JWKS_URL", given["BFF_JWT_JWKS_URL"])
        algorithms = tuple(
            a.strip()
            for a in env.get("BFF_JWT_ALGORITHMS", ",".join(DEFAULT_ALGORITHMS)).split(",")
            if a.strip()
        )
        try:
            check_algorithms(algorithms)
        except ValueError as exc:
            raise ConfigurationError("BFF_JWT_ALGORITHMS", str(exc)) from None
        return cls(
            jwks_url=jwks_url,
            issuer=given["BFF_JWT_ISSUER"],
            audience=given["BFF_JWT_AUDIENCE"],
            algorithms=algorithms,
            leeway=_int_between("BFF_JWT_LEEWAY_S", env.get("BFF_JWT_LEEWAY_S", "30"), 0, 300),
            refresh_every=_int_between(
                "BFF_JWT_JWKS_REFRESH_S", env.get("BFF_JWT_JWKS_REFRESH_S", "300"), 1, 86_400
            ),
            kid_cooldown=_int_between(
                "BFF_JWT_KID_COOLDOWN_S", env.get("BFF_JWT_KID_COOLDOWN_S", "30"), 0, 3600
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """Everything a gateway needs from its environment.

    Attributes:
        services: base URL of every upstream service, by service name (no trailing slash).
        redis_url: the shared Redis (one server, or a cluster: ``redis+cluster://...``), or
            ``None`` for in-process state only.
        timeout: deadline of a whole aggregation, in seconds.
        http_client: the upstream client: ``pyreqwest`` (fastest; a request abandoned before
            the deadline ends at the deadline) or ``aiohttp`` (a cancelled request's
            connection is closed at once).
    """

    services: Mapping[str, str]
    redis_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT_MS / 1000
    http_client: HttpClient = "pyreqwest"
    #: BFF_CACHE: cache upstream parts and whole answers (in Redis when redis_url is set)
    cache: bool = True
    #: BFF_CACHE_NAMESPACE: the deployment's key prefix in a shared Redis (default: the service)
    cache_namespace: str | None = None
    #: BFF_CACHE_MAX_ENTRIES: bound of the in-process cache (or of the near cache before Redis)
    cache_max_entries: int = 10_000
    #: BFF_CACHE_NEAR_MS: with Redis, how long an instance may serve a fresh entry from its
    #: own memory before asking Redis again (seconds); ``None``: no near cache
    cache_near: float | None = DEFAULT_CACHE_NEAR_MS / 1000
    #: BFF_ADMIN_TOKEN: bearer token of the admin endpoints; unset: they are disabled
    admin_token: str | None = None
    #: BFF_BREAKER: a circuit breaker per upstream service (shared through Redis if any)
    breakers: bool = True
    #: BFF_BREAKER_FAILURES: consecutive failures that open a breaker (default: the policy's)
    breaker_failures: int | None = None
    #: BFF_BREAKER_RESET_MS: how long an open breaker refuses before a trial (default: policy's)
    breaker_reset: float | None = None
    #: BFF_RETRY_BUDGET_PERCENT: retries and hedges allowed, in percent of each service's
    #: requests; 0 turns retries and hedges off
    retry_budget_percent: int = 10
    #: BFF_SLOWEST_FIRST: the parts that start together start slowest first, by their recent
    #: durations; off: in the order they are declared
    slowest_first: bool = True
    #: BFF_DRAIN_MS: after SIGTERM, how long the instance keeps serving while /readyz says 503,
    #: so load balancers stop sending to it before it stops (seconds; 0: stop at once)
    drain: float = DEFAULT_DRAIN_MS / 1000
    #: BFF_STREAM_HEARTBEAT_MS: how often a streamed answer with nothing to say sends a
    #: heartbeat, so idle proxies keep it open (seconds). It is also how a client that went
    #: away is noticed: granian sees a closed connection only when it writes to it
    stream_heartbeat: float = DEFAULT_STREAM_HEARTBEAT_MS / 1000
    #: BFF_METRICS: Prometheus metrics at GET /metrics
    metrics: bool = True
    #: BFF_LOG_FORMAT: ``text`` (readable lines) or ``json`` (one object per line)
    log_format: Literal["text", "json"] = "text"
    #: BFF_ACCESS_LOG: one line per request, with each part's outcome
    access_log: bool = False
    #: BFF_CORS_ORIGINS: the origins whose pages may call this BFF (comma-separated)
    cors_origins: str = ""
    #: BFF_CORS_CREDENTIALS: whether those pages may send cookies
    cors_credentials: bool = False
    #: BFF_COMPRESSION: zstd, br or gzip answers for the clients that accept them
    compression: bool = True
    #: BFF_COMPRESSION_MIN_BYTES: smaller bodies are sent as they are
    compression_min_bytes: int = 512
    #: the OTEL_* variables: OpenTelemetry's own configuration of tracing
    otel: Mapping[str, str] = field(default_factory=dict)
    #: BFF_JWT_JWKS_URL, BFF_JWT_ISSUER, BFF_JWT_AUDIENCE and the rest: bearer tokens
    #: verified against the identity provider's keys; ``None``: no identity
    jwt: JwtSettings | None = None
    #: BFF_RATE_LIMIT: every client's limits (``limits`` notation), empty: none
    rate_limit: str = ""
    #: BFF_RATE_LIMIT_<AGGREGATE>: more limits for one aggregate's route, by aggregate name
    rate_limit_by_aggregate: Mapping[str, str] = field(default_factory=dict)
    #: BFF_RATE_LIMIT_FAIL: ``open`` (serve) or ``closed`` (503) when Redis cannot count
    rate_limit_fail_closed: bool = False
    #: BFF_TRUSTED_PROXIES: the proxies whose X-Forwarded-For is believed (addresses, networks)
    trusted_proxies: str = ""

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
        redis_url = (env.get("REDIS_URL") or "").strip() or None
        if redis_url is not None:
            try:
                parse_redis_url(redis_url)
            except ValueError as exc:
                raise ConfigurationError("REDIS_URL", str(exc)) from None
        timeout_ms = _positive_int(
            "BFF_TIMEOUT_MS", env.get("BFF_TIMEOUT_MS", str(DEFAULT_TIMEOUT_MS)), _MAX_TIMEOUT_MS
        )
        http_client = env.get("BFF_HTTP_CLIENT", "pyreqwest").strip()
        if http_client not in HTTP_CLIENTS:
            raise ConfigurationError(
                "BFF_HTTP_CLIENT", f"{http_client!r} is not one of {', '.join(HTTP_CLIENTS)}"
            )
        cache = _on_off("BFF_CACHE", env.get("BFF_CACHE", "on"))
        namespace = env.get("BFF_CACHE_NAMESPACE", "").strip() or None
        if namespace is not None and not _NAMESPACE.fullmatch(namespace):
            raise ConfigurationError(
                "BFF_CACHE_NAMESPACE",
                f"{namespace!r} must be 1 to 64 letters, digits, '.', '_' or '-'",
            )
        max_entries = _positive_int(
            "BFF_CACHE_MAX_ENTRIES", env.get("BFF_CACHE_MAX_ENTRIES", "10000"), 10_000_000
        )
        near_ms = _int_between(
            "BFF_CACHE_NEAR_MS",
            env.get("BFF_CACHE_NEAR_MS", str(DEFAULT_CACHE_NEAR_MS)),
            0,
            _MAX_CACHE_NEAR_MS,
        )
        admin_token = env.get("BFF_ADMIN_TOKEN") or None
        if admin_token is not None and len(admin_token) < 16:
            raise ConfigurationError("BFF_ADMIN_TOKEN", "must be at least 16 characters")
        breakers = _on_off("BFF_BREAKER", env.get("BFF_BREAKER", "on"))
        slowest_first = _on_off("BFF_SLOWEST_FIRST", env.get("BFF_SLOWEST_FIRST", "on"))
        breaker_failures = (
            _positive_int("BFF_BREAKER_FAILURES", env["BFF_BREAKER_FAILURES"], 1000)
            if env.get("BFF_BREAKER_FAILURES")
            else None
        )
        breaker_reset = (
            _positive_int("BFF_BREAKER_RESET_MS", env["BFF_BREAKER_RESET_MS"], _MAX_TIMEOUT_MS)
            / 1000
            if env.get("BFF_BREAKER_RESET_MS")
            else None
        )
        budget_text = env.get("BFF_RETRY_BUDGET_PERCENT", "10").strip()
        try:
            retry_budget_percent = int(budget_text)
        except ValueError:
            raise ConfigurationError(
                "BFF_RETRY_BUDGET_PERCENT", f"{budget_text!r} is not a whole number"
            ) from None
        if not 0 <= retry_budget_percent <= 100:
            raise ConfigurationError(
                "BFF_RETRY_BUDGET_PERCENT", f"{retry_budget_percent} is not between 0 and 100"
            )
        drain_ms = _int_between(
            "BFF_DRAIN_MS", env.get("BFF_DRAIN_MS", str(DEFAULT_DRAIN_MS)), 0, _MAX_TIMEOUT_MS
        )
        return cls(
            services=services,
            redis_url=redis_url,
            timeout=timeout_ms / 1000,
            http_client=http_client,
            cache=cache,
            cache_namespace=namespace,
            cache_max_entries=max_entries,
            cache_near=near_ms / 1000 or None,
            admin_token=admin_token,
            breakers=breakers,
            breaker_failures=breaker_failures,
            breaker_reset=breaker_reset,
            retry_budget_percent=retry_budget_percent,
            slowest_first=slowest_first,
            drain=drain_ms / 1000,
            stream_heartbeat=_int_between(
                "BFF_STREAM_HEARTBEAT_MS",
                env.get("BFF_STREAM_HEARTBEAT_MS", str(DEFAULT_STREAM_HEARTBEAT_MS)),
                100,
                _MAX_TIMEOUT_MS,
            )
            / 1000,
            metrics=_on_off("BFF_METRICS", env.get("BFF_METRICS", "on")),
            log_format=_log_format(env.get("BFF_LOG_FORMAT", "text")),
            access_log=_on_off("BFF_ACCESS_LOG", env.get("BFF_ACCESS_LOG", "off")),
            cors_origins=env.get("BFF_CORS_ORIGINS", ""),
            cors_credentials=_on_off(
                "BFF_CORS_CREDENTIALS", env.get("BFF_CORS_CREDENTIALS", "off")
            ),
            compression=_on_off("BFF_COMPRESSION", env.get("BFF_COMPRESSION", "on")),
            compression_min_bytes=_int_between(
                "BFF_COMPRESSION_MIN_BYTES",
                env.get("BFF_COMPRESSION_MIN_BYTES", "512"),
                0,
                10_000_000,
            ),
            otel={k: v for k, v in env.items() if k.startswith("OTEL_")},
            jwt=JwtSettings.from_env(env),
            rate_limit=_limits("BFF_RATE_LIMIT", env.get("BFF_RATE_LIMIT", "")),
            rate_limit_by_aggregate={
                name.removeprefix(_RATE_LIMIT_PREFIX).lower(): _limits(name, value)
                for name, value in env.items()
                if name.startswith(_RATE_LIMIT_PREFIX)
                and name not in _RATE_LIMIT_SETTINGS
                and value.strip()
            },
            rate_limit_fail_closed=_open_closed(
                "BFF_RATE_LIMIT_FAIL", env.get("BFF_RATE_LIMIT_FAIL", "open")
            ),
            trusted_proxies=_networks("BFF_TRUSTED_PROXIES", env.get("BFF_TRUSTED_PROXIES", "")),
        )


_RATE_LIMIT_PREFIX = "BFF_RATE_LIMIT_"
_RATE_LIMIT_SETTINGS = frozenset({"BFF_RATE_LIMIT_FAIL"})


def _limits(variable: str, value: str) -> str:
    value = value.strip()
    if value:
        try:
            parse_limits(value)
        except ValueError as exc:
            raise ConfigurationError(variable, str(exc)) from None
    return value


def _networks(variable: str, value: str) -> str:
    try:
        parse_networks(value)
    except ValueError as exc:
        raise ConfigurationError(variable, str(exc)) from None
    return value.strip()


def _open_closed(variable: str, value: str) -> bool:
    word = value.strip().lower()
    if word not in ("open", "closed"):
        raise ConfigurationError(variable, f"{value!r} is not 'open' or 'closed'")
    return word == "closed"


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


def _positive_int(variable: str, value: str, maximum: int) -> int:
    return _int_between(variable, value, 1, maximum)


def _int_between(variable: str, value: str, minimum: int, maximum: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigurationError(variable, f"{value!r} is not a whole number") from None
    if not minimum <= number <= maximum:
        raise ConfigurationError(variable, f"{number} is not between {minimum} and {maximum}")
    return number


def _on_off(variable: str, value: str) -> bool:
    word = value.strip().lower()
    if word not in ("on", "off"):
        raise ConfigurationError(variable, f"{value!r} is not 'on' or 'off'")
    return word == "on"


def _log_format(value: str) -> Literal["text", "json"]:
    word = value.strip().lower()
    if word == "text":
        return "text"
    if word == "json":
        return "json"
    raise ConfigurationError("BFF_LOG_FORMAT", f"{value!r} is not 'text' or 'json'")
