"""The documentation's configuration table is the settings' rows, not a hand-kept copy."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from bff_core import GatewaySettings

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docs" / "scripts" / "configuration.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_configuration", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_page_shows_the_settings_table() -> None:
    problem = _script().stale()
    assert problem is None, problem


def test_every_variable_a_bff_reads_has_one_row() -> None:
    names = [row.name for row in _script().rows()]
    assert len(names) == len(set(names)), names
    from mobile_bff.app import SERVICE_URL_VARIABLES as MOBILE
    from web_bff.app import SERVICE_URL_VARIABLES as WEB

    for variables in (WEB, MOBILE):
        assert GatewaySettings.from_env(variables, {}).services.keys() == variables.keys()
        assert {row.name for row in variables.values()} <= set(names)
    assert {"REDIS_URL", "BFF_TIMEOUT_MS", "BFF_JWT_KID_COOLDOWN_S", "OTEL_*"} <= set(names)


def test_a_stale_table_names_the_command_that_rewrites_it(tmp_path: Path) -> None:
    script = _script()
    page = tmp_path / "configuration.md"
    page.write_text(
        SCRIPT.parent.parent.joinpath("reference", "configuration.md")
        .read_text(encoding="utf-8")
        .replace("| `BFF_TIMEOUT_MS` | deadline", "| `BFF_TIMEOUT_MS` | the deadline"),
        encoding="utf-8",
    )
    problem = script.stale(page)
    assert problem is not None
    assert "BFF_TIMEOUT_MS" in problem
    assert "run `uv run python docs/scripts/configuration.py`" in problem
