"""Both BFFs refuse to start on bad configuration, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.processes import free_port


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


@pytest.mark.parametrize("module", ["web_bff", "mobile_bff"])
def test_bad_command_line_is_refused(module: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", module, "--port", "not-a-port"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 2
    assert "--port" in completed.stderr
