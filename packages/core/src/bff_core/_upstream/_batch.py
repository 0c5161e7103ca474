"""Cross-request batching: the single reads of one source that the instance's runs need at the
same moment, sent as one request to the source's batch endpoint (behind the first, which goes
at once).

A part of a batched source (a source of its own, not a list's, that declares a
:class:`~bff_core.Batch`) reads through its :class:`Batcher`, which keeps one group per source
(per caller, for a source given the caller's identity, so that no batch mixes two users):

- **The first read of a turn leads.** With no window, a read that finds nothing gathering for
  its source (and no read of that source sent earlier in this turn of the event loop) is sent
  at once, as its own single read, from its part: exactly what batching off would do. An
  instance with room to spare therefore reads as if it did not batch: nothing waits, and the
  pages of a convoy (clients whose requests keep arriving together) do not all wait for its
  last one. (Measured: at 16 connections without it, batching cost about 1 ms of p50 over
  batching off, decision record 0018.)
- **The reads that follow it in the same turn gather** in a group, as waiters, and the group
  goes out when the event loop has run once more (every part the runs started together has
  joined by then), or after the configured window (then every read gathers, the first too).
  The busier the instance, the more reads a turn brings, the larger the batch.

What the part then gets is exactly what a single read would have answered: its element of the
batch answer (the same bytes), a 404 when the answer leaves its id out, or its own failure.

- **Deadlines.** A waiter stops waiting at its own deadline (its part's timer cancels it, as
  before); the batch request carries the latest deadline among those it serves, and goes on for
  the others. When every waiter of a group has stopped (their clients left, their runs ended),
  its request is cancelled, as a part's own request was, and nothing joins it any more.
- **Request ids.** A batch request names every client request it serves in ``X-Request-ID``
  (comma-separated); a lone read keeps its request's own.
- **Alone.** A group of one id sends that id's own single read (from the group's task, in the
  part's trace).
- **Coalescing.** Identical ids in one group are asked once and answered to each waiter (a
  turn's leading read is not in its group: its id may be asked once more there).
- **Resilience.** The batch request goes through the source's chain (retry, hedge, breaker,
  send): one request for the breaker and the metrics. It earns the retry budget for each
  read it makes, as the single reads would have (its splits retry them). The breaker counts
  an error status it gets only once halving has judged it: as a failure when it was not one
  id's doing, as an answer when the service answered other ids of the batch (so that one
  client's poison id, in every batch, does not open the breaker for everyone, any more than
  its single reads would), and not at all when the budget allowed no split.
- **Failure isolation.** A batch that fails in a way one id can cause (an error status, a body
  that is not an array of keyed elements, a body too large, a lost connection) is split in two
  halves, sent again (through the breaker, not counted in its window, as a retry; each split
  spends one token of the retry budget when there is one, and counts as a retry). A half that
  succeeds answers its waiters; when exactly one half fails, it is split again, so one poison
  id costs about 2·log2(n) requests and fails only its own part. When both halves fail, the
  failure is not one id's (an outage): each half's waiters get their half's failure, and no
  more is sent. A timeout, an open breaker or a request that could not be built is every
  waiter's failure at once, never split.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import unquote

import msgspec

from .._deadline import Deadline
from .._errors import RequestNotSent, ResponseTooLarge, UpstreamUnavailable
from .._transports import UpstreamResponse
from ._breaker import Breaker
from ._layer import Layer
from ._service import Service

if TYPE_CHECKING:
    from .._declare import Batch, Source
    from .._telemetry import PartTrace, Tracing

__all__ = ["Batcher", "MalformedBatch", "Submit", "split_batch"]

_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
_NOT_FOUND = UpstreamResponse(status=404, headers={}, body=b"")
#: What the breaker is told of a failed batch whose halving had the service answer some ids.
_ANSWERED = UpstreamResponse(status=200, headers={}, body=b"")
#: The header that names the client request a read is for: a batch names every one it serves.
_REQUEST_ID = "x-request-id"


class MalformedBatch(Exception):
    """A batch answer that is not a JSON array of objects with the declared key."""


def split_batch(
    batch: Batch, ids: Sequence[str], response: UpstreamResponse
) -> dict[str, UpstreamResponse]:
    """Each id's answer out of one batch answer, as if it had been read alone.

    An error status is every id's answer; an id the array leaves out is a 404 of its own.
    Raises :class:`MalformedBatch` when a 2xx body is not an array of keyed objects.
    """
    if not 200 <= response.status < 300:
        return dict.fromkeys(ids, response)
    decode_key = batch.key_decoder
    bodies: dict[str, bytes] = {}
    try:
        for element in _ELEMENTS.decode(response.body):
            found = getattr(decode_key.decode(element), batch.key)
            bodies[str(found)] = bytes(element)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedBatch(
            f"batch answer is not an array of {batch.key}-keyed objects: {exc}"
        ) from None
    headers = response.headers
    return {
        item: _NOT_FOUND
        if (body := bodies.get(item)) is None
        else UpstreamResponse(status=response.status, headers=headers, body=body)
        for item in ids
    }


#: :meth:`Batcher.submit`: (url, headers, deadline, the part's span) -> the answer's future.
Submit: TypeAlias = Callable[
    [str, Mapping[str, str], Deadline, "PartTrace | None"], asyncio.Future[UpstreamResponse]
]

#: A failure one id of a batch may have caused: what splitting the batch can isolate.
_Failure = UpstreamResponse | MalformedBatch | ResponseTooLarge | UpstreamUnavailable


class _Group:
    """The reads of one batched source (and one caller) waiting to go out together."""

    __slots__ = (
        "full",
        "groups",
        "headers",
        "key",
        "latest",
        "live",
        "request_ids",
        "task",
        "traces",
        "unsampled",
        "waiters",
    )

    def __init__(
        self,
        headers: Mapping[str, str],
        groups: dict[tuple[str | None, ...], _Group],
        key: tuple[str | None, ...],
    ) -> None:
        self.headers = headers
        #: where its batcher keeps the groups that can still be joined, and its key there
        self.groups = groups
        self.key = key
        #: the client requests it serves (``x-request-id``), in the order they joined
        self.request_ids: list[str] = []
        #: waiters not cancelled: when the last one is, the group's request is (its client
        #: left, or its run ended)
        self.live = 0
        self.task: asyncio.Task[None] | None = None
        #: each id (percent-encoded, as in its single read's URL) and who waits for it
        self.waiters: dict[str, list[asyncio.Future[UpstreamResponse]]] = {}
        #: the latest deadline among the waiters (the batch request's)
        self.latest = 0.0
        #: with a window: set when the group is full (it goes at once)
        self.full: asyncio.Future[None] | None = None
        #: the waiters' part spans (with tracing): the batch's span links to each
        self.traces: list[PartTrace] = []
        #: the caller's trace context of a request the sampler left out (a lone read keeps it)
        self.unsampled: str | None = None


class _Waiter(asyncio.Future[UpstreamResponse]):
    """A part's wait for its read: cancelling the last one still waiting in a group cancels
    the group's request, as cancelling a part's own request did before it was batched."""

    __slots__ = ("_group",)

    def __init__(self, group: _Group, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._group = group

    def cancel(self, msg: Any = None) -> bool:
        if not super().cancel(msg):
            return False
        group = self._group
        group.live -= 1
        if group.live == 0:
            # Nobody waits any more: nothing more joins it, and its request is not wanted
            # (its task may not even have started, so it cannot take itself out).
            if group.groups.get(group.key) is group:
                del group.groups[group.key]
            if group.task is not None:
                group.task.cancel()
        return True


class Batcher:
    """A :class:`~bff_core._upstream._layer.Layer` for one batched source's single reads.

    Args:
        source: the source; its path has one placeholder, its id (checked by the aggregate).
        batch: its batch endpoint.
        base_url: its service's base URL.
        service: its service's shared state (budget, counters).
        chain: the source's own chain (retry, hedge, breaker, send): a lone read goes through
            it.
        batch_chain: the same, but its breaker leaves an error status uncounted: a batch's
            first request goes through it, and the batcher tells the breaker what it meant.
        breaker: the service's breaker, if it has one.
        again: a split's requests go through it (the breaker judges them without counting them).
        window: seconds to gather a group (0: until the loop has run once more).
        tracing: makes each batch's span, linked to the parts it serves.
        observe: told how many ids each batch request names (the metrics' histogram).
    """

    __slots__ = (
        "_again",
        "_batch",
        "_batch_chain",
        "_batch_prefix",
        "_batch_suffix",
        "_breaker",
        "_chain",
        "_groups",
        "_identity",
        "_led",
        "_observe",
        "_prefix",
        "_service",
        "_source",
        "_suffix",
        "_tracing",
        "_window",
        "tasks",
    )

    def __init__(
        self,
        source: Source,
        batch: Batch,
        *,
        base_url: str,
        service: Service,
        chain: Layer,
        batch_chain: Layer,
        breaker: Breaker | None,
        again: Layer,
        window: float,
        tracing: Tracing | None,
        observe: Callable[[int], None] | None,
    ) -> None:
        self._source = source
        self._batch = batch
        self._prefix = base_url + source.literals[0]
        self._suffix = source.literals[-1]
        before, after = batch.around_ids({})
        self._batch_prefix = base_url + before
        self._batch_suffix = after
        self._service = service
        self._chain = chain
        self._batch_chain = batch_chain
        self._breaker = breaker
        self._again = again
        self._window = window
        self._tracing = tracing
        self._observe = observe
        identity = []
        if source.subject_header is not None:
            identity.append(source.subject_header)
        if source.pass_token:
            identity.append("authorization")
        #: the headers that tell one caller from another (a group per caller), if any
        self._identity = tuple(identity)
        self._groups: dict[tuple[str | None, ...], _Group] = {}
        #: the callers (group keys) whose read of this source led in this turn of the loop
        self._led: set[tuple[str | None, ...]] = set()
        #: the batch requests under way (awaited by :meth:`aclose`)
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(
        self, url: str, headers: Mapping[str, str], deadline: Deadline
    ) -> UpstreamResponse:
        tracing = self._tracing
        trace = None if tracing is None else tracing.current_part()
        return await self.submit(url, headers, deadline, trace)

    def submit(
        self,
        url: str,
        headers: Mapping[str, str],
        deadline: Deadline,
        trace: PartTrace | None,
    ) -> asyncio.Future[UpstreamResponse]:
        """The future of ``url``'s answer: sent now when it leads its turn (a task in the
        caller's context, which carries the part's span), else joined to its group.
        ``trace``: the part's span, if it has one.

        A part that needs nothing but the answer (no cache around the read) waits for this
        future itself: when it joins a group, no task of its own, no coroutine to resume.
        """
        prefix, suffix = self._prefix, self._suffix
        loop = asyncio.get_running_loop()
        if not (url.startswith(prefix) and url.endswith(suffix)):
            # Not one of this source's single reads (nothing the engine sends): as declared.
            return self._alone(loop, url, headers, deadline)
        item = url[len(prefix) : len(url) - len(suffix)]
        identity = self._identity
        key = tuple(headers.get(h) for h in identity) if identity else ()
        group = self._groups.get(key)
        if group is None:
            if self._window == 0 and key not in self._led:
                # Nothing to wait for yet: it goes now, and what this turn brings after it
                # gathers behind it.
                led = self._led
                led.add(key)
                loop.call_soon(led.discard, key)
                return self._alone(loop, url, headers, deadline)
            group = self._groups[key] = _Group(headers, self._groups, key)
            if self._window > 0:
                group.full = loop.create_future()
            # The group's own task: its first step runs once the loop has run every callback
            # ready now (every part the runs started together has joined by then), and it
            # sends at once. A context of its own: nothing of the request that happened to
            # come first (its trace, its part) is the batch's.
            task = group.task = loop.create_task(
                self._gather(key, group),
                name=f"bff-batch:{self._source.name}",
                context=contextvars.Context(),
            )
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        waiter = _Waiter(group, loop)
        group.live += 1
        request_id = headers.get(_REQUEST_ID)
        if request_id is not None:
            group.request_ids.append(request_id)
        waiting = group.waiters.get(item)
        if waiting is None:
            group.waiters[item] = [waiter]
        else:
            waiting.append(waiter)
        if deadline.at > group.latest:
            group.latest = deadline.at
        if trace is not None:
            group.traces.append(trace)
        elif self._tracing is not None and group.unsampled is None:
            group.unsampled = self._tracing.unsampled_parent()
        if len(group.waiters) >= self._batch.size and self._groups.get(key) is group:
            del self._groups[key]  # full: the next read starts a group of its own
            if group.full is not None and not group.full.done():
                group.full.set_result(None)
        return waiter

    def _alone(
        self,
        loop: asyncio.AbstractEventLoop,
        url: str,
        headers: Mapping[str, str],
        deadline: Deadline,
    ) -> asyncio.Task[UpstreamResponse]:
        """``url``'s read sent now, by itself, through the source's chain (as batching off
        sends it): a task in the caller's context."""
        self._service.earn()
        return loop.create_task(self._chain(url, headers, deadline), name=self._source.task_name)

    async def _gather(self, key: tuple[str | None, ...], group: _Group) -> None:
        """The group's task: wait for its window (if any), then send what joined."""
        if group.full is not None:
            await asyncio.wait((group.full,), timeout=self._window)
        if self._groups.get(key) is group:
            del self._groups[key]
        # Waiters whose part ended meanwhile (its deadline, its run's end) are not asked for.
        waiting = [
            (item, live)
            for item, waiters in group.waiters.items()
            if (live := [w for w in waiters if not w.done()])
        ]
        if not waiting:
            return
        headers = group.headers
        if len(group.request_ids) > 1:
            # Every client request it serves is named, so each one's trail reaches upstream.
            served = ",".join(dict.fromkeys(group.request_ids))
            headers = {**headers, _REQUEST_ID: served}
        tracing = self._tracing
        deadline = Deadline(group.latest)
        if len(waiting) == 1:
            # One id (one part, or several asking for the same): its own single read.
            if tracing is not None:
                tracing.enter_single(group.traces, group.unsampled)
            await self._single(waiting, headers, deadline)
            return
        if tracing is not None:
            source = self._source
            tracing.enter_batch(source.name, source.service, group.traces, len(waiting))
        await self._send(waiting, headers, deadline)

    async def _single(
        self,
        waiting: list[tuple[str, list[asyncio.Future[UpstreamResponse]]]],
        headers: Mapping[str, str],
        deadline: Deadline,
    ) -> None:
        """One id's single read, through the source's chain, told to whoever waits for it."""
        ((item, waiters),) = waiting
        result: UpstreamResponse | BaseException
        try:
            async with deadline.limit():
                self._service.earn()
                result = await self._chain(f"{self._prefix}{item}{self._suffix}", headers, deadline)
        except Exception as exc:
            result = exc
        except BaseException:
            _fail(waiting, TimeoutError("the gateway is stopping"))
            raise
        _tell(waiters, result)

    async def _send(
        self,
        waiting: list[tuple[str, list[asyncio.Future[UpstreamResponse]]]],
        headers: Mapping[str, str],
        deadline: Deadline,
    ) -> None:
        outcome = "ok"
        try:
            async with deadline.limit():
                # It earns the retry budget for every read it makes: a split retries reads.
                self._service.earn(len(waiting))
                failure = await self._try(waiting, headers, deadline, self._batch_chain)
                if failure is not None:
                    outcome = "isolated"
                    answered = await self._isolate(waiting, failure, headers, deadline)
                    # The error status its breaker left uncounted, now judged. Undecided (no
                    # budget to split it): no verdict; the single reads still judge.
                    breaker = self._breaker
                    if (
                        breaker is not None
                        and answered is not None
                        and isinstance(failure, UpstreamResponse)
                    ):
                        breaker.record(_ANSWERED if answered else failure)
        except BaseException as exc:
            outcome = type(exc).__name__
            _fail(
                waiting,
                exc if isinstance(exc, Exception) else TimeoutError("the gateway is stopping"),
            )
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._tracing is not None:
                self._tracing.end_batch(outcome)

    async def _try(
        self,
        waiting: list[tuple[str, list[asyncio.Future[UpstreamResponse]]]],
        headers: Mapping[str, str],
        deadline: Deadline,
        layer: Layer,
    ) -> _Failure | None:
        """Send one batch request for ``waiting``; answer them, or return the failure one of
        its ids may have caused (not yet told to anyone)."""
        ids = [unquote(item) if "%" in item else item for item, _ in waiting]
        url = f"{self._batch_prefix}{','.join(item for item, _ in waiting)}{self._batch_suffix}"
        if self._observe is not None:
            self._observe(len(waiting))
        try:
            response = await layer(url, headers, deadline)
            if not 200 <= response.status < 300:
                return response
            answers = split_batch(self._batch, ids, response)
        except RequestNotSent as exc:
            _fail(waiting, exc)  # what every request of this caller carries: not one id's
            return None
        except (MalformedBatch, ResponseTooLarge, UpstreamUnavailable) as exc:
            return exc
        for (_, waiters), item in zip(waiting, ids, strict=True):
            _tell(waiters, answers[item])
        return None

    async def _isolate(
        self,
        waiting: list[tuple[str, list[asyncio.Future[UpstreamResponse]]]],
        failure: _Failure,
        headers: Mapping[str, str],
        deadline: Deadline,
    ) -> bool | None:
        """Halve the failed batch until the failure is one id's, or clearly not one id's.

        Whether the service answered any of its ids meanwhile: ``False`` when both halves of
        the batch failed, ``None`` when the budget did not allow splitting it at all.
        """
        service = self._service
        answered: bool | None = None
        while True:
            if len(waiting) == 1 or not service.split():
                _fail(waiting, failure)
                return answered
            half = len(waiting) // 2
            left, right = waiting[:half], waiting[half:]
            left_failed, right_failed = await asyncio.gather(
                self._try(left, headers, deadline, self._again),
                self._try(right, headers, deadline, self._again),
            )
            if left_failed is not None and right_failed is not None:
                # Both halves fail: not one id's doing. Each keeps its own failure.
                _fail(left, left_failed)
                _fail(right, right_failed)
                return bool(answered)
            answered = True
            if left_failed is not None:
                waiting, failure = left, left_failed
            elif right_failed is not None:
                waiting, failure = right, right_failed
            else:
                return answered


def _fail(
    waiting: list[tuple[str, list[asyncio.Future[UpstreamResponse]]]],
    failure: _Failure | BaseException,
) -> None:
    """Tell every waiter still waiting its failure: an error answer, or an error raised."""
    for _, waiters in waiting:
        _tell(waiters, failure)


def _tell(
    waiters: list[asyncio.Future[UpstreamResponse]], result: UpstreamResponse | BaseException
) -> None:
    """Give each waiter still waiting ``result``: an answer (an error status included), or the
    error its read raises."""
    for waiter in waiters:
        if not waiter.done():
            if isinstance(result, BaseException):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)
