"""While a worker's core is saturated, its other threads stop preempting its event loop.

A worker runs its event loop on one thread and its I/O on others: granian's HTTP thread
reads requests and writes answers, pyreqwest's thread carries the upstream requests. Each
answer the loop sends and each request it starts wakes one of them, and Linux lets a woken
thread preempt the running one (wakeup preemption). While the core has room that keeps
latency low: an upstream answer is read the moment it arrives. On a saturated core it costs
throughput: the loop is interrupted mid-turn at every hand-off, and a woken thread does one
item of work each time it runs.

``SCHED_BATCH``, a policy any process may give its own threads, turns wakeup preemption off
for them: they run when the loop waits for its next events or its time slice ends, and then
do everything queued. So :class:`LoopFirst` measures the process's CPU time over short
windows and gives every thread but the loop's ``SCHED_BATCH`` while the process uses (nearly)
a whole core, and their usual policy back once it has room again. Measured on one core
(``bench/results/batching-issue-25.md``, run 13; decision record 0019): 24 % more
aggregates per second at 64 connections; the p50 at 16 connections, where it stays off, is
unchanged, and would have been 0.4 to 0.9 ms higher had it been on there too.

Linux only (``os.sched_setscheduler``); elsewhere :meth:`LoopFirst.supported` is ``False``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path

__all__ = ["LoopFirst"]

logger = logging.getLogger("bff_core.loop_first")

_TASKS = Path("/proc/self/task")


class LoopFirst:
    """Gives the process's other threads ``SCHED_BATCH`` while its CPU use is at least
    ``enter`` core-seconds per second, and ``SCHED_OTHER`` back below ``leave`` (the gap
    keeps it from flapping), judged every ``period`` seconds.
    """

    def __init__(
        self,
        *,
        enter: float = 0.85,
        leave: float = 0.6,
        period: float = 0.1,
    ) -> None:
        if not 0 < leave < enter:
            raise ValueError(f"leave ({leave}) must be above 0 and below enter ({enter})")
        if period <= 0:
            raise ValueError(f"period must be positive, not {period}")
        self.enter = enter
        self.leave = leave
        self.period = period
        #: whether the other threads have SCHED_BATCH now
        self.saturated = False
        #: the threads given SCHED_BATCH (their ids), to give back their policy
        self._batched: set[int] = set()
        #: the threads it leaves alone: another policy than the default, or the system would
        #: not let it change them (not asked again)
        self._refused: set[int] = set()
        self._loop_thread = 0
        self._last = (0.0, 0.0)
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def supported() -> bool:
        """Whether this system lets a process set its threads' scheduling policy."""
        return hasattr(os, "sched_setscheduler") and _TASKS.is_dir()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Judge the process's CPU use from now on; ``loop``'s thread (the caller's) is
        never changed."""
        self._loop = loop
        self._loop_thread = threading.get_native_id()
        self._last = (time.monotonic(), time.process_time())
        self._timer = loop.call_later(self.period, self._tick)

    def stop(self) -> None:
        """Stop judging, and give the threads their usual policy back."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.saturated:
            self._leave()

    def observe(self, busy: float) -> None:
        """One window's CPU use (core-seconds per second): enter or leave, with hysteresis.
        While saturated, a thread started since the last window is given SCHED_BATCH too."""
        if busy >= self.enter or (self.saturated and busy >= self.leave):
            if not self.saturated:
                logger.debug("the core is saturated (%.2f): the event loop goes first", busy)
            self.saturated = True
            self._batch_others()
        elif self.saturated:
            logger.debug("the core has room again (%.2f)", busy)
            self._leave()

    def _tick(self) -> None:
        now, cpu = time.monotonic(), time.process_time()
        then, cpu_then = self._last
        self._last = (now, cpu)
        if now > then:
            self.observe((cpu - cpu_then) / (now - then))
        if self._loop is not None and self._timer is not None:
            self._timer = self._loop.call_later(self.period, self._tick)

    def _leave(self) -> None:
        self.saturated = False
        for thread in self._batched:
            try:
                _set_policy(thread, os.SCHED_OTHER)
            except OSError as exc:  # a thread no longer ours, or a policy now refused
                logger.debug("thread %d keeps SCHED_BATCH: %s", thread, exc)
        self._batched.clear()

    def _batch_others(self) -> None:
        try:
            threads = [int(name) for name in os.listdir(_TASKS)]
        except OSError:
            return
        for thread in threads:
            if thread == self._loop_thread or thread in self._batched or thread in self._refused:
                continue
            try:
                if os.sched_getscheduler(thread) != os.SCHED_OTHER:
                    # Given another policy on purpose: it keeps it, and is not asked again.
                    self._refused.add(thread)
                elif _set_policy(thread, os.SCHED_BATCH):
                    self._batched.add(thread)
            except ProcessLookupError:
                continue  # it ended meanwhile
            except OSError as exc:  # a sandbox that forbids it: the thread keeps its policy
                logger.debug("thread %d keeps its scheduling policy: %s", thread, exc)
                self._refused.add(thread)
        # Threads that ended are no longer ours to give back.
        self._batched.intersection_update(threads)


def _set_policy(thread: int, policy: int) -> bool:
    """Whether ``thread`` now has ``policy``; ``OSError`` when it may not be given it."""
    try:
        os.sched_setscheduler(thread, policy, os.sched_param(0))
    except ProcessLookupError:
        return False  # it ended meanwhile
    return True
