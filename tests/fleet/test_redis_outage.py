"""Redis stopped under the fleet: every instance says it is not ready (the contract's
/readyz: "cache reachable"), yet each still serves, bypassing the cache, and so HAProxy, with
no ready instance left, sends to the live ones instead of refusing every client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fleet.fleet import Fleet, Load, run_fleet
from tests.processes import wait_for
from tests.redis_server import RedisServer, redis_server_binary

# Serial: a fleet is five BFF processes, HAProxy and bursts of requests, whose answers (a hedge
# or not, in rotation in time or not) need the machine to themselves; ./run tests runs them
# after the rest. Under xdist alone, one worker runs every fleet, one after the other.
pytestmark = [pytest.mark.fleet, pytest.mark.serial, pytest.mark.xdist_group("fleet")]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    binary = redis_server_binary()
    assert binary is not None, "redis-server not installed (./run tests installs it)"
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def fleet(redis: RedisServer) -> Iterator[Fleet]:
    with run_fleet(redis.url) as running:
        yield running


def none_ready(fleet: Fleet) -> bool:
    return all(
        status != "UP"
        for backend in ("web-bff", "mobile-bff")
        for _, status in fleet.balancer.servers(backend).values()
    )


def test_with_redis_down_no_instance_is_ready_and_every_request_is_still_served(
    fleet: Fleet, redis: RedisServer
) -> None:
    with Load(fleet, threads=6, max_requests=100_000, max_seconds=60) as load:
        assert wait_for(lambda: load.count() >= 100, timeout=10)
        redis.stop()
        assert wait_for(lambda: none_ready(fleet), timeout=10, step=0.1)
        for instance in fleet.instances:
            assert instance.readyz()["status"] == "not ready"
        during = load.count()
        assert wait_for(lambda: load.count() >= during + 300, timeout=20)
        redis.start()
        for instance in fleet.instances:
            fleet.wait_in_rotation(instance, timeout=20)
        after = load.count()
        assert wait_for(lambda: load.count() >= after + 100, timeout=10)
    assert load.failures() == [], load.summary()
