"""BFF_LOOP_FIRST: while the process uses a whole core, its other threads get SCHED_BATCH (no
wakeup preemption of the event loop), and their usual policy back once it has room.

Real threads, real scheduling policies (Linux lets a process set its own threads' policy
between SCHED_OTHER and SCHED_BATCH without privileges), and in the serial test a real clock
measuring a loop that really burns its CPU.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator

import pytest
from bff_core._loop_first import LoopFirst

pytestmark = pytest.mark.skipif(not LoopFirst.supported(), reason="Linux only")


class Helper:
    """A thread that waits until told to end, as an I/O thread waits for its work."""

    def __init__(self) -> None:
        self._end = threading.Event()
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.native_id = 0

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        self._started.set()
        self._end.wait(10)

    def start(self) -> Helper:
        self.thread.start()
        self._started.wait(5)
        return self

    def policy(self) -> int:
        return os.sched_getscheduler(self.native_id)

    def end(self) -> None:
        self._end.set()
        self.thread.join(5)


@pytest.fixture
def helper() -> Iterator[Helper]:
    started = Helper().start()
    yield started
    started.end()


def _loop_thread_policy() -> int:
    return os.sched_getscheduler(threading.get_native_id())


async def test_saturation_gives_the_other_threads_sched_batch_and_room_gives_it_back(
    helper: Helper,
) -> None:
    loop_first = LoopFirst(enter=0.85, leave=0.6)
    loop_first.start(asyncio.get_running_loop())
    try:
        loop_first.observe(0.5)
        assert helper.policy() == os.SCHED_OTHER

        loop_first.observe(0.95)
        assert loop_first.saturated
        assert helper.policy() == os.SCHED_BATCH
        assert _loop_thread_policy() == os.SCHED_OTHER  # the loop's own thread never changes

        loop_first.observe(0.7)  # below enter, above leave: it stays (no flapping)
        assert helper.policy() == os.SCHED_BATCH

        loop_first.observe(0.55)
        assert not loop_first.saturated
        assert helper.policy() == os.SCHED_OTHER
    finally:
        loop_first.stop()


async def test_a_thread_started_while_saturated_gets_sched_batch_at_the_next_window() -> None:
    loop_first = LoopFirst()
    loop_first.start(asyncio.get_running_loop())
    late = None
    try:
        loop_first.observe(1.0)
        late = Helper().start()  # inherits the loop thread's policy: SCHED_OTHER
        assert late.policy() == os.SCHED_OTHER
        loop_first.observe(1.0)
        assert late.policy() == os.SCHED_BATCH
    finally:
        loop_first.stop()
        if late is not None:
            assert late.policy() == os.SCHED_OTHER  # stopping gives every thread its policy
            late.end()


async def test_stopping_while_saturated_gives_the_threads_their_policy_back(
    helper: Helper,
) -> None:
    loop_first = LoopFirst()
    loop_first.start(asyncio.get_running_loop())
    loop_first.observe(0.99)
    assert helper.policy() == os.SCHED_BATCH
    loop_first.stop()
    assert helper.policy() == os.SCHED_OTHER
    assert not loop_first.saturated


def test_thresholds_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="leave"):
        LoopFirst(enter=0.5, leave=0.6)
    with pytest.raises(ValueError, match="period"):
        LoopFirst(period=0)


@pytest.mark.serial
async def test_a_loop_that_burns_its_core_is_saturated_and_then_has_room(
    helper: Helper,
) -> None:
    # The real clocks: the process's CPU time against the wall, one window every 50 ms.
    loop_first = LoopFirst(period=0.05)
    loop_first.start(asyncio.get_running_loop())
    try:
        deadline = time.monotonic() + 3.0
        while not loop_first.saturated and time.monotonic() < deadline:
            burn_until = time.monotonic() + 0.02
            while time.monotonic() < burn_until:
                pass  # the loop's thread busy, as under load
            await asyncio.sleep(0)  # the window's timer runs between slices
        assert loop_first.saturated
        assert helper.policy() == os.SCHED_BATCH

        await asyncio.sleep(0.3)  # idle: the next windows have room
        assert not loop_first.saturated
        assert helper.policy() == os.SCHED_OTHER
    finally:
        loop_first.stop()
