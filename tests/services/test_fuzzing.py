"""Contract fuzzing: schemathesis, all its checks (the positive-data one included), against
each BFF's own OpenAPI document, on real processes, the write routes included: identity on (a
real JWKS endpoint on loopback), every request with a valid token of the BFF's audience, and
every write with a fresh Idempotency-Key (tests/services/schemathesis_hooks.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.identity_provider import (
    ISSUER,
    MOBILE_AUDIENCE,
    WEB_AUDIENCE,
    IdentityProvider,
    run_identity_provider,
)
from tests.processes import run_service
from tests.services.conftest import Upstreams, bff_env

pytestmark = pytest.mark.fuzzing

TOKEN = "fuzzing-admin-token-0123456789-abcdefgh"
REPO = Path(__file__).resolve().parents[2]
AUDIENCES = {"web_bff": WEB_AUDIENCE, "mobile_bff": MOBILE_AUDIENCE}


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    with run_identity_provider() as running:
        running.add_key("ES256", "ec-1")
        yield running


@pytest.mark.timeout(300)
@pytest.mark.parametrize("module", ["web_bff", "mobile_bff"])
def test_schemathesis_finds_nothing(
    upstreams: Upstreams, provider: IdentityProvider, module: str
) -> None:
    audience = AUDIENCES[module]
    env = bff_env(
        upstreams.url,
        BFF_CACHE="on",
        BFF_ADMIN_TOKEN=TOKEN,
        BFF_JWT_JWKS_URL=provider.url,
        BFF_JWT_ISSUER=ISSUER,
        BFF_JWT_AUDIENCE=audience,
    )
    # A user of its own: the writes fill a cart and place orders of it.
    token = provider.mint(
        "ec-1", subject=f"fuzzer-{uuid.uuid4().hex[:8]}", audience=audience, lifetime=900
    )
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
                "--no-color",
                # The admin endpoint takes free query parameters (the tags to drop): any value
                # is a string to it, so the negative-data check's numbers and nulls, sent as
                # "5" and "null", are valid strings there; and its token is not a user's. Its
                # documented answers are covered by tests/services/test_cache.py.
                "--exclude-path",
                "/admin/cache/invalidate",
            ],
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": "tests.services.schemathesis_hooks",
                "BFF_FUZZ_TOKEN": token,
                "PYTHONPATH": str(REPO),
            },
            capture_output=True,
            text=True,
            timeout=280,
        )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    # The writes were carried out, not all refused: the token and the keys got them through.
    orders = [r for r in upstreams.requests("orders") if r["method"] == "POST"]
    assert orders, "no order reached the orders service"
    assert "Schema validation skipped" not in done.stdout, done.stdout[-4000:]
