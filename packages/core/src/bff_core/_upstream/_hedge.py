"""The hedge layer: a second request when the first is late; the first good answer wins.

A source that declares ``hedge_after`` gets a second request when the first has not answered
by then (from its service's retry budget); the first good answer wins and the other is
cancelled. The first request goes through the gateway's transport, the hedge through its
*cancellable* one (aiohttp, beside the default pyreqwest): a losing hedge's connection is
closed at once. A losing first request is closed at once too with ``BFF_HTTP_CLIENT=aiohttp``;
pyreqwest cannot abort it, so it is abandoned and ends in Rust at its deadline (decision 0002),
which the deadline header also tells the upstream. Sending the first request through aiohttp
instead would cost every hedged part aiohttp's higher CPU per request, hedge or not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from .._aio import cancel_and_wait
from .._deadline import Deadline
from .._errors import CircuitOpen, UpstreamUnavailable
from .._transports import UpstreamResponse
from ._breaker import Breaker
from ._layer import Layer
from ._service import MIN_ATTEMPT, Service

__all__ = ["Hedge"]

logger = logging.getLogger("bff_core.resilience")


class Hedge:
    """``first``, and ``second`` too if ``first`` has not answered ``after`` seconds in.

    The first request runs in the caller's task on the fast transport, with one timer beside
    it: an answer in time costs nothing more. The hedge runs in a task of its own (``second``:
    the chain's rest on the cancellable transport).
    """

    __slots__ = ("after", "breaker", "first", "second", "service")

    def __init__(
        self,
        after: float,
        service: Service,
        breaker: Breaker | None,
        first: Layer,
        second: Layer,
    ) -> None:
        self.after = after
        self.service = service
        self.breaker = breaker
        self.first = first
        self.second = second

    async def __call__(
        self, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        task = asyncio.current_task()
        assert task is not None
        hedge = _Second(self, url, headers, deadline, task)
        timer = asyncio.get_running_loop().call_later(self.after, hedge.send)
        hedge.awaiting_first = True
        try:
            try:
                response = await self.first(url, headers, deadline)
            finally:
                hedge.awaiting_first = False  # from now on, a hedge's answer is awaited here
        except asyncio.CancelledError:
            if hedge.won is not None and task.uncancel() == 0:
                return hedge.won  # the hedge answered first and cancelled the first request
            raise
        except (TimeoutError, UpstreamUnavailable, CircuitOpen):
            if hedge.task is None:
                raise
            return await hedge.outcome()  # the first failed: the hedge may still answer
        else:
            if response.status >= 500 and hedge.task is not None and not hedge.task.done():
                return await hedge.outcome()
            return response
        finally:
            timer.cancel()
            if hedge.task is not None and not hedge.task.done():
                await cancel_and_wait([hedge.task])


class _Second:
    """The second request of one hedged request: sent by a timer, and what it won."""

    __slots__ = ("awaiting_first", "deadline", "headers", "layer", "owner", "task", "url", "won")

    def __init__(
        self,
        layer: Hedge,
        url: str,
        headers: Mapping[str, str],
        deadline: Deadline,
        owner: asyncio.Task[Any],
    ) -> None:
        self.layer = layer
        self.url = url
        self.headers = headers
        self.deadline = deadline
        #: the task waiting for the first request
        self.owner = owner
        self.awaiting_first = False
        self.task: asyncio.Task[UpstreamResponse] | None = None
        self.won: UpstreamResponse | None = None

    def send(self) -> None:
        """The first request is late: send the hedge, if the budget and the clock allow."""
        if not self.awaiting_first:
            return
        layer = self.layer
        service, breaker = layer.service, layer.breaker
        if (
            self.deadline.left() <= MIN_ATTEMPT
            or (breaker is not None and breaker.is_open())  # it would refuse the hedge
            or not service.spend()
        ):
            service.maybe_log_summary()
            return
        service.hedged()
        logger.debug("%s: no answer yet, hedging", service.name)
        self.task = asyncio.get_running_loop().create_task(
            layer.second(self.url, self.headers, self.deadline),
            name=f"bff-hedge:{service.name}",
        )
        self.task.add_done_callback(self._answered)

    async def outcome(self) -> UpstreamResponse:
        """The hedge's answer, once the first request failed."""
        assert self.task is not None
        response = await self.task
        if response.status < 500:
            self.layer.service.hedge_won()
        return response

    def _answered(self, task: asyncio.Task[UpstreamResponse]) -> None:
        if task.cancelled():
            return
        if task.exception() is not None or task.result().status >= 500:
            return  # a failed hedge: the first request may still answer
        if self.awaiting_first:
            # The hedge answered first: it wins, and the first request is cancelled.
            self.won = task.result()
            service = self.layer.service
            service.hedge_won()
            service.maybe_log_summary()
            self.owner.cancel()
