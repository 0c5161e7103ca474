"""The fleet of :mod:`tests.fleet.fleet`, once per test module and kind of Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fleet.fleet import Fleet, run_fleet


@pytest.fixture(scope="module")
def fleet(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    """Three web-bff and two mobile-bff instances behind HAProxy, sharing a Redis (the
    session's redis-server, or its three-master Redis Cluster where a module asks for
    ``redis-cluster``), each deployment in its own namespace."""
    kind = getattr(request, "param", "redis")
    redis_url: str = request.getfixturevalue(
        "redis_cluster_url" if kind == "redis-cluster" else "redis_url"
    )
    with run_fleet(redis_url) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_faults_left(fleet: Fleet) -> Iterator[None]:
    fleet.clear_faults()
    fleet.reset_request_log()
    yield
    fleet.clear_faults()
