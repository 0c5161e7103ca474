"""The Go baseline (``baselines/go_gateway``), built by the benchmark with the machine's Go.

Go comes from Debian's ``golang-go``; the program uses the standard library only, so the build
needs no network. It is built once per source version, into the system's temporary folder,
and where ``go`` is missing the benchmark runs without that contestant and says so.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ._procs import REPO_ROOT, warn

SOURCE = REPO_ROOT / "bench" / "baselines" / "go_gateway"
#: A build longer than this is a broken toolchain, not a slow one.
BUILD_TIMEOUT_S = 300


def go_version() -> str | None:
    """``go version``'s words, or ``None`` when Go is not installed."""
    go = shutil.which("go")
    if go is None:
        return None
    done = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or None


@functools.cache
def go_binary() -> Path | None:
    """The built baseline, or ``None`` (with a warning) when Go is missing or the build fails."""
    go = shutil.which("go")
    if go is None:
        warn("  go not found (Debian's golang-go): the go baseline is left out")
        return None
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(SOURCE.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    built = Path(tempfile.gettempdir()) / "bff-bench-go" / digest.hexdigest()
    binary = built / "go_gateway"
    if binary.exists():
        return binary
    built.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GOCACHE": str(built.parent / "cache"),
        "GOPATH": str(built.parent / "path"),
        "GOPROXY": "off",  # nothing to download: the standard library only
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }
    warn("  building the go baseline")
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=SOURCE,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if done.returncode != 0:
        warn(f"  the go baseline did not build, left out:\n{done.stderr.strip()}")
        return None
    return binary
