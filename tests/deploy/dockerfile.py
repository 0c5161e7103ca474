"""deploy/Dockerfile read with dockerfile-parse, and its build stage run outside a container.

No container engine may run here, so the image is never built in the suite. What can be
checked without one is checked for real: the build stage's own COPY and RUN instructions are
carried out on the build context that .dockerignore lets through, with /src and /app mapped to
temporary directories, and the virtual environment they produce is then run as the image's
ENTRYPOINT and CMD would run it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)


def parse(path: Path = DOCKERFILE) -> Dockerfile:
    parser = DockerfileParser(str(path))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "COMMENT":
            continue
        if instruction == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name, words[0]))
        elif not stages and instruction == "ARG":
            key, _, default = value.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append((instruction, value))
    return Dockerfile(global_args, stages)


def json_words(value: str) -> list[str]:
    """An exec-form instruction's words (``["a", "b"]``)."""
    import json

    words = json.loads(value)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), value
    return words


def env_pairs(value: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(value))


def context_files(root: Path = REPO) -> list[str]:
    """The files ``docker build <root>`` would send: what git knows, less .dockerignore's."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    patterns = [
        line.strip()
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [path for path in listed if (root / path).is_file() and not _ignored(path, patterns)]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern decides; a pattern matching a directory
    matches everything in it; ``!`` re-includes."""
    ignored = False
    parents = [path] + ["/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 1)]
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in parents):
            ignored = not negated
    return ignored


def uv_binary() -> str:
    """The uv running this suite (``uv run`` says which in UV), else one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found is None:
        raise RuntimeError("uv not found: run the suite with ./run tests (it installs uv)")
    return found


def run_build_stage(service: str, workdir: Path) -> Path:
    """Carry out the build stage for ``service`` in ``workdir``; return where /app went."""
    dockerfile = parse()
    stage = dockerfile.stage("build")
    context, src, app, shims = (workdir / d for d in ("context", "src", "app", "shims"))
    for relative in context_files():
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target)
    shims.mkdir()
    # The image installs uv from the package index; here the suite's own uv stands in.
    (shims / "uv").symlink_to(uv_binary())
    mapped = {"/src": str(src), "/app": str(app)}

    def mapping(text: str) -> str:
        for inside, outside in mapped.items():
            text = re.sub(rf"{re.escape(inside)}(?=/|\b|$)", outside, text)
        return text

    env = {
        "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/root"),
        "SERVICE": service,
    }
    cwd = workdir
    for instruction, value in stage.instructions:
        if instruction == "ARG":
            key, _, default = value.partition("=")
            env.setdefault(key, default)
        elif instruction == "ENV":
            env.update({key: mapping(val) for key, val in env_pairs(value).items()})
        elif instruction == "WORKDIR":
            cwd = Path(mapping(value))
            cwd.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, destination = shlex.split(value)
            target = cwd / destination
            for source in sources:
                origin = context / source
                if origin.is_dir():
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                else:
                    folder = target if destination.endswith("/") else target.parent
                    folder.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(
                        origin, folder / origin.name if destination.endswith("/") else target
                    )
        elif instruction == "RUN":
            command = re.sub(r"^(--mount=\S+\s+)+", "", value.strip())
            if re.match(r"pip install .*\buv==", command):
                continue
            done = subprocess.run(
                ["sh", "-c", mapping(command)], cwd=cwd, env=env, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise AssertionError(f"RUN {command!r} failed:\n{done.stdout}\n{done.stderr}")
        else:
            raise AssertionError(f"the build stage emulation knows no {instruction}")
    # The final stage copies /app alone: nothing may point back into the sources.
    shutil.rmtree(src)
    shutil.rmtree(context)
    return app


def site_packages(app: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return app / "lib" / version / "site-packages"
