"""Gateway settings read from the environment, checked before anything starts.

Every setting is declared once, as a row: its environment variable, what it accepts (its kind),
its default and its meaning, the sentence the documentation shows. The rows of the gateway's
own settings are the metadata of :class:`GatewaySettings`' fields (and :class:`JwtSettings`'),
the way pydantic-settings declares a field with its alias and description; a service declares
the rows of its upstreams' URL variables (:meth:`Setting.url`). From the rows come:

- the parser, :meth:`GatewaySettings.from_env`: each row reads its variable;
- the start-up errors: a row's kind says what is wrong with a value, as a
  :class:`~bff_core.ConfigurationError` naming the variable (``serve`` prints it and exits 2);
- the documentation's configuration table, :func:`markdown_table` (written into
  ``docs/reference/configuration.md`` by ``docs/scripts/configuration.py``).

A row with a default reads that default's text when its variable is unset, so a field's default
and the documented default are one value. A row without one (``None``) is unset when its
variable is unset or blank.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Generic, Literal, TypeVar, overload
from urllib.parse import urlsplit

from ._cache import DEFAULT_NEAR_HOLD
from ._errors import ConfigurationError
from ._guards import (
    DEFAULT_ALGORITHMS,
    DEFAULT_IPV6_PREFIX,
    TokenType,
    check_algorithms,
    check_key_set_url,
    parse_limits,
    parse_networks,
)
from ._redis import parse_redis_url, with_ca_file
from ._telemetry import METRICS_DIR_VARIABLE
from ._transports import HTTP_CLIENTS, HttpClient

__all__ = [
    "OPS_HOST_VARIABLE",
    "GatewaySettings",
    "JwtSettings",
    "Setting",
    "gateway_settings",
    "markdown_table",
]

T = TypeVar("T")
Word = TypeVar("Word", bound=str)

DEFAULT_UPSTREAM_URL = "http://127.0.0.1:9000"
DEFAULT_TIMEOUT_MS = 1000
_MAX_TIMEOUT_MS = 10 * 60 * 1000

_NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,64}")
DEFAULT_CACHE_NEAR_MS = round(DEFAULT_NEAR_HOLD * 1000)
DEFAULT_DRAIN_MS = 5000
DEFAULT_STREAM_HEARTBEAT_MS = 1000
_MAX_CACHE_NEAR_MS = 60_000

#: The key of a field's row in its metadata.
_ROW = "bff_core.setting"
#: The key of a field whose value is a group of settings (the dataclass of their rows).
_GROUP = "bff_core.settings_group"

# The decision records, relative to the generated page (docs/reference/configuration.md).
_DECISIONS = "../decisions"


# -- kinds: what a setting accepts ------------------------------------------------------------


class _Kind(Generic[T]):
    """What a setting accepts: how its text is read, and how the documentation says it."""

    #: the documentation's "value" column (Markdown)
    expects: str = ""

    def parse(self, name: str, text: str) -> T:
        """The value of ``text``; :class:`ConfigurationError` naming ``name`` otherwise."""
        raise NotImplementedError


class _Words(_Kind[T]):
    """A setting's own vocabulary (``on``/``off``, ``open``/``closed``), in any case."""

    def __init__(self, words: Mapping[str, T]) -> None:
        self._words = dict(words)
        quoted = [f"`{word}`" for word in self._words]
        self.expects = " or ".join([", ".join(quoted[:-1]), quoted[-1]])

    def parse(self, name: str, text: str) -> T:
        word = text.strip().lower()
        if word not in self._words:
            quoted = [repr(word) for word in self._words]
            raise ConfigurationError(
                name, f"{text!r} is not {' or '.join([', '.join(quoted[:-1]), quoted[-1]])}"
            )
        return self._words[word]


_ON_OFF = _Words({"on": True, "off": False})


class _OneOf(_Kind[Word]):
    """One of the names of a registry (the HTTP clients), exactly as it spells them."""

    def __init__(self, names: Iterable[Word]) -> None:
        self._names = tuple(names)
        self.expects = "one of " + ", ".join(f"`{name}`" for name in self._names)

    def parse(self, name: str, text: str) -> Word:
        given = text.strip()
        for known in self._names:
            if given == known:
                return known
        raise ConfigurationError(name, f"{given!r} is not one of {', '.join(self._names)}")


class _WholeNumber(_Kind[int]):
    def __init__(self, minimum: int, maximum: int, *, unit: str = "") -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.expects = f"{unit}{', ' if unit else ''}{minimum} to {maximum}"

    def parse(self, name: str, text: str) -> int:
        try:
            number = int(text.strip())
        except ValueError:
            raise ConfigurationError(name, f"{text!r} is not a whole number") from None
        if not self.minimum <= number <= self.maximum:
            raise ConfigurationError(
                name, f"{number} is not between {self.minimum} and {self.maximum}"
            )
        return number


