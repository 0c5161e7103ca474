"""``--workers auto``: one worker per core of the container's CPU limit, read from the
cgroup files as the kernel writes them (here, laid out in a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bff_core._cpus import cpu_quota, workers_for_cpu_limit


def v2(tmp_path: Path, line: str) -> Path:
    (tmp_path / "cpu.max").write_text(line + "\n")
    return tmp_path


def v1(tmp_path: Path, quota: str, period: str = "100000", folder: str = "cpu") -> Path:
    base = tmp_path / folder
    base.mkdir()
    (base / "cpu.cfs_quota_us").write_text(quota + "\n")
    (base / "cpu.cfs_period_us").write_text(period + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("line", "quota", "workers"),
    [
        ("max 100000", None, 8),  # no limit: the CPUs the process may run on
        ("200000 100000", 2.0, 2),  # limits.cpu: 2
        ("150000 100000", 1.5, 1),  # 1500m: rounded down
        ("50000 100000", 0.5, 1),  # 500m: still one worker
        ("1600000 100000", 16.0, 8),  # a limit above the machine: the machine
    ],
)
def test_cgroup_v2(tmp_path: Path, line: str, quota: float | None, workers: int) -> None:
    root = v2(tmp_path, line)
    assert cpu_quota(root) == quota
    assert workers_for_cpu_limit(root, cpus=8) == workers


@pytest.mark.parametrize("folder", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1(tmp_path: Path, folder: str) -> None:
    assert workers_for_cpu_limit(v1(tmp_path, "300000", folder=folder), cpus=8) == 3


def test_no_limit_anywhere(tmp_path: Path) -> None:
    assert cpu_quota(v1(tmp_path, "-1")) is None
    assert cpu_quota(tmp_path / "missing") is None
    assert workers_for_cpu_limit(tmp_path / "missing", cpus=3) == 3
    assert workers_for_cpu_limit(tmp_path / "missing") >= 1  # this machine's own affinity
