"""How many worker processes a BFF should run: one per core it may use.

In a container that is the CPU limit, not the host's cores: Kubernetes' ``limits.cpu`` and
``docker run --cpus`` become the cgroup's CPU quota, which a process reads in
``/sys/fs/cgroup/cpu.max`` (cgroup v2) or ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``
(cgroup v1). More workers than that only share the same quota, with more memory and context
switches (see docs/guides/deploy.md, "Run one instance").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["workers_for_cpu_limit"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


def workers_for_cpu_limit(cgroup_root: Path = CGROUP_ROOT, cpus: int | None = None) -> int:
    """The CPU limit rounded down, at most the ``cpus`` this process may run on (by default,
    its CPU affinity), and at least 1."""
    usable = len(os.sched_getaffinity(0)) if cpus is None else cpus
    quota = cpu_quota(cgroup_root)
    if quota is not None:
        usable = min(usable, math.floor(quota))
    return max(1, usable)


def cpu_quota(cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The cgroup's CPU limit in cores (``1.5`` for 1500m), or ``None`` when there is none."""
    try:
        fields = (cgroup_root / "cpu.max").read_text().split()
    except OSError:
        fields = []
    if len(fields) == 2:  # cgroup v2: "<quota> <period>" or "max <period>"
        return _ratio(fields[0], fields[1])
    for folder in ("cpu", "cpu,cpuacct"):  # cgroup v1
        base = cgroup_root / folder
        try:
            quota = (base / "cpu.cfs_quota_us").read_text().strip()
            period = (base / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            continue
        return _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        value, per = int(quota), int(period)
    except ValueError:
        return None  # "max" (v2) : no limit
    if value <= 0 or per <= 0:
        return None  # -1 (v1): no limit
    return value / per
