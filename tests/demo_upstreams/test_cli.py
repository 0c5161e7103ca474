"""The command line: ``--fault`` syntax and the real ``python -m demo_upstreams``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest
from demo_upstreams import Fault, parse_fault_flags
from demo_upstreams.__main__ import main

from ._procs import free_port, get, is_listening, wait_healthy


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], {}),
        (["reviews:status=503"], {"reviews": Fault(status=503)}),
        (
            ["pricing:latency_ms=300,rate=0.5"],
            {"pricing": Fault(latency_ms=300, rate=0.5)},
        ),
        (["product:hang"], {"product": Fault(hang=True)}),
        (["inventory:drop=true,count=2"], {"inventory": Fault(drop=True, count=2)}),
        (["reviews:malformed=false, wrong_shape = 1"], {"reviews": Fault(wrong_shape=True)}),
        (["product:huge_bytes=1000000"], {"product": Fault(huge_bytes=1_000_000)}),
        # Repeated flags for one service merge, the later value winning.
        (
            ["pricing:status=503", "pricing:rate=0.25,status=500", "reviews:latency_ms=1.5"],
            {"pricing": Fault(status=500, rate=0.25), "reviews": Fault(latency_ms=1.5)},
        ),
    ],
)
def test_parse_fault_flags(flags: list[str], expected: dict[str, Fault]) -> None:
    assert parse_fault_flags(flags) == expected


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("reviews", "SERVICE:KEY=VALUE"),
        ("reviews:", "SERVICE:KEY=VALUE"),
        ("shipping:status=503", "unknown service 'shipping'"),
        ("reviews:=503", "empty field name"),
        ("reviews:explode=1", "unknown field 'explode'"),
        ("reviews:status=200", "status"),
        ("reviews:status=abc", "status"),
        ("reviews:rate=1.5", "rate"),
        ("reviews:latency_ms=-5", "latency_ms"),
        ("reviews:hang=maybe", "hang"),
        ("reviews:count=0", "count"),
    ],
)
def test_bad_fault_flags(flag: str, message: str) -> None:
    with pytest.raises(ValueError, match="--fault") as excinfo:
        parse_fault_flags([flag])
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["--fault", "reviews:status=200"],
        ["--fault", "nope:hang"],
        ["--latency-scale", "-1"],
        ["--latency-scale", "fast"],
        ["--pricing-latency-ms", "-3"],
        ["--recommendations-latency-ms", "-3"],
        ["--fault", "category:ids"],
        ["--port", "70000"],
    ],
)
def test_bad_flags_exit_with_a_message(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "demo-upstreams: error:" in err
    assert argv[0] in err or argv[1] in err


@pytest.mark.process
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_real_program_serves_and_stops_on_signal(signum: signal.Signals) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "demo_upstreams",
            "--port",
            str(port),
            "--latency-scale",
            "0",
            "--fault",
            "reviews:status=503",
            "--fault",
            "category:status=500,ids=photo",
            "--category-latency-ms",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(url)
        assert get(url + "/products/p-1001")[0] == 200
        assert get(url + "/reviews/p-1001")[0] == 503
        assert get(url + "/categories/audio")[0] == 200
        assert get(url + "/categories/photo")[0] == 500
        assert get(url + "/recommendations/anonymous")[0] == 200
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.strip() == f"demo-upstreams listening on {url}"
    assert err == ""
    assert not is_listening(port)


@pytest.mark.process
def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "demo_upstreams", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