class _Milliseconds(_Kind[float]):
    """Milliseconds in the environment, seconds in the settings."""

    def __init__(self, minimum: int, maximum: int) -> None:
        self._number = _WholeNumber(minimum, maximum, unit="milliseconds")
        self.expects = self._number.expects

    def parse(self, name: str, text: str) -> float:
        return self._number.parse(name, text) / 1000


class _MillisecondsOrOff(_Kind[float | None]):
    """Like :class:`_Milliseconds`, and ``0`` turns the thing off (``None``)."""

    def __init__(self, maximum: int) -> None:
        self._number = _WholeNumber(0, maximum, unit="milliseconds")
        self.expects = f"milliseconds, 0 (off) to {maximum}"

    def parse(self, name: str, text: str) -> float | None:
        return self._number.parse(name, text) / 1000 or None


class _HttpUrl(_Kind[str]):
    """A base URL: http(s), a host, no query or fragment; a trailing ``/`` is dropped."""

    expects = "http(s) URL"

    def parse(self, name: str, text: str) -> str:
        value = text.strip()
        try:
            parts = urlsplit(value)
            port = parts.port  # raises ValueError for a non-numeric or out-of-range port
        except ValueError as exc:
            raise ConfigurationError(name, f"{value!r} is not a valid URL ({exc})") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                name, f"{value!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:9000"
            )
        if parts.query or parts.fragment:
            raise ConfigurationError(name, f"{value!r} must not have a query or a fragment")
        del port
        return value.rstrip("/")


class _KeySetUrl(_HttpUrl):
    """The identity provider's key set: https, or plain http from a loopback host only."""

    expects = "https URL (http only to a loopback host)"

    def parse(self, name: str, text: str) -> str:
        value = super().parse(name, text)
        try:
            check_key_set_url(value)
        except ValueError as exc:
            raise ConfigurationError(name, str(exc)) from None
        return value


class _Checked(_Kind[str]):
    """Text that ``check`` accepts (its :class:`ValueError` says why not); blank is unchecked."""

    def __init__(self, check: Callable[[str], object], expects: str, *, strip: bool = True) -> None:
        self._check = check
        self._strip = strip
        self.expects = expects

    def parse(self, name: str, text: str) -> str:
        value = text.strip() if self._strip else text
        if value.strip():
            try:
                self._check(value)
            except ValueError as exc:
                raise ConfigurationError(name, str(exc)) from None
        return value


class _Text(_Kind[str]):
    """Text taken as it is, checked by whoever uses it (the CORS origins: the edge)."""

    def __init__(self, expects: str) -> None:
        self.expects = expects

    def parse(self, name: str, text: str) -> str:
        return text


class _Algorithms(_Kind[tuple[str, ...]]):
    expects = "`alg` names, comma-separated"

    def parse(self, name: str, text: str) -> tuple[str, ...]:
        algorithms = tuple(a.strip() for a in text.split(",") if a.strip())
        try:
            check_algorithms(algorithms)
        except ValueError as exc:
            raise ConfigurationError(name, str(exc)) from None
        return algorithms


class _Family(_Kind[Mapping[str, str]]):
    """Every variable whose name starts with a prefix (its row's name up to ``<`` or ``*``)."""

    def __init__(
        self, expects: str, *, each: _Kind[str] | None = None, by_suffix: bool = False
    ) -> None:
        self._each = each
        #: keyed by the names' suffix in lower case, blank variables left out (an aggregate's
        #: limits); otherwise by the names, as they are (OpenTelemetry's variables)
        self._by_suffix = by_suffix
        self.expects = expects

    def parse(self, name: str, text: str) -> Mapping[str, str]:
        raise TypeError(f"{name} names a family of variables: read it with Setting.read")

    def gather(self, prefix: str, variables: Mapping[str, str]) -> Mapping[str, str]:
        if not self._by_suffix:
            return dict(variables)
        each = self._each
        return {
            name.removeprefix(prefix).lower(): value if each is None else each.parse(name, value)
            for name, value in variables.items()
            if value.strip()
        }


def _namespace(text: str) -> None:
    if not _NAMESPACE.fullmatch(text):
        raise ValueError(f"{text!r} must be 1 to 64 letters, digits, '.', '_' or '-'")


def _readable_file(text: str) -> None:
    try:
        with open(text, "rb"):
            pass
    except OSError as exc:
        raise ValueError(f"{text!r} cannot be read ({exc.strerror or exc})") from None


#: An admin token shorter than this is refused at start-up: it guards cache invalidation on
#: every instance, so it must not be guessable (32 hex characters are 128 bits).
_MIN_TOKEN_LENGTH = 32


