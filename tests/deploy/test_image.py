"""The image of each BFF (deploy/Dockerfile): linted, read, and its build stage carried out
without a container engine; what it produces runs as the image would run it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.deploy.dockerfile import (
    DOCKERFILE,
    REPO,
    context_files,
    env_pairs,
    json_words,
    parse,
    run_build_stage,
    site_packages,
)
from tests.processes import free_port, wait_for

pytestmark = pytest.mark.deploy

BFFS = {"web-bff": "web_bff", "mobile-bff": "mobile_bff"}
DEV_TOOLS = ("pytest", "mypy", "ruff", "uv", "hadolint", "kubernetes_validate", "fastapi")


def console_scripts(service: str) -> dict[str, str]:
    folder = "packages/core" if service == "bff-core" else f"services/{service}"
    project = tomllib.loads((REPO / folder / "pyproject.toml").read_text())
    scripts: dict[str, str] = project["project"]["scripts"]
    return scripts


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install uv\nUSER root\n")
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run([str(hadolint), str(bad)], capture_output=True, text=True)
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # latest


def test_the_image_is_multi_stage_on_a_slim_base_given_as_a_build_argument() -> None:
    dockerfile = parse()
    assert [stage.name for stage in dockerfile.stages] == ["build", None]
    assert "slim" in dockerfile.global_args["PYTHON_IMAGE"]
    for stage in dockerfile.stages:
        assert stage.base == "${PYTHON_IMAGE}"
    # The final stage takes the virtual environment alone, and installs nothing itself.
    final = dockerfile.final
    assert final.values("COPY") == ["--from=build /app /app"]
    assert not any("pip" in run or "uv " in run for run in final.values("RUN"))


def test_the_image_runs_as_a_user_of_its_own_and_stops_as_the_drain_expects() -> None:
    final = parse().final
    (user,) = final.values("USER")
    uid, _, gid = user.partition(":")
    assert int(uid) >= 10000 and int(gid) >= 10000  # numeric: runAsNonRoot can check it
    assert final.values("STOPSIGNAL") == ["SIGTERM"]
    (exposed,) = final.values("EXPOSE")
    (healthcheck,) = final.values("HEALTHCHECK")
    assert f"127.0.0.1:{exposed}/healthz" in healthcheck
    command = json_words(final.values("CMD")[0])
    assert command[command.index("--port") + 1] == exposed
    assert command[command.index("--workers") + 1] == "auto"


@pytest.mark.parametrize("service", BFFS)
def test_the_image_command_is_the_services_console_script(service: str) -> None:
    final = parse().final
    assert json_words(final.values("ENTRYPOINT")[0]) == ["service"]
    link = next(run for run in parse().stage("build").values("RUN") if "ln -s" in run)
    assert link == 'ln -s "${SERVICE}" /app/bin/service'
    assert service in console_scripts(service)
    # Every flag of CMD is one the console script takes.
    flags = [word for word in json_words(final.values("CMD")[0]) if word.startswith("--")]
    module = BFFS[service]
    usage = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in flags:
        assert flag in usage, (flag, usage)


def test_the_build_context_holds_the_workspace_and_nothing_else() -> None:
    files = context_files()
    assert "uv.lock" in files
    assert "packages/core/src/bff_core/__init__.py" in files
    assert "packages/upstreams/src/bff_upstreams/__init__.py" in files
    assert "services/web-bff/src/web_bff/app.py" in files
    for path in files:
        assert not path.startswith(("tests/", "bench/", "docs/", ".git/", "deploy/")), path
        assert "__pycache__" not in path and not path.endswith(".pyc"), path
    # Every file a COPY names is in the context.
    for stage in parse().stages:
        for copy in stage.values("COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _ = copy.split()
            for source in sources:
                assert any(f == source or f.startswith(source.rstrip("/") + "/") for f in files)


@pytest.mark.parametrize("service", BFFS)
def test_the_build_stage_makes_a_virtual_environment_that_serves_and_drains(
    service: str, tmp_path: Path
) -> None:
    app = run_build_stage(service, tmp_path)
    installed = {p.name.split("-")[0].lower() for p in site_packages(app).glob("*.dist-info")}
    module = BFFS[service]
    assert {module, "bff_core", "bff_upstreams", "litestar", "granian", "redis"} <= installed
    others = {m for s, m in BFFS.items() if s != service} | {"demo_upstreams"}
    assert not installed & others, installed & others
    assert not installed & set(DEV_TOOLS), installed & set(DEV_TOOLS)
    # Installed, not linked to sources that the image does not have.
    for pth in site_packages(app).glob("*.pth"):
        assert str(tmp_path) not in pth.read_text(), pth.read_text()
    assert os.readlink(app / "bin" / "service") == service

    final = parse().final
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    for value in final.values("ENV"):
        for key, val in env_pairs(value).items():
            env[key] = val.replace("/app", str(app)).replace("${PATH}", os.environ["PATH"])
    port = free_port()
    command = json_words(final.values("ENTRYPOINT")[0]) + json_words(final.values("CMD")[0])
    command = [
        {"0.0.0.0": "127.0.0.1", "8080": str(port)}.get(word, word)  # loopback only here
        for word in command
    ]
    env.update(
        dict.fromkeys(
            [f"{name}_SERVICE_URL" for name in ("PRODUCT", "INVENTORY", "PRICING", "REVIEWS")],
            "http://127.0.0.1:9",
        ),
        BFF_DRAIN_MS="300",
    )
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    try:

        def healthy() -> bool:
            assert server.poll() is None, server.communicate()[0].decode()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_for(healthy, timeout=30)
        (healthcheck,) = final.values("HEALTHCHECK")
        probe = json_words(re.sub(r"^.*?CMD\s+", "", healthcheck, flags=re.DOTALL))
        probe = [word.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for word in probe]
        assert subprocess.run(probe, env=env, timeout=10).returncode == 0
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    server.communicate()
