"""The ``bff-demo`` launcher's supervision, with demo-upstreams standing in for the BFFs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from demo_upstreams._demo import (
    _base_url,
    _Child,
    _interrupt,
    _run,
    _sigterm_interrupts,
    identity_env,
)

from ._procs import free_port, is_listening, wait_healthy


def _upstreams(port: int) -> list[str]:
    return [sys.executable, "-m", "demo_upstreams", "--port", str(port), "--latency-scale", "0"]


@pytest.mark.process
def test_child_failing_at_start_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    children = [
        _Child("demo-upstreams", _upstreams(port), f"http://127.0.0.1:{port}"),
        _Child("web-bff", [sys.executable, "-c", "raise SystemExit(3)"], "http://127.0.0.1:1"),
    ]
    assert _run(children, banner="READY", startup_timeout=20) == 1
    captured = capsys.readouterr()
    assert "web-bff exited with code 3" in captured.err
    assert "READY" not in captured.out
    assert not is_listening(port)


@pytest.mark.process
def test_child_dying_later_stops_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    survivor, doomed = free_port(), free_port()
    # Serves normally, then dies on its own a second after it began to listen (counted from
    # then, not from its start: on a busy machine its imports alone can take a second).
    dies_later = [
        sys.executable,
        "-c",
        textwrap.dedent(
            f"""
            import os, socket, threading, time
            def die_once_serving():
                while True:
                    with socket.socket() as sock:
                        if sock.connect_ex(("127.0.0.1", {doomed})) == 0:
                            break
                    time.sleep(0.02)
                time.sleep(1.0)
                os._exit(4)
            threading.Thread(target=die_once_serving, daemon=True).start()
            from demo_upstreams.__main__ import main
            main(["--port", "{doomed}"])
            """
        ),
    ]
    children = [
        _Child("demo-upstreams", _upstreams(survivor), f"http://127.0.0.1:{survivor}"),
        _Child("mobile-bff", dies_later, f"http://127.0.0.1:{doomed}"),
    ]
    assert _run(children, banner="READY", startup_timeout=20) == 1
    captured = capsys.readouterr()
    assert "READY" in captured.out
    assert "mobile-bff exited with code 4" in captured.err
    assert not is_listening(survivor)


def test_the_first_stop_signal_ignores_the_next_ones_before_clean_up_starts() -> None:
    # No window between the interrupt and the clean-up's own deferral of signals, in which a
    # second signal could abort the clean-up (seen with `uv run` forwarding SIGTERM).
    # And none after the clean-up either: a late repeat must not kill the exiting program.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _sigterm_interrupts():
            assert signal.getsignal(signal.SIGTERM) is _interrupt
            with pytest.raises(KeyboardInterrupt):
                _interrupt(signal.SIGTERM, None)
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_without_a_stop_signal_the_handlers_are_restored() -> None:
    # From Python's own Ctrl-C handler, whatever this process inherited (a shell's background
    # job starts with SIGINT ignored).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _sigterm_interrupts():
            assert signal.getsignal(signal.SIGINT) is _interrupt
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


@pytest.mark.process
@pytest.mark.parametrize("signals", [1, 20], ids=["once", "repeated"])
def test_sigterm_stops_everything_cleanly(signals: int) -> None:
    port = free_port()
    script = textwrap.dedent(
        f"""
        import sys
        from demo_upstreams._demo import _Child, _supervise
        child = _Child("demo-upstreams", {_upstreams(port)!r}, "http://127.0.0.1:{port}")
        sys.exit(_supervise([child], banner="READY"))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        lines = iter(proc.stdout.readline, "")
        assert any(line.strip() == "READY" for line in lines)
        wait_healthy(f"http://127.0.0.1:{port}")
        for _ in range(signals):  # e.g. `uv run` forwarding the SIGTERM it got too
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.002)  # spread out, so some land while the first is being handled
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert not is_listening(port)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8001"),
        ("0.0.0.0", "http://127.0.0.1:8001"),
        ("::1", "http://[::1]:8001"),
        ("localhost", "http://localhost:8001"),
    ],
)
def test_base_url(host: str, url: str) -> None:
    assert _base_url(host, 8001) == url


def test_a_childs_own_environment_is_laid_over_the_shared_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # How bff-demo --identity gives each BFF its own BFF_JWT_AUDIENCE.
    port = free_port()
    reads_env = [
        sys.executable,
        "-c",
        "import os, sys; sys.exit(int(os.environ['SHARED']) + int(os.environ['OWN']))",
    ]
    children = [
        _Child("demo-upstreams", _upstreams(port), f"http://127.0.0.1:{port}"),
        _Child("web-bff", reads_env, "http://127.0.0.1:1", {"OWN": "5", "SHARED": "1"}),
    ]
    env = {**os.environ, "SHARED": "2", "OWN": "0"}
    assert _run(children, env=env, banner="READY", startup_timeout=20) == 1
    assert "web-bff exited with code 6" in capsys.readouterr().err
    assert not is_listening(port)


def test_identity_env_points_a_bff_at_the_demo_provider() -> None:
    env = identity_env("http://127.0.0.1:9000", "mobile-bff")
    assert env == {
        "BFF_JWT_JWKS_URL": "http://127.0.0.1:9000/identity/.well-known/jwks.json",
        "BFF_JWT_ISSUER": "urn:bff-demo:identity",
        "BFF_JWT_AUDIENCE": "mobile-bff",
        "BFF_JWT_TYPE": "at+jwt",
    }