def _token(text: str) -> None:
    # The message never shows the token: start-up errors end up in logs.
    if len(text) < _MIN_TOKEN_LENGTH:
        raise ValueError(
            f"must be at least {_MIN_TOKEN_LENGTH} characters (it has {len(text)}), e.g. "
            "`openssl rand -hex 32`"
        )


# -- the row ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    """One environment variable: its name, what it accepts, its default, and what it means.

    A gateway's own settings are rows of :class:`GatewaySettings`; a service declares the rows
    of its upstreams' URL variables with :meth:`Setting.url` and gives them to
    :meth:`GatewaySettings.from_env`. The documentation's configuration table is made of rows
    (``docs/scripts/configuration.py``).

    Attributes:
        name: the environment variable; a family of variables ends in ``<...>`` or ``*``
            (``BFF_RATE_LIMIT_<AGGREGATE>``, ``OTEL_*``).
        default: the text read when the variable is unset; ``None``: the setting is unset
            when its variable is unset or blank.
        meaning: what it does, one sentence in Markdown: the documentation's text.
        shown_default: the documentation's default when the text alone does not say it
            (``"the service's name"``).
    """

    name: str
    kind: _Kind[T] = field(repr=False)
    default: str | None
    meaning: str
    shown_default: str | None = None

    @classmethod
    def url(cls, name: str, meaning: str, *, default: str = DEFAULT_UPSTREAM_URL) -> Setting[str]:
        """The base URL of an upstream service, e.g. ``Setting.url("PRODUCT_SERVICE_URL",
        "base URL of the product service")``."""
        return Setting(name, _HttpUrl(), default, meaning)

    @property
    def prefix(self) -> str | None:
        """The names' common start, for a family of variables; ``None`` for one variable."""
        for mark in ("<", "*"):
            if mark in self.name:
                return self.name.partition(mark)[0]
        return None

    @property
    def expects(self) -> str:
        """What the variable accepts, in Markdown (the documentation's "value" column)."""
        return self.kind.expects

    @property
    def documented_default(self) -> str:
        """The default, in Markdown (the documentation's "default" column)."""
        if self.shown_default is not None:
            return self.shown_default
        if not self.default:
            return "unset"
        return f"`{self.default}`"

    def parse(self, text: str) -> T:
        """``text`` as this setting's value; :class:`ConfigurationError` naming it otherwise."""
        return self.kind.parse(self.name, text)

    def read(self, environ: Mapping[str, str], *, declared: Set[str] = frozenset()) -> T | None:
        """This setting's value in ``environ``. A family reads every variable of its prefix
        but those ``declared`` as settings of their own (``BFF_RATE_LIMIT_FAIL``)."""
        if isinstance(self.kind, _Family):
            prefix = self.prefix or self.name
            variables = {
                name: value
                for name, value in environ.items()
                if name.startswith(prefix) and name not in declared
            }
            return self.kind.gather(prefix, variables)  # type: ignore[return-value]
        text = environ.get(self.name)
        if self.default is None:
            return None if text is None or not text.strip() else self.parse(text)
        return self.parse(self.default if text is None else text)


# The fields that declare a row. Like dataclasses.field, they return the field's type, so mypy
# checks a row's kind against the field it fills.


@overload
def _setting(
    name: str, kind: _Kind[T], default: str, meaning: str, *, shown: str | None = None
) -> T: ...
@overload
def _setting(
    name: str, kind: _Kind[T], default: None, meaning: str, *, shown: str | None = None
) -> T | None: ...
def _setting(
    name: str, kind: _Kind[T], default: str | None, meaning: str, *, shown: str | None = None
) -> Any:
    row = Setting(name, kind, default, meaning, shown)
    return field(default=None if default is None else row.parse(default), metadata={_ROW: row})


def _family(name: str, kind: _Family, meaning: str, *, shown: str | None = None) -> Any:
    """A family of variables (``BFF_RATE_LIMIT_<AGGREGATE>``): a mapping, empty by default."""
    return field(default_factory=dict, metadata={_ROW: Setting(name, kind, None, meaning, shown)})


def _required(name: str, kind: _Kind[T], meaning: str, *, shown: str) -> Any:
    """A setting without a default, read by its dataclass' own ``from_env``."""
    return field(metadata={_ROW: Setting(name, kind, None, meaning, shown)})


def _own_rows(settings: type[Any]) -> Iterator[tuple[str, Setting[Any]]]:
    """(field, row) of a settings dataclass' fields that declare a row, in their order."""
    for f in fields(settings):
        if _ROW in f.metadata:
            yield f.name, f.metadata[_ROW]


