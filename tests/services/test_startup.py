"""Both BFFs refuse to start on bad configuration, naming the variable."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
from bff_core.litestar import GatewayPlugin

from tests.processes import free_port, run_service

pytestmark = pytest.mark.process


@pytest.mark.parametrize("module", ["web_bff", "mobile_bff"])
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PRODUCT_SERVICE_URL", "not-a-url"),
        ("REVIEWS_SERVICE_URL", "ftp://127.0.0.1:9000"),
        ("INVENTORY_SERVICE_URL", "http://127.0.0.1:port"),
        ("BFF_TIMEOUT_MS", "soon"),
        ("BFF_TIMEOUT_MS", "0"),
        ("REDIS_URL", "127.0.0.1:6379"),
        ("BFF_HTTP_CLIENT", "requests"),
        ("BFF_BREAKER_FAILURES", "many"),
        ("BFF_RETRY_BUDGET_PERCENT", "200"),
        ("BFF_RATE_LIMIT", "50 per fortnight"),
        ("BFF_OPS_PORT", "ops"),
        ("BFF_OPS_PORT", "70000"),
    ],
)
def test_bad_configuration_stops_start_up_naming_the_variable(
    module: str, variable: str, value: str
) -> None:
    env = {**os.environ, variable: value}
    completed = subprocess.run(
        [sys.executable, "-m", module, "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 2
    assert f"configuration error: {variable}: " in completed.stderr
    assert value in completed.stderr


def test_a_rate_limit_for_an_aggregate_the_bff_lacks_stops_start_up() -> None:
    env = {**os.environ, "BFF_RATE_LIMIT_NO_SUCH_PAGE": "5/second"}
    completed = subprocess.run(
        [sys.executable, "-m", "web_bff", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 2
    assert (
        "configuration error: BFF_RATE_LIMIT_NO_SUCH_PAGE: no aggregate or mutation is named "
        "'no_such_page' (their names: web_cart_line, web_cart_page, web_category_page, "
        "web_home_page, web_place_order, web_product_page, web_write_review)"
    ) in completed.stderr


def test_a_key_set_in_clear_from_another_host_stops_start_up() -> None:
    url = "http://idp.example/.well-known/jwks.json"
    env = {
        **os.environ,
        "BFF_JWT_JWKS_URL": url,
        "BFF_JWT_ISSUER": "https://idp.example/",
        "BFF_JWT_AUDIENCE": "web-bff",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "web_bff", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 2
    assert f"configuration error: BFF_JWT_JWKS_URL: {url!r}: the key set must come over https" in (
        completed.stderr
    )


@pytest.mark.parametrize("module", ["web_bff", "mobile_bff"])
@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--port", "not-a-port"], "--port"),
        (["--workers", "0"], "--workers"),
        (["--workers", "many"], "--workers"),
    ],
)
def test_bad_command_line_is_refused(module: str, args: list[str], named: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 2
    assert named in completed.stderr


def test_workers_auto_starts_one_per_core_it_may_use() -> None:
    from bff_core._cpus import workers_for_cpu_limit

    expected = workers_for_cpu_limit()
    with run_service("web_bff", ["--workers", "auto"], env={"BFF_CACHE": "off"}) as bff:
        assert bff.log().count("Spawning worker-") == expected


@pytest.mark.parametrize("module", ["web_bff", "mobile_bff"])
def test_the_event_loop_goes_first_under_saturation_unless_told_not_to(module: str) -> None:
    create_app = importlib.import_module(module).create_app
    assert create_app({}).plugins.get(GatewayPlugin).loop_first is not None
    assert create_app({"BFF_LOOP_FIRST": "off"}).plugins.get(GatewayPlugin).loop_first is None


@pytest.mark.parametrize("module", ["web_bff", "mobile_bff"])
def test_the_environment_tunes_the_declared_breakers(module: str) -> None:
    create_app = importlib.import_module(module).create_app
    declared = create_app({}).state.gateway.upstream_status()
    assert {s.breaker for s in declared.values()} == {"closed"}
    assert {(s.opens_after, s.reset_timeout, s.budget) for s in declared.values()} == {
        (5, 10.0, 10.0)
    }
    assert {(s.min_calls, s.opens_at_rate, s.window) for s in declared.values()} == {
        (20, 0.5, 10.0)
    }
    tuned = create_app(
        {
            "BFF_BREAKER_FAILURES": "2",
            "BFF_BREAKER_RESET_MS": "1500",
            "BFF_BREAKER_MIN_CALLS": "8",
            "BFF_BREAKER_FAILURE_PERCENT": "80",
            "BFF_BREAKER_WINDOW_MS": "3000",
        }
    ).state.gateway.upstream_status()
    assert {(s.opens_after, s.reset_timeout) for s in tuned.values()} == {(2, 1.5)}
    assert {(s.min_calls, s.opens_at_rate, s.window) for s in tuned.values()} == {(8, 0.8, 3.0)}
    off = create_app(
        {"BFF_BREAKER": "off", "BFF_RETRY_BUDGET_PERCENT": "0"}
    ).state.gateway.upstream_status()
    assert {(s.breaker, s.opens_after, s.budget) for s in off.values()} == {("none", None, 0.0)}


@pytest.mark.parametrize("module", ["web_bff", "mobile_bff"])
def test_an_admin_token_under_32_characters_stops_start_up_without_showing_it(
    module: str,
) -> None:
    token = "x" * 31
    env = {**os.environ, "BFF_ADMIN_TOKEN": token}
    completed = subprocess.run(
        [sys.executable, "-m", module, "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 2
    assert "configuration error: BFF_ADMIN_TOKEN: must be at least 32 characters" in (
        completed.stderr
    )
    assert token not in completed.stderr
