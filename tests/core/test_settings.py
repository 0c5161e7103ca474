"""Configuration from the environment: defaults, and a clear error naming a bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from bff_core import ConfigurationError, GatewaySettings, Setting

VARIABLES = {"product": "PRODUCT_SERVICE_URL", "pricing": "PRICING_SERVICE_URL"}


def test_defaults() -> None:
    settings = GatewaySettings.from_env(VARIABLES, {})
    assert settings.services == {
        "product": "http://127.0.0.1:9000",
        "pricing": "http://127.0.0.1:9000",
    }
    assert settings.redis_url is None
    assert settings.timeout == 1.0


def test_values_are_read() -> None:
    settings = GatewaySettings.from_env(
        VARIABLES,
        {
            "PRODUCT_SERVICE_URL": "https://products.internal:8443/api/",
            "REDIS_URL": "redis://127.0.0.1:6380/1",
            "BFF_TIMEOUT_MS": "250",
        },
    )
    assert settings.services["product"] == "https://products.internal:8443/api"
    assert settings.redis_url == "redis://127.0.0.1:6380/1"
    assert settings.timeout == 0.25


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PRODUCT_SERVICE_URL", "not a url", "is not an http(s) URL"),
        ("PRODUCT_SERVICE_URL", "ftp://host", "is not an http(s) URL"),
        ("PRICING_SERVICE_URL", "http://", "is not an http(s) URL"),
        ("PRICING_SERVICE_URL", "http://host:99999", "is not a valid URL"),
        ("PRICING_SERVICE_URL", "http://host:port", "is not a valid URL"),
        ("PRODUCT_SERVICE_URL", "http://host/?x=1", "must not have a query"),
        ("BFF_TIMEOUT_MS", "fast", "is not a whole number"),
        ("BFF_TIMEOUT_MS", "1.5", "is not a whole number"),
        ("BFF_TIMEOUT_MS", "0", "is not between 1 and"),
        ("BFF_TIMEOUT_MS", "-5", "is not between 1 and"),
        ("REDIS_URL", "localhost:6379", "is not a Redis URL"),
        ("REDIS_URL", "http://127.0.0.1:6379", "is not a Redis URL"),
        ("REDIS_URL", "redis://127.0.0.1:port", "has an invalid port"),
        ("REDIS_URL", "redis+cluster://10.0.0.1", "'10.0.0.1' is not host:port"),
        ("REDIS_URL", "redis+cluster://10.0.0.1:7000,,10.0.0.2:7000", "'(empty)' is not"),
        ("REDIS_URL", "redis+cluster://10.0.0.1:70000", "is not host:port"),
        ("BFF_CACHE_NEAR_MS", "1s", "is not a whole number"),
        ("BFF_CACHE_NEAR_MS", "-1", "is not between 0 and 60000"),
        ("BFF_CACHE_NEAR_MS", "60001", "is not between 0 and 60000"),
        ("BFF_DRAIN_MS", "5s", "is not a whole number"),
        ("BFF_DRAIN_MS", "-1", "is not between 0 and"),
        ("BFF_CACHE", "yes", "is not 'on' or 'off'"),
        ("BFF_BREAKER", "disabled", "is not 'on' or 'off'"),
        ("BFF_SLOWEST_FIRST", "declared", "is not 'on' or 'off'"),
        ("BFF_BREAKER_FAILURES", "five", "is not a whole number"),
        ("BFF_BREAKER_FAILURES", "0", "is not between 1 and 1000"),
        ("BFF_BREAKER_RESET_MS", "10s", "is not a whole number"),
        ("BFF_BREAKER_RESET_MS", "-1", "is not between 1 and"),
        ("BFF_BREAKER_MIN_CALLS", "0", "is not between 1 and 100000"),
        ("BFF_BREAKER_MIN_CALLS", "twenty", "is not a whole number"),
        ("BFF_BREAKER_FAILURE_PERCENT", "0", "is not between 1 and 100"),
        ("BFF_BREAKER_FAILURE_PERCENT", "50%", "is not a whole number"),
        ("BFF_BREAKER_WINDOW_MS", "99", "is not between 100 and"),
        ("BFF_BREAKER_WINDOW_MS", "10s", "is not a whole number"),
        ("BFF_RETRY_BUDGET_PERCENT", "10%", "is not a whole number"),
        ("BFF_RETRY_BUDGET_PERCENT", "101", "is not between 0 and 100"),
        ("BFF_RETRY_BUDGET_PERCENT", "-1", "is not between 0 and 100"),
        ("BFF_RATE_LIMIT", "lots", "is not a list of limits like"),
        ("BFF_RATE_LIMIT", "50/fortnight", "is not a list of limits like"),
        ("BFF_RATE_LIMIT_WEB_PRODUCT_PAGE", "5 a second", "is not a list of limits"),
        ("BFF_RATE_LIMIT_FAIL", "maybe", "is not 'open' or 'closed'"),
        ("BFF_TRUSTED_PROXIES", "10.0.0.0/8, proxy", "'proxy' is not an IP address"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings.from_env(VARIABLES, {variable: value})
    assert caught.value.setting == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert message in str(caught.value)


def test_the_http_client_is_chosen_by_name() -> None:
    assert GatewaySettings.from_env(VARIABLES, {}).http_client == "pyreqwest"
    settings = GatewaySettings.from_env(VARIABLES, {"BFF_HTTP_CLIENT": "aiohttp"})
    assert settings.http_client == "aiohttp"
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings.from_env(VARIABLES, {"BFF_HTTP_CLIENT": "curl"})
    assert str(caught.value) == "BFF_HTTP_CLIENT: 'curl' is not one of pyreqwest, aiohttp"


def test_resilience_settings() -> None:
    defaults = GatewaySettings.from_env(VARIABLES, {})
    assert defaults.breakers is True
    assert (defaults.breaker_failures, defaults.breaker_reset) == (None, None)
    assert (defaults.breaker_min_calls, defaults.breaker_failure_percent) == (None, None)
    assert defaults.breaker_window is None
    assert defaults.retry_budget_percent == 10
    settings = GatewaySettings.from_env(
        VARIABLES,
        {
            "BFF_BREAKER": " OFF ",
            "BFF_BREAKER_FAILURES": "3",
            "BFF_BREAKER_RESET_MS": "2500",
            "BFF_BREAKER_MIN_CALLS": "40",
            "BFF_BREAKER_FAILURE_PERCENT": "75",
            "BFF_BREAKER_WINDOW_MS": "5000",
            "BFF_RETRY_BUDGET_PERCENT": "0",
        },
    )
    assert settings.breakers is False
    assert (settings.breaker_failures, settings.breaker_reset) == (3, 2.5)
    assert (settings.breaker_min_calls, settings.breaker_failure_percent) == (40, 75)
    assert settings.breaker_window == 5.0
    assert settings.retry_budget_percent == 0


def test_redis_one_server_or_a_cluster() -> None:
    from bff_core._redis import parse_redis_url

    one = parse_redis_url("rediss://user:secret@cache.internal:6380/2")
    assert (one.cluster, one.describe()) == (False, "redis")
    cluster = parse_redis_url("rediss+cluster://app:s%40cret@10.0.0.1:7000, 10.0.0.2:7001")
    assert cluster.cluster_nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert (cluster.username, cluster.password, cluster.tls) == ("app", "s@cret", True)
    assert cluster.describe() == "redis cluster"
    assert parse_redis_url("redis+cluster://[::1]:7000").cluster_nodes == (("::1", 7000),)
    settings = GatewaySettings.from_env(VARIABLES, {"REDIS_URL": "redis+cluster://h:7000"})
    assert settings.redis_url == "redis+cluster://h:7000"


def test_the_ca_of_a_tls_redis(tmp_path: Path) -> None:
    from bff_core._redis import parse_redis_url

    ca = tmp_path / "redis ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    for url in ("rediss://:pw@cache.internal:6380/0", "rediss+cluster://:pw@10.0.0.1:7000"):
        settings = GatewaySettings.from_env(
            VARIABLES, {"REDIS_URL": url, "BFF_REDIS_CA_FILE": str(ca)}
        )
        assert settings.redis_url is not None
        assert parse_redis_url(settings.redis_url).ca_file == str(ca)
        assert parse_redis_url(settings.redis_url).password == "pw"
    # Without TLS a CA means nothing: said at start-up, like a file that cannot be read.
    for env, message in [
        ({"REDIS_URL": "redis://cache.internal:6379/0"}, "must be rediss://"),
        ({}, "must be rediss://"),
        ({"REDIS_URL": "rediss://cache.internal:6380/0?ssl_ca_certs=/x"}, "one or the other"),
    ]:
        with pytest.raises(ConfigurationError, match=message) as raised:
            GatewaySettings.from_env(VARIABLES, {**env, "BFF_REDIS_CA_FILE": str(ca)})
        assert raised.value.setting == "BFF_REDIS_CA_FILE"
    with pytest.raises(ConfigurationError, match="cannot be read"):
        GatewaySettings.from_env(
            VARIABLES,
            {"REDIS_URL": "rediss://h:6380/0", "BFF_REDIS_CA_FILE": str(tmp_path / "none.pem")},
        )


def test_a_bad_redis_url_is_named_without_its_password() -> None:
    for url in ("redis://:hunter2@h:notaport/0", "redis+cluster://u:hunter2@h:1,nohost"):
        with pytest.raises(ConfigurationError) as raised:
            GatewaySettings.from_env(VARIABLES, {"REDIS_URL": url})
        assert "hunter2" not in str(raised.value)
        assert "***" in str(raised.value)


def test_the_start_order_setting() -> None:
    assert GatewaySettings.from_env(VARIABLES, {}).slowest_first is True
    off = GatewaySettings.from_env(VARIABLES, {"BFF_SLOWEST_FIRST": "off"})
    assert off.slowest_first is False


def test_the_drain_setting() -> None:
    assert GatewaySettings.from_env(VARIABLES, {}).drain == 5.0
    assert GatewaySettings.from_env(VARIABLES, {"BFF_DRAIN_MS": "0"}).drain == 0.0


def test_the_near_cache_setting() -> None:
    assert GatewaySettings.from_env(VARIABLES, {}).cache_near == 1.0
    assert GatewaySettings.from_env(VARIABLES, {"BFF_CACHE_NEAR_MS": "250"}).cache_near == 0.25
    assert GatewaySettings.from_env(VARIABLES, {"BFF_CACHE_NEAR_MS": "0"}).cache_near is None


JWT = {
    "BFF_JWT_JWKS_URL": "https://idp.example/.well-known/jwks.json",
    "BFF_JWT_ISSUER": "https://idp.example/",
    "BFF_JWT_AUDIENCE": "web-bff",
}


def test_identity_and_rate_limit_settings() -> None:
    settings = GatewaySettings.from_env(
        VARIABLES,
        {
            **JWT,
            "BFF_JWT_ALGORITHMS": "ES256, EdDSA",
            "BFF_RATE_LIMIT": "50/second;1000/minute",
            "BFF_RATE_LIMIT_WEB_PRODUCT_PAGE": "5/second",
            "BFF_RATE_LIMIT_FAIL": "closed",
            "BFF_TRUSTED_PROXIES": "10.0.0.0/8,::1",
        },
    )
    assert settings.jwt is not None
    assert settings.jwt.audience == "web-bff"
    assert settings.jwt.algorithms == ("ES256", "EdDSA")
    assert settings.rate_limit == "50/second;1000/minute"
    assert settings.rate_limit_by_aggregate == {"web_product_page": "5/second"}
    assert settings.rate_limit_fail_closed
    assert settings.rate_limit_ipv6_prefix == 64
    assert GatewaySettings.from_env(VARIABLES, {}).jwt is None
    assert (
        GatewaySettings.from_env(
            VARIABLES, {"BFF_RATE_LIMIT_IPV6_PREFIX": "56"}
        ).rate_limit_ipv6_prefix
        == 56
    )
    with pytest.raises(ConfigurationError, match="BFF_RATE_LIMIT_IPV6_PREFIX"):
        GatewaySettings.from_env(VARIABLES, {"BFF_RATE_LIMIT_IPV6_PREFIX": "12"})


@pytest.mark.parametrize("algorithms", ["HS256", "none", "RS256,HS512", " , "])
def test_only_asymmetric_jwt_algorithms_can_be_configured(algorithms: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings.from_env(VARIABLES, {**JWT, "BFF_JWT_ALGORITHMS": algorithms})
    assert caught.value.setting == "BFF_JWT_ALGORITHMS"
    assert "only asymmetric algorithms" in str(caught.value)


def test_identity_needs_all_three_of_its_settings() -> None:
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings.from_env(VARIABLES, {"BFF_JWT_ISSUER": "https://idp.example/"})
    assert caught.value.setting == "BFF_JWT_JWKS_URL"
    assert "is needed with BFF_JWT_ISSUER" in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings.from_env(VARIABLES, {**JWT, "BFF_JWT_JWKS_URL": "jwks.json"})
    assert caught.value.setting == "BFF_JWT_JWKS_URL"
    assert "is not an http(s) URL" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example/.well-known/jwks.json",
        "http://10.0.0.7:8080/jwks",
        "http://localhost.idp.example/jwks",
    ],
)
def test_the_key_set_cannot_be_fetched_in_clear_from_another_host(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings.from_env(VARIABLES, {**JWT, "BFF_JWT_JWKS_URL": url})
    assert caught.value.setting == "BFF_JWT_JWKS_URL"
    assert "https" in str(caught.value) and "loopback" in str(caught.value)


def test_the_key_set_may_come_over_https_or_from_a_loopback_host() -> None:
    for url in (
        "https://idp.example/.well-known/jwks.json",
        "http://127.0.0.1:8080/jwks",
        "http://localhost:8080/jwks",
        "http://[::1]:8080/jwks",
    ):
        settings = GatewaySettings.from_env(VARIABLES, {**JWT, "BFF_JWT_JWKS_URL": url})
        assert settings.jwt is not None and settings.jwt.jwks_url == url


def test_the_token_type_setting() -> None:
    def token_type(env: dict[str, str]) -> str:
        settings = GatewaySettings.from_env(VARIABLES, {**JWT, **env})
        assert settings.jwt is not None
        return settings.jwt.typ

    assert token_type({}) == "JWT"
    assert token_type({"BFF_JWT_TYPE": "at+jwt"}) == "at+jwt"
    assert token_type({"BFF_JWT_TYPE": "AT+JWT"}) == "at+jwt"
    with pytest.raises(ConfigurationError) as caught:
        token_type({"BFF_JWT_TYPE": "id_token"})
    assert caught.value.setting == "BFF_JWT_TYPE"


def test_each_default_is_declared_once() -> None:
    # A field's default is its row's default text, read: constructing the settings in code
    # and reading an empty environment agree.
    from dataclasses import replace

    assert GatewaySettings(services={}) == replace(GatewaySettings.from_env({}, {}), services={})


def test_a_service_declares_its_url_variable_as_a_setting() -> None:
    row = Setting.url("SEARCH_SERVICE_URL", "base URL of the search service")
    variables = {"search": row}
    assert GatewaySettings.from_env(variables, {}).services == {"search": "http://127.0.0.1:9000"}
    found = GatewaySettings.from_env(variables, {"SEARCH_SERVICE_URL": "http://search:80/"})
    assert found.services == {"search": "http://search:80"}
    moved = GatewaySettings.from_env(variables, {}, default_upstream_url="http://up:1")
    assert moved.services == {"search": "http://up:1"}
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings.from_env(variables, {"SEARCH_SERVICE_URL": "search"})
    assert str(caught.value).startswith("SEARCH_SERVICE_URL: 'search' is not an http(s) URL")
    assert (row.expects, row.documented_default) == ("http(s) URL", "`http://127.0.0.1:9000`")


def test_opentelemetry_variables_are_passed_on_as_they_are() -> None:
    env = {"OTEL_SERVICE_NAME": "shop", "OTEL_TRACES_EXPORTER": "", "BFF_OTEL": "x"}
    otel = GatewaySettings.from_env(VARIABLES, env).otel
    assert otel == {"OTEL_SERVICE_NAME": "shop", "OTEL_TRACES_EXPORTER": ""}


def test_an_unset_setting_may_be_blank() -> None:
    blank = GatewaySettings.from_env(
        VARIABLES, {"REDIS_URL": " ", "BFF_CACHE_NAMESPACE": "", "BFF_BREAKER_FAILURES": ""}
    )
    assert (blank.redis_url, blank.cache_namespace, blank.breaker_failures) == (None, None, None)
    # A setting with a default is read as given: blank is not its default.
    with pytest.raises(ConfigurationError, match="BFF_CACHE: '' is not 'on' or 'off'"):
        GatewaySettings.from_env(VARIABLES, {"BFF_CACHE": ""})


def test_the_documentation_table_is_made_of_the_rows() -> None:
    from bff_core._settings import gateway_settings, markdown_table

    rows = gateway_settings()
    table = markdown_table(rows).splitlines()
    assert table[0] == "| variable | meaning | value | default |"
    assert len(table) == 2 + len(rows)
    assert (
        "| `BFF_TIMEOUT_MS` | deadline of a whole aggregation, in milliseconds "
        "| milliseconds, 1 to 600000 | `1000` |"
    ) in table
    assert "| `BFF_CACHE` | cache upstream parts and whole answers | `on` or `off` | `on` |" in (
        table
    )
    with pytest.raises(ValueError, match=r"cannot hold '\|'"):
        markdown_table([Setting.url("A_URL", "one | two")])