def _table(settings: type[Any]) -> Iterator[Setting[Any]]:
    """The rows of a settings dataclass, in its fields' order, groups expanded in place."""
    for f in fields(settings):
        if _ROW in f.metadata:
            yield f.metadata[_ROW]
        elif _GROUP in f.metadata:
            yield from _table(f.metadata[_GROUP])


# -- the settings -----------------------------------------------------------------------------

_NO_IDENTITY = "unset: no identity"
_JWT_TRIO = "`BFF_JWT_JWKS_URL`, `BFF_JWT_ISSUER` and `BFF_JWT_AUDIENCE`"


@dataclass(frozen=True, slots=True, kw_only=True)
class JwtSettings:
    """How bearer tokens are verified (see ``bff_core._guards._identity``)."""

    jwks_url: str = _required(
        "BFF_JWT_JWKS_URL",
        _KeySetUrl(),
        "identity: bearer JWTs are verified against the provider's key set (JWKS) at this URL, "
        "fetched without following redirects; "
        f"{_JWT_TRIO}: all three or none "
        f"([decision record]({_DECISIONS}/0009-identity-and-rate-limits.md))",
        shown=_NO_IDENTITY,
    )
    issuer: str = _required(
        "BFF_JWT_ISSUER", _Text("text"), "identity: the `iss` a token must have", shown=_NO_IDENTITY
    )
    audience: str = _required(
        "BFF_JWT_AUDIENCE",
        _Text("text"),
        "identity: the `aud` a token must name, this BFF's own (so a mobile token is refused "
        "by web-bff)",
        shown=_NO_IDENTITY,
    )
    algorithms: tuple[str, ...] = _setting(
        "BFF_JWT_ALGORITHMS",
        _Algorithms(),
        ",".join(DEFAULT_ALGORITHMS),
        "the accepted `alg` values, asymmetric only (`none` and HMAC are refused)",
    )
    typ: TokenType = _setting(  # noqa: RUF009
        "BFF_JWT_TYPE",
        _Words[TokenType]({"jwt": "JWT", "at+jwt": "at+jwt"}),
        "jwt",
        "the `typ` of the provider's access tokens (RFC 8725, section 3.11): `jwt` accepts a "
        "token without `typ` or with `JWT` or `at+jwt`, and refuses other kinds of JWT "
        "(`secevent+jwt`, `logout+jwt`...); `at+jwt`: the provider issues RFC 9068 access "
        "tokens, and a token that does not say `at+jwt` is refused",
    )
    leeway: float = _setting(
        "BFF_JWT_LEEWAY_S",
        _WholeNumber(0, 300, unit="seconds"),
        "30",
        "clock skew allowed on `exp`/`nbf`",
    )
    refresh_every: float = _setting(
        "BFF_JWT_JWKS_REFRESH_S",
        _WholeNumber(1, 86_400, unit="seconds"),
        "300",
        "seconds between key-set refreshes",
    )
    kid_cooldown: float = _setting(
        "BFF_JWT_KID_COOLDOWN_S",
        _WholeNumber(0, 3600, unit="seconds"),
        "30",
        "at most one fetch per this many seconds for tokens naming an unknown `kid`",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JwtSettings | None:
        """The identity settings, or ``None`` when none of the three that turn it on is set."""
        rows = dict(_own_rows(cls))
        needed = {f.name: rows[f.name] for f in fields(cls) if f.default is MISSING}
        given = {row.name: env.get(row.name, "").strip() for row in needed.values()}
        if not any(given.values()):
            return None
        for name, value in given.items():
            if not value:
                set_ = ", ".join(n for n, v in given.items() if v)
                raise ConfigurationError(
                    name, f"is needed with {set_}: identity needs the key set, issuer and audience"
                )
        values: dict[str, Any] = {
            attribute: row.parse(given[row.name]) if attribute in needed else row.read(env)
            for attribute, row in rows.items()
        }
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """Everything a gateway needs from its environment.

    Each field but ``services`` declares its environment variable, default and meaning (see
    :mod:`bff_core._settings`); ``docs/reference/configuration.md`` lists them.

    Attributes:
        services: base URL of every upstream service, by service name (no trailing slash).
        redis_url: the shared Redis (one server, or a cluster: ``redis+cluster://...``), or
            ``None`` for in-process state only; read by :meth:`from_env` with
            ``BFF_REDIS_CA_FILE`` in it (its ``ssl_ca_certs``).
        timeout: deadline of a whole aggregation, in seconds.
        http_client: the upstream client: ``pyreqwest`` (fastest; a request abandoned before
            the deadline ends at the deadline) or ``aiohttp`` (a cancelled request's
            connection is closed at once).
    """

    services: Mapping[str, str]
    redis_url: str | None = _setting(
        "REDIS_URL",
        _Checked(parse_redis_url, "Redis URL"),
        None,
        "shared Redis for the cache and the circuit breakers' state, so every instance of a "
        "deployment shares them: `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS), "
        "`unix:///path`, or a **Redis Cluster**: "
        "`redis+cluster://[user:password@]host:port[,host:port…]` (`rediss+cluster://` with "
        "TLS; any of its nodes, the others are discovered); unset: an in-process cache and "
        "breakers per process. Redis is a trust boundary: give it a password "
        "(`redis://:password@…`, percent-encoded) and, off a private network, TLS",
    )
    #: the certificate authority of a TLS Redis; from_env adds it to redis_url (ssl_ca_certs)
    redis_ca_file: str | None = _setting(
        "BFF_REDIS_CA_FILE",
        _Checked(_readable_file, "a readable PEM file"),
        None,
        "with a TLS `REDIS_URL` (`rediss://`, `rediss+cluster://`): the certificate authority "
        "(PEM) that signed Redis's certificate, when the system does not trust it (a private "
        "CA); Redis's certificate and name are verified either way",
        shown="unset: the system's authorities",
    )
    timeout: float = _setting(
        "BFF_TIMEOUT_MS",
        _Milliseconds(1, _MAX_TIMEOUT_MS),
        str(DEFAULT_TIMEOUT_MS),
        "deadline of a whole aggregation, in milliseconds",
    )
    # Ruff cannot tell the alias is a Literal of strings (immutable), as it does for the others.
    http_client: HttpClient = _setting(  # noqa: RUF009
        "BFF_HTTP_CLIENT",
        _OneOf(HTTP_CLIENTS),
        "pyreqwest",
        "upstream HTTP client: `pyreqwest` (fastest) or `aiohttp` (closes a cancelled request's "
        "connection at once instead of at the deadline; "
        f"[decision record]({_DECISIONS}/0002-hot-path.md))",
    )
    #: cache upstream parts and whole answers (in Redis when redis_url is set)
    cache: bool = _setting("BFF_CACHE", _ON_OFF, "on", "cache upstream parts and whole answers")
    #: the deployment's key prefix in a shared Redis (None: the service's name)
    cache_namespace: str | None = _setting(
        "BFF_CACHE_NAMESPACE",
        _Checked(_namespace, "1 to 64 letters, digits, `.`, `_` or `-`"),
        None,
        "the deployment's key prefix in a shared Redis (letters, digits, `.`, `_`, `-`)",
        shown="the service's name",
    )
    cache_max_entries: int = _setting(
        "BFF_CACHE_MAX_ENTRIES",
        _WholeNumber(1, 10_000_000, unit="entries"),
        "10000",
        "bound of the in-process cache, or of the near cache in front of Redis (either is also "
        "bounded to 64 MiB)",
    )
    #: with Redis, how long (seconds) an instance may serve a fresh entry from its own memory
    #: before asking Redis again; None: no near cache
    cache_near: float | None = _setting(
        "BFF_CACHE_NEAR_MS",
        _MillisecondsOrOff(_MAX_CACHE_NEAR_MS),
        str(DEFAULT_CACHE_NEAR_MS),
        "with `REDIS_URL`: how long an instance may serve a fresh entry from its own memory "
        "before asking Redis again, so a hot key costs no round trip (instances may disagree "
        "that long at most; `0`: no near cache)",
    )
    #: bearer token of the admin endpoints; None: they are disabled
    admin_token: str | None = _setting(
        "BFF_ADMIN_TOKEN",
        _Checked(_token, f"{_MIN_TOKEN_LENGTH} characters or more", strip=False),
        None,
        f"bearer token of `POST /admin/cache/invalidate` ({_MIN_TOKEN_LENGTH}+ characters, "
        "e.g. `openssl rand -hex 32`); unset: the endpoint is off",
    )
    #: the operations listener's port; None: /metrics and /admin/* on the serving port
    ops_port: int | None = _setting(
        "BFF_OPS_PORT",
        _WholeNumber(1, 65535, unit="TCP port"),
        None,
        "the operations listener: `GET /metrics` and `POST /admin/*` answer on this port only "
        "(on the serving address's host; with `--workers N`, every worker listens on it), and "
        "404 on the serving port; `/healthz` and `/readyz` stay on the serving port. Keep it "
        "off the load balancer "
        f"([decision record]({_DECISIONS}/0016-operations-listener.md))",
        shown="unset: on the serving port",
    )
    breakers: bool = _setting(
        "BFF_BREAKER", _ON_OFF, "on", "a circuit breaker per upstream service"
    )
    #: None: the policy's
    breaker_failures: int | None = _setting(
        "BFF_BREAKER_FAILURES",
        _WholeNumber(1, 1000),
        None,
        "the fewest failed requests (timeouts, connection failures, 5xx) within a breaker's "
        "window that open it, besides the minimum requests and the failure share below "
        f"([decision record]({_DECISIONS}/0015-failure-rate-breakers.md))",
        shown="as declared: `5`",
    )
    #: None: the policy's
    breaker_min_calls: int | None = _setting(
        "BFF_BREAKER_MIN_CALLS",
        _WholeNumber(1, 100_000, unit="requests"),
        None,
        "the fewest requests to an upstream within a breaker's window for it to judge their "
        "failure share at all (each request counts once, whatever its retries)",
        shown="as declared: `20`",
    )
    #: None: the policy's
    breaker_failure_percent: int | None = _setting(
        "BFF_BREAKER_FAILURE_PERCENT",
        _WholeNumber(1, 100, unit="percent"),
        None,
        "the share of an upstream's requests within a breaker's window that failed at or "
        "above which the breaker opens: one client repeating a failing request cannot open "
        "it while the others are answered",
        shown="as declared: `50`",
    )
    #: seconds; None: the policy's
    breaker_window: float | None = _setting(
        "BFF_BREAKER_WINDOW_MS",
        _Milliseconds(100, _MAX_TIMEOUT_MS),
        None,
        "how far back a breaker counts requests and failures (a rolling window of ten buckets)",
        shown="as declared: `10000`",
    )
    #: seconds; None: the policy's
    breaker_reset: float | None = _setting(
        "BFF_BREAKER_RESET_MS",
        _Milliseconds(1, _MAX_TIMEOUT_MS),
        None,
        "how long an open breaker refuses before one trial request",
        shown="as declared: `10000`",
    )
    retry_budget_percent: int = _setting(
        "BFF_RETRY_BUDGET_PERCENT",
        _WholeNumber(0, 100, unit="percent"),
        "10",
        "retries and hedges allowed per upstream, in percent of its reads (a batch request: one "
        "per id; 0: none)",
    )
    batch: bool = _setting(
        "BFF_BATCH",
        _ON_OFF,
        "on",
        "cross-request batching of sources that declare a batch endpoint: of the single-id "
        "reads that in-flight aggregates need from one source at the same moment, the first "
        "goes at once and the others follow it as one `?ids=` request (per user, for a source "
        "given the caller's identity); `off`: one request per read "
        f"([decision record]({_DECISIONS}/0018-cross-request-batching.md))",
    )
    batch_window_us: int = _setting(
        "BFF_BATCH_WINDOW_US",
        _WholeNumber(0, 100_000, unit="microseconds"),
        "0",
        "how long a batch gathers reads before it goes out: `0` until the event loop has run "
        "once more (what arrived together; the first read does not wait); more makes every "
        "read wait that long, trading latency for fewer, larger upstream requests",
    )
    loop_first: bool = _setting(
        "BFF_LOOP_FIRST",
        _ON_OFF,
        "on",
        "while a worker uses (nearly) a whole core, its other threads (granian's HTTP I/O, the "
        "upstream client's) stop preempting its event loop (Linux `SCHED_BATCH`, any process "
        "may set it for its own threads), and get their usual policy back once it has room: "
        "more aggregates per second at saturation, nothing changed below it; `off`: never "
        f"([decision record]({_DECISIONS}/0019-event-loop-first-under-saturation.md))",
    )
    slowest_first: bool = _setting(
        "BFF_SLOWEST_FIRST",
        _ON_OFF,
        "on",
        "the parts that start together start slowest first, by their recent durations (the "
        "answer waits for the slowest); `off`: in the order they are declared",
    )
    #: seconds
    stream_heartbeat: float = _setting(
        "BFF_STREAM_HEARTBEAT_MS",
        _Milliseconds(100, _MAX_TIMEOUT_MS),
        str(DEFAULT_STREAM_HEARTBEAT_MS),
        "how often a streamed answer with nothing to say sends a heartbeat; it is also how a "
        "client gone is noticed (granian sees a closed connection only when it writes)",
    )
    #: seconds
    drain: float = _setting(
        "BFF_DRAIN_MS",
        _Milliseconds(0, _MAX_TIMEOUT_MS),
        str(DEFAULT_DRAIN_MS),
        "after SIGTERM: how long the instance keeps serving while `/readyz` answers 503, so a "
        "load balancer or Kubernetes stops sending to it; then it finishes the requests in "
        "flight and exits 0. SIGINT (Ctrl-C) skips it, and so does a second SIGTERM "
        f"([decision record]({_DECISIONS}/0005-draining.md))",
    )
    cors_origins: str = _setting(
        "BFF_CORS_ORIGINS",
        _Text("origins, comma-separated"),
        "",
        "the origins whose pages may call this BFF from a browser, comma-separated and "
        "explicit (`https://shop.example,http://localhost:5173`; no `*`, no path): their "
        "answers say `Access-Control-Allow-Origin` and expose `ETag`, `Server-Timing`, "
        "`X-Request-ID`, `Retry-After`, `RateLimit`, `RateLimit-Policy`, `WWW-Authenticate`; "
        "preflights for `GET`/`HEAD` are answered 204, others 403 problem+json naming what is "
        "refused; every answer says `Vary: Origin`",
        shown="unset: no cross-origin access",
    )
    cors_credentials: bool = _setting(
        "BFF_CORS_CREDENTIALS",
        _ON_OFF,
        "off",
        "those pages may send cookies (`Access-Control-Allow-Credentials: true`)",
    )
    #: the BFF_JWT_* variables: bearer tokens verified against the identity provider's keys;
    #: None: no identity
    jwt: JwtSettings | None = field(default=None, metadata={_GROUP: JwtSettings})
    #: every client's limits (``limits`` notation), empty: none
    rate_limit: str = _setting(
        "BFF_RATE_LIMIT",
        _Checked(parse_limits, "limits, `;`-separated"),
        "",
        "every client's limits, `limits` notation: `50/second;1000/minute` (per verified "
        "subject, else per client address); counted in Redis with `REDIS_URL` (every instance "
        "together), else per process",
        shown="unset: none",
    )
    #: more limits for one aggregate's route, by aggregate name (lower case)
    rate_limit_by_aggregate: Mapping[str, str] = _family(
        "BFF_RATE_LIMIT_<AGGREGATE>",
        _Family(
            "limits, `;`-separated",
            each=_Checked(parse_limits, ""),
            by_suffix=True,
        ),
        "more limits for one aggregate's route, e.g. `BFF_RATE_LIMIT_WEB_PRODUCT_PAGE=20/second` "
        "(a name no aggregate has stops start-up)",
    )
    #: True: 503 when Redis cannot count
    rate_limit_fail_closed: bool = _setting(
        "BFF_RATE_LIMIT_FAIL",
        _Words({"open": False, "closed": True}),
        "open",
        "when Redis cannot count: `open` (serve, the log says so once) or `closed` (503 "
        "problem+json)",
    )
    trusted_proxies: str = _setting(
        "BFF_TRUSTED_PROXIES",
        _Checked(parse_networks, "addresses or networks, comma-separated"),
        "",
        "addresses or networks of the proxies (load balancers) whose `X-Forwarded-For` is "
        "believed, comma-separated (`10.0.0.0/8,127.0.0.1`); a client's address is then the "
        "right-most one that is not a trusted proxy (`Forwarded`'s `for=` when no "
        "`X-Forwarded-For` arrives; ports dropped). A forwarded header from a peer not listed "
        "is ignored, and logged once",
        shown="unset: the peer's address",
    )
    rate_limit_ipv6_prefix: int = _setting(
        "BFF_RATE_LIMIT_IPV6_PREFIX",
        _WholeNumber(32, 128, unit="bits"),
        str(DEFAULT_IPV6_PREFIX),
        "an IPv6 client without identity is counted by its network of this many bits (a /64 "
        "is one subscriber's link, any of whose addresses a host may use; `128`: each address "
        "alone); IPv4-mapped IPv6 addresses count as the IPv4 address",
    )
    compression: bool = _setting(
        "BFF_COMPRESSION",
        _ON_OFF,
        "on",
        "answers in `zstd`, `br` or `gzip` as the client's `Accept-Encoding` prefers (its "
        "q-values first, then that order); never a 304 or a streamed answer; "
        "`Vary: Accept-Encoding`",
    )
    compression_min_bytes: int = _setting(
        "BFF_COMPRESSION_MIN_BYTES",
        _WholeNumber(0, 10_000_000, unit="bytes"),
        "512",
        "smaller bodies are sent as they are (the phone's 275-byte product screen is)",
    )
    metrics: bool = _setting(
        "BFF_METRICS",
        _ON_OFF,
        "on",
        "Prometheus metrics at `GET /metrics` "
        f"([decision record]({_DECISIONS}/0007-observability.md))",
    )
    log_format: Literal["text", "json"] = _setting(
        "BFF_LOG_FORMAT",
        _Words[Literal["text", "json"]]({"text": "text", "json": "json"}),
        "text",
        "`text` (readable lines) or `json` (one object per line: what the images of `deploy/` use)",
    )
    access_log: bool = _setting(
        "BFF_ACCESS_LOG",
        _ON_OFF,
        "off",
        "one line per request with its route, status, duration, request id and each part's "
        "outcome, duration and cache result",
        shown="`off` (`on` in the Kubernetes overlays)",
    )
    #: the OTEL_* variables, as they are: OpenTelemetry's own configuration of tracing
    otel: Mapping[str, str] = _family(
        "OTEL_*",
        _Family("OpenTelemetry's"),
        "OpenTelemetry tracing, by its standard variables "
        "([OpenTelemetry's documentation]"
        "(https://opentelemetry.io/docs/languages/sdk-configuration/)): on when an OTLP/HTTP "
        "endpoint is named (`OTEL_EXPORTER_OTLP_ENDPOINT` or "
        "`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; spans to `<endpoint>/v1/traces`); "
        "`OTEL_SERVICE_NAME` default the BFF's name; `OTEL_TRACES_SAMPLER` default "
        "parent-based always-on (`traceidratio` with `OTEL_TRACES_SAMPLER_ARG=0.01` for 1 %)",
        shown="unset: off",
    )

    @classmethod
    def from_env(
        cls,
        service_variables: Mapping[str, str | Setting[str]],
        environ: Mapping[str, str] | None = None,
        *,
        default_upstream_url: str | None = None,
    ) -> GatewaySettings:
        """Read the settings; raise :class:`ConfigurationError` naming the first bad variable.

        Args:
            service_variables: service name -> the setting of its base URL
                (:meth:`Setting.url`), or just the environment variable's name, e.g.
                ``{"product": "PRODUCT_SERVICE_URL"}``.
            environ: the environment (``os.environ`` by default).
            default_upstream_url: the base URL of a service whose variable is unset
                (default: its setting's default, ``http://127.0.0.1:9000``).
        """
        env = os.environ if environ is None else environ
        services = {}
        for service, declared in service_variables.items():
            row = _service_url(service, declared)
            text = env.get(row.name, default_upstream_url or row.default or DEFAULT_UPSTREAM_URL)
            services[service] = row.parse(text)
        values: dict[str, Any] = {
            attribute: row.read(env, declared=_DECLARED) for attribute, row in _own_rows(cls)
        }
        if ca_file := values["redis_ca_file"]:
            url = values["redis_url"]
            if not url or not url.lower().startswith("rediss"):
                raise ConfigurationError(
                    "BFF_REDIS_CA_FILE",
                    "is for a Redis reached with TLS: REDIS_URL must be rediss:// or "
                    "rediss+cluster://",
                )
            if "ssl_ca_certs=" in url:
                raise ConfigurationError(
                    "BFF_REDIS_CA_FILE",
                    "REDIS_URL names a CA already (ssl_ca_certs): one or the other",
                )
            values["redis_url"] = with_ca_file(url, ca_file)
        return cls(services=services, jwt=JwtSettings.from_env(env), **values)


def _service_url(service: str, declared: str | Setting[str]) -> Setting[str]:
    if isinstance(declared, Setting):
        return declared
    return Setting.url(declared, f"base URL of the {service} service")


#: Read by the workers' metrics (``bff_core._metrics``), not a field: ``serve`` sets it.
_METRICS_DIR = Setting(
    METRICS_DIR_VARIABLE,
    _Text("a directory"),
    None,
    "where the worker processes of one server keep their metrics totals, which "
    "`GET /metrics` adds up; `--workers N` with N > 1 makes a fresh one for each start when it "
    "is unset",
)


#: The operations listener's host, which ``serve`` sets to its ``--host`` (not a field: the
#: application reads it where it starts the listener).
OPS_HOST_VARIABLE = "BFF_OPS_HOST"
_OPS_HOST = Setting(
    OPS_HOST_VARIABLE,
    _Text("a host name or address"),
    None,
    "the host the operations listener (`BFF_OPS_PORT`) listens on: `serve` sets it to its "
    "`--host`, the serving address's",
    "unset: `127.0.0.1`",
)


def gateway_settings() -> tuple[Setting[Any], ...]:
    """Every row of the gateway's own settings, in the documentation's order (the services'
    URL variables are their service's rows)."""
    return (*_table(GatewaySettings), _METRICS_DIR, _OPS_HOST)


_DECLARED = frozenset(row.name for row in gateway_settings())


def markdown_table(rows: Iterable[Setting[Any]]) -> str:
    """The documentation's configuration table of ``rows``, in Markdown."""
    lines = ["| variable | meaning | value | default |", "|---|---|---|---|"]
    for row in rows:
        cells = (f"`{row.name}`", row.meaning, row.expects, row.documented_default)
        for cell in cells:
            if "|" in cell or "\n" in cell:
                raise ValueError(f"{row.name}: a table cell cannot hold '|' or a line break")
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"
