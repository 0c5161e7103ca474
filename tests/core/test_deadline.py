"""The one deadline value: when an answer is due, and whether a cancellation was its."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest
from bff_core import Aggregate, BreakerPolicy, Gateway, Param, Source
from bff_core._deadline import Deadline

from .scripted_upstream import Reply, ScriptedUpstream, scripted_upstream


async def test_left_counts_down_on_the_loop_clock() -> None:
    deadline = Deadline.after(0.5)
    assert 0.4 < deadline.left() <= 0.5
    await asyncio.sleep(0.05)
    assert deadline.left() <= 0.45


async def test_within_is_the_earlier_of_the_two_and_expires_with_its_parent() -> None:
    run = Deadline.after(1.0)
    assert run.within(None) is run
    assert run.within(5.0) is run  # later than the run's: the run's deadline bounds it
    part = run.within(0.1)
    assert part is not run and part.at < run.at
    assert not part.expired
    run.expire()
    assert part.expired  # the run's deadline cut it off too
    assert not Deadline.after(1.0).within(0.1).expired


async def test_limit_marks_the_deadline_before_the_cancellation_arrives() -> None:
    deadline = Deadline.after(0.02)
    seen: list[bool] = []

    async def request() -> None:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            seen.append(deadline.expired)  # what a breaker asks
            raise

    with pytest.raises(TimeoutError):
        async with deadline.limit():
            await request()
    assert seen == [True]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_cancellation_from_outside_is_not_the_deadlines() -> None:
    deadline = Deadline.after(1.0)
    seen: list[bool] = []

    async def request() -> None:
        try:
            async with deadline.limit():
                await asyncio.sleep(1)
        except asyncio.CancelledError:
            seen.append(deadline.expired)
            raise

    task = asyncio.get_running_loop().create_task(request())
    await asyncio.sleep(0.01)
    task.cancel()  # the aggregate failed, the client left, a hedge won
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False]
    assert not deadline.expired


async def test_a_limit_that_did_not_fire_changes_nothing() -> None:
    deadline = Deadline.after(1.0)
    async with deadline.limit():
        await asyncio.sleep(0)
    assert not deadline.expired


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    async with scripted_upstream() as server:
        yield server


def slow_read(upstream: ScriptedUpstream, own_timeout: bool) -> Aggregate:
    """One part whose upstream answers in 500 ms, cut off by its own 50 ms timeout or (when
    ``own_timeout`` is false) by a run's deadline."""
    upstream.script("/slow/1", Reply(json={"n": 1}, delay=0.5))
    return Aggregate(
        "slow",
        params=[Param("id")],
        sources=[
            Source(
                "slow",
                service="svc",
                path="/slow/{id}",
                returns=dict[str, int],
                timeout=0.05 if own_timeout else None,
            )
        ],
    )


@pytest.mark.parametrize("own_timeout", [True, False])
async def test_a_request_cut_off_by_its_deadline_is_a_timeout_for_the_breaker(
    upstream: ScriptedUpstream, own_timeout: bool
) -> None:
    # The part's own timer, or the run's deadline, cancels the request: the breaker counts a
    # timeout either way (it was a guess from the clock before: a timer firing a hair early on
    # uvloop's millisecond clock made it no verdict).
    slow = slow_read(upstream, own_timeout)
    run_timeout = 2.0 if own_timeout else 0.05
    async with Gateway(
        services={"svc": upstream.url}, timeout=run_timeout, breakers=BreakerPolicy(failures=5)
    ) as gateway:
        for failures in (1, 2):
            result = await gateway.run(slow, {"id": "1"})
            assert result["slow"].reason == "timeout"
            assert gateway.upstream_status()["svc"].failures == failures


@pytest.mark.parametrize("own_timeout", [True, False])
async def test_a_part_cut_off_leaves_no_exception_unretrieved(
    upstream: ScriptedUpstream, own_timeout: bool
) -> None:
    # A part cancelled at a deadline ends with the TimeoutError the breaker layer raises, not
    # a CancelledError: whoever cancelled it must retrieve it, or every cut-off part logs
    # "Task exception was never retrieved" when it is collected.
    slow = slow_read(upstream, own_timeout)
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    try:
        async with Gateway(
            services={"svc": upstream.url}, timeout=2.0 if own_timeout else 0.05
        ) as gateway:
            for _ in range(3):
                result = await gateway.run(slow, {"id": "1"})
                assert result["slow"].reason == "timeout"
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("message") for c in unhandled] == []
