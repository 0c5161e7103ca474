"""A run told part by part as each ends: what :meth:`Gateway.stream` returns."""

from __future__ import annotations

import contextlib

from .._declare import Aggregate, Plan
from .._errors import AggregationFailed
from .._outcome import AggregateResult, PartOutcome
from ._run import Run

__all__ = ["AggregateStream"]


class AggregateStream:
    """An aggregation whose parts are told as they end: what :meth:`Gateway.stream` returns.

    ``await ready()`` waits for the critical parts and returns the outcomes of those asked
    for; then iterating gives every other part asked for, once, in the order they end (those
    the deadline cut off last, as timeouts), and ``result`` is the whole result. The run's
    deadline bounds it all. ``aclose()`` ends it early (the client went away): the parts still
    running are cancelled, and counted as abandoned.
    """

    def __init__(self, aggregate: Aggregate, plan: Plan, run: Run) -> None:
        self._aggregate = aggregate
        self._plan = plan
        self._run = run
        self._timer = run.loop.call_at(run.deadline.at, run.expire) if run.running else None
        if not run.running:
            run.finish()
        self._critical = frozenset(s.name for s in plan.sources if s.critical)
        self._told: set[str] = set()
        self._ended = False
        #: the whole result, once the stream has ended
        self.result: AggregateResult | None = None

    @property
    def began(self) -> float:
        """When the run began (``perf_counter``)."""
        return self._run.began

    async def ready(self) -> list[PartOutcome]:
        """The critical parts asked for, once every critical part has arrived.

        Raises :class:`AggregationFailed` when one failed or the deadline passed first.
        """
        run = self._run
        assert run.changed is not None
        while not (
            run.failed_critical is not None
            or run.finished.done()
            or self._critical <= run.outcomes.keys()
        ):
            run.changed.clear()
            await run.changed.wait()
        if run.failed_critical is not None or not self._critical <= run.outcomes.keys():
            await self._end()  # raises AggregationFailed
        self._told |= self._critical
        reported = self._plan.reported
        return [run.outcomes[name] for name in self._critical if name in reported]

    def __aiter__(self) -> AggregateStream:
        return self

    async def __anext__(self) -> PartOutcome:
        run = self._run
        assert run.changed is not None
        while True:
            for name, outcome in run.outcomes.items():
                if name not in self._told:
                    self._told.add(name)
                    if name in self._plan.reported:
                        return outcome
            if self._ended:
                raise StopAsyncIteration
            if run.finished.done():
                await self._end()  # what the deadline cut off becomes a timeout, told next
                continue
            run.changed.clear()
            await run.changed.wait()

    async def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        run = self._run
        if self._timer is not None:
            self._timer.cancel()
        run.finish()
        cut_off = await run.close()
        self.result = run.conclude(self._aggregate, self._plan, cut_off)

    async def aclose(self) -> None:
        """End the stream now: the parts still running are cancelled."""
        if not self._ended:
            self._run.cut_off_because = "abandoned: the client went away"
            with contextlib.suppress(AggregationFailed):
                await self._end()

    async def __aenter__(self) -> AggregateStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
