"""Contract fuzzing: schemathesis, all its checks (the positive-data one included), against
each BFF's own OpenAPI document, on real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import run_service
from tests.services.conftest import Upstreams, bff_env

pytestmark = pytest.mark.fuzzing

TOKEN = "fuzzing-admin-token-0123456789-abcdefgh"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("module", ["web_bff", "mobile_bff"])
def test_schemathesis_finds_nothing(upstreams: Upstreams, module: str) -> None:
    env = bff_env(upstreams.url, BFF_CACHE="on", BFF_ADMIN_TOKEN=TOKEN)
    with run_service(module, env=env) as bff:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{bff.url}/schema/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "60",
                "--generation-deterministic",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--no-color",
                # The admin endpoint takes free query parameters (the tags to drop): any value
                # is a string to it, so the negative-data check's numbers and nulls, sent as
                # "5" and "null", are valid strings there. Its documented answers are covered
                # by tests/services/test_cache.py.
                "--exclude-path",
                "/admin/cache/invalidate",
            ],
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": "tests.services.schemathesis_hooks",
                "PYTHONPATH": str(REPO),
            },
            capture_output=True,
            text=True,
            timeout=280,
        )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "Schema validation skipped" not in done.stdout, done.stdout[-4000:]
