"""The engine: runs an aggregate's sources as a graph under one deadline.

Scheduling rules, in one place:
- every source starts as soon as the sources it depends on have succeeded, all others
  concurrently; a source whose dependency failed ends as ``dependency_failed`` without a request;
- each source is bounded by its own timeout and by the aggregation's deadline, whichever is
  first; what has not finished by the deadline ends as ``timeout``;
- when a critical part fails, the rest is cancelled at once and :class:`AggregationFailed` is
  raised (the answer is an error anyway, so nobody waits for the slow parts);
- nothing outlives :meth:`Gateway.run`: every task it started is finished or cancelled and
  awaited before it returns or raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from time import perf_counter
from types import TracebackType
from typing import Any, Self

import msgspec

from ._declaration import Aggregate, Source
from ._errors import AggregationFailed, DeclarationError, ResponseTooLarge, UpstreamUnavailable
from ._outcome import AggregateResult, PartOutcome
from ._transport import Transport

__all__ = ["Gateway"]

logger = logging.getLogger("bff_core")

_ACCEPT_JSON = {"accept": "application/json"}


class Gateway:
    """Runs declared aggregates against configured upstream services.

    Args:
        services: base URL of every upstream service the aggregates name.
        aggregates: the aggregates this gateway serves; each is checked against ``services``
            here, so a missing service fails at start-up.
        timeout: the deadline of a whole aggregation, in seconds.
        transport: how to reach upstreams; by default the fast built-in client. A transport
            passed in is not closed by :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        services: Mapping[str, str],
        aggregates: Sequence[Aggregate] = (),
        timeout: float = 1.0,
        transport: Transport | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self._services = {name: url.rstrip("/") for name, url in services.items()}
        self.timeout = timeout
        self.aggregates: dict[str, Aggregate] = {}
        for aggregate in aggregates:
            self.add(aggregate)
        self._owns_transport = transport is None
        self._transport = transport if transport is not None else _default_transport()

    @property
    def transport(self) -> Transport:
        return self._transport

    def add(self, aggregate: Aggregate) -> None:
        """Serve ``aggregate`` too, after checking that its services are configured."""
        missing = sorted(aggregate.services - self._services.keys())
        if missing:
            raise DeclarationError(
                f"aggregate {aggregate.name!r} calls service(s) {', '.join(missing)} which "
                f"have no base URL (configured: {', '.join(sorted(self._services)) or 'none'})"
            )
        if aggregate.name in self.aggregates and self.aggregates[aggregate.name] is not aggregate:
            raise DeclarationError(f"two aggregates are named {aggregate.name!r}")
        self.aggregates[aggregate.name] = aggregate

    async def run(
        self,
        aggregate: Aggregate,
        params: Mapping[str, str | None],
        *,
        fields: str | Iterable[str] | None = None,
        headers: Mapping[str, str] | None = None,
        time_limit: float | None = None,
    ) -> AggregateResult:
        """Fetch the parts of ``aggregate`` (those named in ``fields``, or all) for ``params``.

        Returns the outcome of every part asked for. Raises :class:`InvalidParameter` or
        :class:`UnknownParts` before any upstream is called when the request is malformed, and
        :class:`AggregationFailed` when a critical part fails. ``time_limit`` overrides the
        gateway's deadline (seconds) for this run; ``headers`` are sent to every upstream.
        """
        if aggregate.name not in self.aggregates:
            self.add(aggregate)
        plan = aggregate.plan(fields)
        values = aggregate.validate_params(params)
        request_headers = _ACCEPT_JSON if headers is None else {**_ACCEPT_JSON, **headers}
        loop = asyncio.get_running_loop()
        # Deadlines on the loop's clock (what call_at and timeout_at use); durations on
        # perf_counter, because uvloop's clock only has millisecond resolution.
        deadline = loop.time() + (self.timeout if time_limit is None else time_limit)
        run = _Run(self, plan.sources, values, request_headers, deadline, loop)
        for source in plan.sources:
            if not source.depends_on:
                run.start(source)
        if run.running:
            timer = loop.call_at(deadline, run.finish)
            try:
                await run.finished
            finally:
                timer.cancel()
                await run.close()
        outcomes = run.outcomes
        failed_critical = run.failed_critical
        if failed_critical is None:
            now = perf_counter()
            for source in plan.sources:
                if source.name not in outcomes:
                    outcomes[source.name] = outcome = PartOutcome(
                        source.name,
                        reason="timeout",
                        duration=now - run.started.get(source.name, run.began),
                        detail="aggregation deadline reached",
                    )
                    if source.critical and failed_critical is None:
                        failed_critical = outcome
        if failed_critical is not None:
            failures = [o for o in outcomes.values() if o.reason is not None]
            raise AggregationFailed(aggregate.name, failed_critical, failures)
        reported = plan.reported
        parts = {s.name: outcomes[s.name] for s in plan.sources if s.name in reported}
        return AggregateResult(aggregate.name, parts, perf_counter() - run.began)

    async def _fetch(
        self, source: Source, url: str, headers: Mapping[str, str], deadline: float
    ) -> PartOutcome:
        now = asyncio.get_running_loop().time()
        started = perf_counter()
        try:
            if source.timeout is None:
                # The run enforces the aggregation's deadline by cancelling this task; no
                # timer of our own on the hot path.
                response = await self._transport.get(url, headers=headers, time_left=deadline - now)
            else:
                part_deadline = min(now + source.timeout, deadline)
                async with asyncio.timeout_at(part_deadline):
                    response = await self._transport.get(
                        url, headers=headers, time_left=part_deadline - now
                    )
        except TimeoutError:
            if source.timeout is not None and now + source.timeout < deadline:
                detail = f"no answer within its timeout of {source.timeout * 1000:.0f} ms"
            else:
                detail = "aggregation deadline reached"
            return PartOutcome(
                source.name, reason="timeout", duration=perf_counter() - started, detail=detail
            )
        except UpstreamUnavailable as exc:
            return PartOutcome(
                source.name,
                reason="unavailable",
                duration=perf_counter() - started,
                detail=str(exc),
            )
        except ResponseTooLarge as exc:
            return PartOutcome(
                source.name,
                reason="invalid_response",
                duration=perf_counter() - started,
                detail=str(exc),
            )
        except Exception as exc:
            # A transport must only raise the errors above; anything else is an adapter bug,
            # but it still ends the part with one outcome instead of failing the whole request.
            logger.exception("transport raised an unexpected error for part %s", source.name)
            return PartOutcome(
                source.name,
                reason="unavailable",
                duration=perf_counter() - started,
                detail=f"unexpected transport error: {type(exc).__name__}",
            )
        status = response.status
        if not 200 <= status < 300:
            return PartOutcome(
                source.name,
                reason="upstream_status",
                duration=perf_counter() - started,
                upstream_status=status,
                detail=f"upstream answered {status}",
            )
        try:
            value = source.decoder.decode(response.body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return PartOutcome(
                source.name,
                reason="invalid_response",
                duration=perf_counter() - started,
                upstream_status=status,
                detail=str(exc)[:200],
            )
        return PartOutcome(
            source.name, value=value, duration=perf_counter() - started, upstream_status=status
        )

    async def readiness(self) -> dict[str, str]:
        """Named checks for ``/readyz``; a value starting with ``ok`` means the check passed."""
        return {"configuration": "ok", "cache": "ok: in-process"}

    async def aclose(self) -> None:
        """Close the transport if the gateway created it."""
        if self._owns_transport:
            await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Run:
    """The state of one :meth:`Gateway.run`: what is running, what waits, what happened.

    Tasks report through done-callbacks rather than a loop over ``asyncio.wait``: one future
    and one timer per run, whatever the number of sources.
    """

    __slots__ = (
        "began",
        "closed",
        "deadline",
        "failed_critical",
        "finished",
        "gateway",
        "headers",
        "loop",
        "outcomes",
        "results",
        "running",
        "started",
        "values",
        "waiting",
    )

    def __init__(
        self,
        gateway: Gateway,
        sources: Sequence[Source],
        values: Mapping[str, str],
        headers: Mapping[str, str],
        deadline: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.gateway = gateway
        self.values = values
        self.headers = headers
        self.deadline = deadline
        self.loop = loop
        self.began = perf_counter()
        self.outcomes: dict[str, PartOutcome] = {}
        self.results: dict[str, Any] = {}
        self.running: dict[asyncio.Task[PartOutcome], Source] = {}
        self.started: dict[str, float] = {}
        self.waiting = [s for s in sources if s.depends_on]
        self.failed_critical: PartOutcome | None = None
        self.finished: asyncio.Future[None] = loop.create_future()
        self.closed = False

    def start(self, source: Source) -> None:
        try:
            path = source.render(self.values, self.results)
        except (LookupError, AttributeError) as exc:
            self.outcomes[source.name] = PartOutcome(
                source.name, reason="dependency_failed", detail=str(exc)
            )
            return
        url = self.gateway._services[source.service] + path
        self.started[source.name] = perf_counter()
        task = self.loop.create_task(self.gateway._fetch(source, url, self.headers, self.deadline))
        task.add_done_callback(self._on_done)
        self.running[task] = source

    def _on_done(self, task: asyncio.Task[PartOutcome]) -> None:
        if self.closed or task.cancelled():
            return
        source = self.running.pop(task)
        self._record(source, task.result())
        if self.failed_critical is not None:
            self.finish()
            return
        if self.waiting:
            self._start_ready()
        if not self.running:
            self.finish()

    def _record(self, source: Source, outcome: PartOutcome) -> None:
        self.outcomes[source.name] = outcome
        if outcome.reason is None:
            self.results[source.name] = outcome.value
        elif source.critical and self.failed_critical is None:
            self.failed_critical = outcome

    def _start_ready(self) -> None:
        # Sources wait in dependency order, so one pass also settles chains of failures.
        still_waiting = []
        for source in self.waiting:
            dependencies = source.depends_on
            if not dependencies <= self.outcomes.keys():
                still_waiting.append(source)
                continue
            broken = sorted(d for d in dependencies if self.outcomes[d].reason is not None)
            if broken:
                self.outcomes[source.name] = PartOutcome(
                    source.name, reason="dependency_failed", detail=f"needs {', '.join(broken)}"
                )
                continue
            self.start(source)
        self.waiting = still_waiting

    def finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    async def close(self) -> None:
        """Stop reacting, keep what finished meanwhile, cancel and await everything else."""
        self.closed = True
        unfinished = []
        for task, source in self.running.items():
            if task.done() and not task.cancelled():
                # Finished, but its callback had not run yet when the deadline fired.
                self._record(source, task.result())
            else:
                unfinished.append(task)
        self.running.clear()
        if unfinished:
            await _cancel_all(unfinished)


async def _cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has really finished.

    Waited for even when the caller is being cancelled itself (a client that went away): a
    stray task must never outlive the request. The caller's cancellation is re-raised after.
    """
    pending = set(tasks)
    for task in pending:
        task.cancel()
    cancelled = False
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


def _default_transport() -> Transport:
    from ._transport_aiohttp import AiohttpTransport
    from ._transport_pyreqwest import PyreqwestTransport

    # pyreqwest for speed; aiohttp for the rare URL pyreqwest cannot send byte for byte.
    return PyreqwestTransport(fallback=AiohttpTransport())
