"""Restarts under load behind a real HAProxy: a rolling restart of every instance loses no
request, and kill -9 of one loses at most what was in flight on it."""

from __future__ import annotations

import time
from functools import partial
from itertools import zip_longest

import pytest

from tests.fleet.fleet import Fleet, Instance, Load
from tests.processes import wait_for

# Serial, and one worker for every fleet under xdist alone (see test_redis_outage.py).
pytestmark = [pytest.mark.fleet, pytest.mark.serial, pytest.mark.xdist_group("fleet")]


def out_of_rotation(fleet: Fleet, instances: list[Instance]) -> bool:
    return all(
        fleet.balancer.status_of(fleet.backend_of(i), f"{i.host}:{i.port}") != "UP"
        for i in instances
    )


# The two deployments roll side by side, as two Deployments do: three steps (one web-bff and
# one mobile-bff instance each), each draining 5 s and then passing HAProxy's rise 2 health
# checks, about 30 s of the test's own sequence; on a loaded machine more than the suite's 60 s
# default may pass.
@pytest.mark.timeout(180)
def test_a_rolling_restart_of_every_instance_loses_no_request(fleet: Fleet) -> None:
    fleet.inject("reviews", status=503, rate=0.2)
    with Load(fleet, threads=6, max_requests=300_000, max_seconds=150) as load:
        assert wait_for(lambda: load.count() >= 100, timeout=10)
        for step in zip_longest(fleet.web, fleet.mobile):
            instances = [instance for instance in step if instance is not None]
            served_before = load.count()
            stopping = time.monotonic()
            for instance in instances:
                assert instance.process is not None
                instance.process.send_signal(15)  # SIGTERM, as a rollout sends it
            # Out of rotation while they still serve: /readyz says 503 during the drain.
            assert wait_for(partial(out_of_rotation, fleet, instances), timeout=4.5), {
                backend: fleet.balancer.servers(backend) for backend in ("web-bff", "mobile-bff")
            }
            for instance in instances:
                assert instance.process is not None
                assert instance.process.poll() is None, f"{instance.name} stopped before its drain"
            for instance in instances:
                assert instance.process is not None
                assert instance.process.wait(timeout=40) == 0, instance.log()
                assert time.monotonic() - stopping >= 5.0  # BFF_DRAIN_MS's default
            for instance in instances:
                instance.spawn()
            for instance in instances:
                instance.wait_ready()
                fleet.wait_in_rotation(instance)
            assert load.count() > served_before  # the load went on meanwhile
    outcomes = load.outcomes
    retried = {b: fleet.balancer.retried(b) for b in ("web-bff", "mobile-bff")}
    print(
        f"\nrolling restart: {len(outcomes)} requests, {len(load.failures())} failed; "
        f"HAProxy (retries, redispatches): {retried}"
    )
    assert len(outcomes) >= 500
    assert load.failures() == [], load.summary()
    # Both frontends were served throughout.
    assert {o.frontend for o in outcomes} == {"web", "mobile"}


def test_kill_9_of_one_instance_loses_at_most_what_was_in_flight_on_it(fleet: Fleet) -> None:
    victim = fleet.web[1]
    address = f"{victim.host}:{victim.port}"
    threads = 6
    with Load(fleet, threads=threads, max_requests=50_000, max_seconds=60) as load:
        assert wait_for(lambda: load.count() >= 100, timeout=10)
        killed = time.monotonic()
        victim.kill()
        assert wait_for(
            lambda: fleet.balancer.status_of("web-bff", address) != "UP", timeout=10, step=0.02
        )
        marked_down = time.monotonic()
        after = load.count()
        assert wait_for(lambda: load.count() >= after + 300, timeout=20)
    failed = load.failures()
    print(
        f"\nkill -9: {len(failed)} of {len(load.outcomes)} requests failed; "
        f"marked down {marked_down - killed:.2f} s after the kill"
    )
    # At most one request per load thread can have been in flight on the killed instance,
    # and none may fail once the balancer knows.
    assert len(failed) <= threads, [f.problem for f in failed]
    assert [f for f in failed if f.started > marked_down] == []
    victim.start()
    fleet.wait_in_rotation(victim)
