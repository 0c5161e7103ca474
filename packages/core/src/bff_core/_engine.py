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
        # Deadlines on the loop's clock (what asyncio.timeout_at uses); durations on
        # perf_counter, because uvloop's clock only has millisecond resolution.
        started = perf_counter()
        deadline = loop.time() + (self.timeout if time_limit is None else time_limit)

        outcomes: dict[str, PartOutcome] = {}
        results: dict[str, Any] = {}
        running: dict[asyncio.Task[PartOutcome], Source] = {}
        waiting: list[Source] = []
        failed_critical: PartOutcome | None = None

        def start_ready() -> None:
            still_waiting = []
            for source in waiting:
                dependencies = source.depends_on
                if not dependencies <= outcomes.keys():
                    still_waiting.append(source)
                    continue
                broken = sorted(d for d in dependencies if not outcomes[d].ok)
                if broken:
                    outcomes[source.name] = PartOutcome(
                        source.name,
                        reason="dependency_failed",
                        detail=f"needs {', '.join(broken)}",
                    )
                    continue
                start(source)
            waiting[:] = still_waiting

        def start(source: Source) -> None:
            try:
                path = source.render(values, results)
            except (LookupError, AttributeError) as exc:
                outcomes[source.name] = PartOutcome(
                    source.name, reason="dependency_failed", detail=str(exc)
                )
                return
            url = self._services[source.service] + path
            task = loop.create_task(self._fetch(source, url, request_headers, deadline))
            running[task] = source

        for source in plan.sources:
            if source.depends_on:
                waiting.append(source)
            else:
                start(source)
        try:
            while running or waiting:
                if waiting:
                    start_ready()
                    if not running:
                        continue  # everything left was resolved without a request
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(
                    running, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    source = running.pop(task)
                    outcome = task.result()
                    outcomes[source.name] = outcome
                    if outcome.reason is None:
                        results[source.name] = outcome.value
                    elif source.critical and failed_critical is None:
                        failed_critical = outcome
                if failed_critical is not None or not done:
                    break
        finally:
            if running:
                await _cancel_all(running)
        if failed_critical is None:
            for source in plan.sources:
                if source.name not in outcomes:
                    outcomes[source.name] = PartOutcome(
                        source.name,
                        reason="timeout",
                        duration=perf_counter() - started,
                        detail="aggregation deadline reached",
                    )
                    if source.critical and failed_critical is None:
                        failed_critical = outcomes[source.name]
        reported = {
            s.name: outcomes[s.name]
            for s in plan.sources
            if s.name in plan.reported and s.name in outcomes
        }
        if failed_critical is not None:
            failures = [o for o in outcomes.values() if not o.ok]
            raise AggregationFailed(aggregate.name, failed_critical, failures)
        return AggregateResult(aggregate.name, reported, perf_counter() - started)

    async def _fetch(
        self, source: Source, url: str, headers: Mapping[str, str], deadline: float
    ) -> PartOutcome:
        now = asyncio.get_running_loop().time()
        started = perf_counter()
        part_deadline = deadline if source.timeout is None else min(now + source.timeout, deadline)
        try:
            async with asyncio.timeout_at(part_deadline):
                response = await self._transport.get(url, headers=headers)
        except TimeoutError:
            limited_by = "part timeout" if part_deadline < deadline else "aggregation deadline"
            return PartOutcome(
                source.name,
                reason="timeout",
                duration=perf_counter() - started,
                detail=f"no answer within {(part_deadline - now) * 1000:.0f} ms ({limited_by})",
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

    return AiohttpTransport()
