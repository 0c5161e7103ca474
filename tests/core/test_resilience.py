"""Circuit breakers, retries, hedges and deadlines, against a real scripted HTTP server.

Every fault here is a real one (a 5xx, a hung or dropped connection, a refused port) served by
``scripted_upstream``; nothing of the transport is mocked. The only test double is
:class:`FixedBackoff`, a retry policy without jitter, where a test needs a known wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from bff_core import (
    Aggregate,
    AggregateResult,
    AggregationFailed,
    BreakerPolicy,
    CachePolicy,
    DeclarationError,
    Gateway,
    Param,
    RetryBudget,
    RetryPolicy,
    Source,
    UpstreamStatus,
)
from bff_core._cache import MemoryStore
from bff_core._guards import Identity

from .scripted_upstream import Reply, ScriptedUpstream, scripted_upstream

LOGGER = "bff_core.resilience"
OK = {"n": 1}
#: A breaker that stays open for the whole test once it opened.
STAYS_OPEN = 30.0
#: The gateway's defaults.
DEFAULT_BREAKER = BreakerPolicy()
DEFAULT_BUDGET = RetryBudget()


# -- helpers -----------------------------------------------------------------------------------


class Replies(dict[str, Reply]):
    """``ScriptedUpstream.replies`` that can also answer one path with a sequence of replies.

    ``sequence(path, r1, r2, ...)``: the first request to ``path`` gets ``r1``, the next ``r2``,
    and so on; the last reply repeats. The scripted server looks a reply up (``get``) as soon as
    a request arrives, so the order is the order of arrival.
    """

    def __init__(self) -> None:
        super().__init__()
        self.queues: dict[str, list[Reply]] = {}

    def sequence(self, path: str, *replies: Reply) -> None:
        self.queues[path] = list(replies)

    def get(self, key: str, default: Any = None, /) -> Any:
        queue = self.queues.get(key)
        if queue:
            return queue.pop(0) if len(queue) > 1 else queue[0]
        return super().get(key, default)


class FixedBackoff(RetryPolicy):
    """A retry policy whose every wait is exactly ``backoff`` seconds (no jitter)."""

    __slots__ = ()

    def delay(self, retry: int) -> float:
        return self.backoff


def bff_tasks() -> list[asyncio.Task[Any]]:
    """Tasks the gateway started that are still alive: parts, breaker trials, cache fetches
    (all named ``bff-...``) and the unnamed request tasks of hedges (``Upstreams._guarded``)."""
    current = asyncio.current_task()
    return [
        task
        for task in asyncio.all_tasks()
        if task is not current
        and (
            task.get_name().startswith("bff-")
            or getattr(task.get_coro(), "__qualname__", "").startswith("Upstreams.")
        )
    ]


async def eventually(condition: Callable[[], bool], within: float = 1.0) -> None:
    """Wait (bounded) until ``condition()`` holds; fail if it never does."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()


def single(
    name: str = "a",
    *,
    service: str = "svc",
    retry: RetryPolicy | None = None,
    hedge_after: float | None = None,
    timeout: float | None = None,
    cache: CachePolicy | None = None,
    aggregate: str | None = None,
) -> Aggregate:
    """An aggregate of one optional source ``name``, which requests ``/<name>/{id}``."""
    return Aggregate(
        aggregate or f"only_{name}",
        params=[Param("id")],
        sources=[
            Source(
                name,
                service=service,
                path=f"/{name}/{{id}}",
                returns=dict[str, int],
                retry=retry,
                hedge_after=hedge_after,
                timeout=timeout,
                cache=cache,
            )
        ],
    )


def gateway(
    upstream: ScriptedUpstream,
    *,
    timeout: float = 1.0,
    services: tuple[str, ...] = ("svc",),
    default_client: bool = False,
    breakers: BreakerPolicy | dict[str, BreakerPolicy | None] | None = DEFAULT_BREAKER,
    retry_budget: RetryBudget | None = DEFAULT_BUDGET,
    deadline_header: str | None = "x-request-timeout-ms",
    cache: MemoryStore | None = None,
) -> Gateway:
    """A gateway on ``upstream`` that owns its transport: aiohttp, or with ``default_client``
    the default one (pyreqwest, with aiohttp as its ``cancellable`` fallback)."""
    return Gateway(
        services=dict.fromkeys(services, upstream.url),
        timeout=timeout,
        http_client="pyreqwest" if default_client else "aiohttp",
        breakers=breakers,
        retry_budget=retry_budget,
        deadline_header=deadline_header,
        cache=cache,
    )


def status(gw: Gateway, service: str = "svc") -> UpstreamStatus:
    return gw.upstream_status()[service]


async def run(gw: Gateway, aggregate: Aggregate, id_: str = "1") -> AggregateResult:
    return await gw.run(aggregate, {"id": id_})


async def timed(gw: Gateway, aggregate: Aggregate) -> tuple[AggregateResult, float]:
    started = time.monotonic()
    result = await run(gw, aggregate)
    return result, time.monotonic() - started


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    async with scripted_upstream() as server:
        server.replies = Replies()
        yield server


@pytest.fixture(autouse=True)
async def no_stray_tasks() -> AsyncIterator[None]:
    """Whatever a test did, the gateway leaves no task of its own behind once it is closed."""
    yield
    await eventually(lambda: bff_tasks() == [], within=0.5)


def received(upstream: ScriptedUpstream, count: int) -> Callable[[], bool]:
    return lambda: len(upstream.received) >= count


def sequence(upstream: ScriptedUpstream, path: str, *replies: Reply) -> None:
    assert isinstance(upstream.replies, Replies)
    upstream.replies.sequence(path, *replies)


# -- the breaker opens -------------------------------------------------------------------------


async def test_the_breaker_opens_at_its_minimum_requests_all_failing_and_then_sends_nothing(
    upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single()
    policy = BreakerPolicy(failures=5, min_calls=5, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, breakers=policy) as gw:
        assert status(gw).breaker == "closed"
        for n in range(1, 5):
            result = await run(gw, aggregate)
            assert result["a"].reason == "upstream_status"
            assert result["a"].upstream_status == 503
            assert (status(gw).breaker, status(gw).failures) == ("closed", n)
            assert (status(gw).calls, status(gw).failure_rate) == (n, 1.0)
        assert not [r for r in caplog.records if "opened" in r.getMessage()]

        result = await run(gw, aggregate)  # the 5th: it is still sent, and its 503 reported
        assert result["a"].upstream_status == 503
        opened = status(gw)
        assert opened.breaker == "open"
        assert opened.failures == 0  # nothing is counted while it is open
        assert (opened.opens_after, opened.min_calls, opened.opens_at_rate) == (5, 5, 0.5)
        assert opened.window == 10.0
        assert opened.opens_for is not None and 0 < opened.opens_for <= STAYS_OPEN
        assert opened.refused == 0
        assert len(upstream.received) == 5

        for n in range(1, 4):
            result = await run(gw, aggregate)
            assert result["a"].reason == "circuit_open"
            assert "'svc'" in result["a"].detail
            assert result["a"].duration < 0.05  # at once: nothing was sent
            assert status(gw).refused == n
        assert len(upstream.received) == 5
        assert status(gw).requests == 8
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.name == LOGGER
    assert "upstream svc opened" in warning.getMessage()
    assert "5 of its last 5 requests (in 10 s) failed" in warning.getMessage()


async def test_an_open_breaker_fails_every_part_of_its_service_and_only_of_its_service(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/a/1", Reply(status=500, json={}))
    upstream.script("*", Reply(json=OK))
    aggregate = Aggregate(
        "mixed",
        params=[Param("id")],
        sources=[
            Source("a", service="svc", path="/a/{id}", returns=dict[str, int]),
            Source("b", service="svc", path="/b/{id}", returns=dict[str, int]),
            Source("c", service="other", path="/c/{id}", returns=dict[str, int]),
        ],
    )
    policy = BreakerPolicy(failures=2, min_calls=2, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, services=("svc", "other"), breakers=policy) as gw:
        await run(gw, aggregate)  # a: 500, b: 200 (one failure of two: not yet)
        assert status(gw).breaker == "closed"
        upstream.script("*", Reply(status=502, json={}))
        await run(gw, aggregate)  # a and c: 5xx, b: 502 too -> svc opens (2 or 3 of 3)
        assert status(gw).breaker == "open"
        assert status(gw, "other").breaker == "closed"
        assert status(gw, "other").failures == 1
        upstream.received.clear()
        upstream.script("*", Reply(json=OK))
        result = await run(gw, aggregate)
        assert [result[n].reason for n in "abc"] == ["circuit_open", "circuit_open", None]
        assert upstream.paths() == ["/c/1"]


async def test_breaker_policies_per_service(upstream: ScriptedUpstream) -> None:
    upstream.script("*", Reply(status=503, json={}))
    services = ("strict", "unguarded", "default")
    breakers: dict[str, BreakerPolicy | None] = {
        "strict": BreakerPolicy(failures=1, min_calls=1, reset_timeout=STAYS_OPEN),
        "unguarded": None,
    }
    async with gateway(upstream, services=services, breakers=breakers) as gw:
        aggregates = {name: single(service=name, aggregate=name) for name in services}
        for _ in range(6):
            for aggregate in aggregates.values():
                await run(gw, aggregate)
        statuses = gw.upstream_status()
        assert set(statuses) == set(services)
        assert statuses["strict"].breaker == "open"
        assert statuses["strict"].refused == 5
        assert statuses["unguarded"].breaker == "none"
        assert statuses["unguarded"].failures == 0
        assert statuses["unguarded"].opens_for is None
        # The default policy judges no fewer than 20 requests: 6 failures open nothing.
        assert statuses["default"].breaker == "closed"
        assert (statuses["default"].failures, statuses["default"].calls) == (6, 6)
        assert statuses["default"].refused == 0
        assert upstream.paths().count("/a/1") == 1 + 6 + 6


async def test_no_breakers_at_all(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single()
    async with gateway(upstream, breakers=None) as gw:
        for _ in range(12):
            assert (await run(gw, aggregate))["a"].upstream_status == 503
        assert status(gw).breaker == "none"
        assert len(upstream.received) == 12


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=404, json={}),
        Reply(status=400, json={}),
        Reply(status=429, json={}),  # not in the default counts
        Reply(status=200, json=OK),
        Reply(json=["not", "the", "declared", "type"]),
    ],
    ids=["404", "400", "429", "200", "invalid-json"],
)
async def test_answers_that_are_not_declared_failures_never_open_it(
    upstream: ScriptedUpstream, reply: Reply
) -> None:
    upstream.script("/a/1", reply)
    aggregate = single()
    async with gateway(upstream, breakers=BreakerPolicy(failures=2, min_calls=2)) as gw:
        for _ in range(10):
            await run(gw, aggregate)
        assert (status(gw).breaker, status(gw).failures) == ("closed", 0)
        assert (status(gw).calls, status(gw).failure_rate) == (10, 0.0)  # answers: successes
        assert len(upstream.received) == 10


async def test_it_opens_on_the_share_of_failures_not_their_count(
    upstream: ScriptedUpstream,
) -> None:
    aggregate = single()
    policy = BreakerPolicy(failures=1, min_calls=4, failure_rate=0.5, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, breakers=policy) as gw:
        # 1 of 4, 2 of 5: under half failed, closed (a consecutive count of 2 would not be).
        for answer in (503, 200, 404, 200, 503):
            upstream.script("/a/1", Reply(status=answer, json=OK))
            await run(gw, aggregate)
            assert status(gw).breaker == "closed"
        assert (status(gw).failures, status(gw).calls, status(gw).failure_rate) == (2, 5, 0.4)
        upstream.script("/a/1", Reply(status=504, json={}))
        await run(gw, aggregate)  # 3 of 6: half
        assert status(gw).breaker == "open"


async def test_no_opening_below_the_minimum_requests(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single()
    policy = BreakerPolicy(failures=1, min_calls=6, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, breakers=policy) as gw:
        for n in range(1, 6):
            await run(gw, aggregate)
            # Every request failed, but 5 are too few to judge.
            assert (status(gw).breaker, status(gw).failures, status(gw).failure_rate) == (
                "closed",
                n,
                1.0,
            )
        await run(gw, aggregate)
        assert status(gw).breaker == "open"


async def test_no_opening_below_the_fewest_failures(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single()
    policy = BreakerPolicy(failures=4, min_calls=1, failure_rate=0.1, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, breakers=policy) as gw:
        for _ in range(3):
            await run(gw, aggregate)
        assert (status(gw).breaker, status(gw).failures) == ("closed", 3)
        await run(gw, aggregate)
        assert status(gw).breaker == "open"


async def test_failures_older_than_the_window_are_forgotten(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single()
    # A window of 1 s in buckets of 0.1 s; 3 failures within it would open it.
    policy = BreakerPolicy(failures=3, min_calls=3, window=1.0, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, breakers=policy) as gw:
        await run(gw, aggregate)
        await run(gw, aggregate)
        assert status(gw).failures == 2
        await asyncio.sleep(1.05)
        assert (status(gw).failures, status(gw).calls) == (0, 0)
        await run(gw, aggregate)
        assert (status(gw).breaker, status(gw).failures) == ("closed", 1)
        await run(gw, aggregate)
        await run(gw, aggregate)
        assert status(gw).breaker == "open"


@pytest.mark.parametrize("default_client", [False, True], ids=["aiohttp", "default"])
@pytest.mark.parametrize(
    ("reply", "reason"),
    [(Reply(hang=True), "timeout"), (Reply(drop=True), "unavailable")],
    ids=["deadline", "dropped"],
)
async def test_timeouts_and_lost_connections_count(
    upstream: ScriptedUpstream, reply: Reply, reason: str, default_client: bool
) -> None:
    upstream.script("/a/1", reply)
    aggregate = single()
    policy = BreakerPolicy(failures=2, min_calls=2, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, timeout=0.1, breakers=policy, default_client=default_client) as gw:
        assert (await run(gw, aggregate))["a"].reason == reason
        assert (status(gw).breaker, status(gw).failures) == ("closed", 1)
        assert (await run(gw, aggregate))["a"].reason == reason
        assert status(gw).breaker == "open"
        sent = len(upstream.received)
        assert (await run(gw, aggregate))["a"].reason == "circuit_open"
        assert len(upstream.received) == sent


async def test_part_timeouts_count_every_time(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(hang=True))
    aggregate = single(timeout=0.02)
    policy = BreakerPolicy(
        failures=15, min_calls=15, reset_timeout=STAYS_OPEN, counts=frozenset({"timeout"})
    )
    async with gateway(upstream, breakers=policy) as gw:
        for n in range(1, 16):
            assert (await run(gw, aggregate))["a"].reason == "timeout"
            assert status(gw).failures == n % 15 or status(gw).breaker == "open"
        assert status(gw).breaker == "open"


async def test_a_service_that_refuses_connections_opens_its_breaker() -> None:
    async with scripted_upstream() as server:
        closed = server  # the port is free again once the server is gone
    aggregate = single()
    async with gateway(closed, breakers=BreakerPolicy(failures=3, min_calls=3)) as gw:
        reasons = [(await run(gw, aggregate))["a"].reason for _ in range(5)]
        assert reasons == ["unavailable"] * 3 + ["circuit_open"] * 2
        assert status(gw).refused == 2


@pytest.mark.parametrize(
    ("counts", "reply", "opens"),
    [
        (frozenset({"5xx"}), Reply(hang=True), False),
        (frozenset({"5xx"}), Reply(drop=True), False),
        (frozenset({"timeout"}), Reply(status=500, json={}), False),
        (frozenset({"timeout"}), Reply(hang=True), True),
        (frozenset({"unavailable"}), Reply(drop=True), True),
        (frozenset({"429"}), Reply(status=429, json={}), True),
        (frozenset({"429"}), Reply(status=503, json={}), False),
    ],
    ids=[
        "5xx-ignores-timeouts",
        "5xx-ignores-drops",
        "timeout-ignores-5xx",
        "timeout",
        "unavailable",
        "429",
        "429-ignores-5xx",
    ],
)
async def test_only_the_declared_kinds_count(
    upstream: ScriptedUpstream, counts: frozenset[str], reply: Reply, opens: bool
) -> None:
    upstream.script("/a/1", reply)
    aggregate = single()
    policy = BreakerPolicy(failures=2, min_calls=2, counts=counts)
    async with gateway(upstream, timeout=0.05, breakers=policy) as gw:
        for _ in range(4):
            await run(gw, aggregate)
        assert status(gw).breaker == ("open" if opens else "closed")
        if not opens:
            assert status(gw).failures == 0


def test_counts_and_retry_kinds_may_be_any_collection() -> None:
    counts: Any = {"5xx", "timeout"}  # a set, as the documentation and the services write it
    on: Any = ["5xx"]
    assert BreakerPolicy(counts=counts).counts == frozenset({"5xx", "timeout"})
    assert RetryPolicy(on=on).on == frozenset({"5xx"})


# -- who can open a breaker: a share of everyone's requests, not one client -----------------


def personal(*, retry: RetryPolicy | None = None) -> Aggregate:
    """An aggregate of one optional source that sends the caller's subject in ``x-user-id``."""
    return Aggregate(
        "personal",
        params=[Param("id")],
        sources=[
            Source(
                "a",
                service="svc",
                path="/a/{id}",
                returns=dict[str, int],
                subject_header="x-user-id",
                retry=retry,
            )
        ],
    )


def caller(subject: str) -> Identity:
    return Identity(subject=subject, token="t", expires_at=time.time() + 60, claims={})


async def test_a_poison_id_repeated_by_one_client_opens_no_breaker(
    upstream: ScriptedUpstream,
) -> None:
    # One id the upstream always fails (a 5xx); every other id it answers. While the other
    # clients' requests come in, one client sends the poison id three times in a row, retried;
    # again and again. Under the old rule (5 consecutive failures, every attempt counted) the
    # first three poison requests opened the breaker for everyone. Now it would take as many
    # poison requests as all the others together (half the window's requests).
    upstream.script("/a/poison", Reply(status=503, json={}))
    upstream.script("*", Reply(json=OK))
    aggregate = single(retry=RetryPolicy(attempts=2, backoff=0.001))
    seen: list[str] = []

    async def others(round_: int, count: int) -> None:
        answers = await asyncio.gather(*(run(gw, aggregate, f"{round_}-{n}") for n in range(count)))
        assert all(r["a"].ok for r in answers)

    async with gateway(upstream) as gw:  # the default breaker and retry budget
        gw.upstreams.on_transition(lambda service, state, opened_at: seen.append(state))
        await others(0, 20)
        for round_ in range(1, 11):
            for _ in range(3):
                poisoned = await run(gw, aggregate, "poison")
                assert poisoned["a"].upstream_status == 503  # that request's own failure
            assert status(gw).breaker == "closed"
            await others(round_, 6)
        counted = status(gw)
        # 30 poison requests, each counted once however often it was retried, of 110.
        assert (counted.failures, counted.calls) == (30, 110)
        assert counted.retries > 0
        assert counted.failure_rate == round(30 / 110, 3)
    assert seen == []


async def test_a_real_outage_opens_it_within_the_window(upstream: ScriptedUpstream) -> None:
    upstream.script("*", Reply(json=OK))
    aggregate = single(retry=RetryPolicy(attempts=2, backoff=0.001))
    async with gateway(upstream) as gw:  # the default policy: 20 requests, half failed, 10 s
        started = time.monotonic()
        for n in range(30):
            assert (await run(gw, aggregate, str(n)))["a"].ok
        # The upstream fails everything from now on: once failures are half the window's
        # requests (30 healthy ones are in it), it opens.
        upstream.script("*", Reply(status=503, json={}))
        for n in range(29):
            await run(gw, aggregate, f"down-{n}")
            assert status(gw).breaker == "closed"
        await run(gw, aggregate, "down-29")  # 30 of 60
        assert status(gw).breaker == "open"
        assert time.monotonic() - started < DEFAULT_BREAKER.window
        sent = len(upstream.received)
        assert (await run(gw, aggregate, "more"))["a"].reason == "circuit_open"
        assert len(upstream.received) == sent


async def test_an_outage_from_the_start_opens_it_at_the_minimum_requests() -> None:
    async with scripted_upstream() as server:
        closed = server  # the port is free again once the server is gone
    aggregate = single()
    async with gateway(closed) as gw:
        reasons = [(await run(gw, aggregate, str(n)))["a"].reason for n in range(22)]
        assert reasons == ["unavailable"] * 20 + ["circuit_open"] * 2


@pytest.mark.parametrize("default_client", [False, True], ids=["aiohttp", "default"])
@pytest.mark.parametrize("subject", ["user\nX-Admin: 1", "nul\x00", "cr\r"], ids=repr)
async def test_a_request_the_client_made_unsendable_counts_for_no_breaker(
    upstream: ScriptedUpstream, subject: str, default_client: bool
) -> None:
    upstream.script("*", Reply(json=OK))
    aggregate = personal(retry=RetryPolicy(attempts=3, backoff=0.001))
    policy = BreakerPolicy(failures=1, min_calls=1, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, breakers=policy, default_client=default_client) as gw:
        for _ in range(5):
            result = await gw.run(aggregate, {"id": "1"}, identity=caller(subject))
            assert result["a"].reason == "unavailable"  # that request's failure
            assert "request not sent" in result["a"].detail
        counted = status(gw)
        assert (counted.breaker, counted.failures, counted.calls) == ("closed", 0, 0)
        assert (counted.retries, counted.budget) == (0, 10.0)  # it would fail the same way
        assert upstream.received == []
        assert (await gw.run(aggregate, {"id": "1"}, identity=caller("u-1")))["a"].ok
        assert upstream.received[0].headers["x-user-id"] == "u-1"


async def test_an_unsendable_trial_leaves_the_breaker_half_open(
    upstream: ScriptedUpstream,
) -> None:
    aggregate = personal()
    policy = BreakerPolicy(failures=1, min_calls=1, reset_timeout=0.2)
    async with gateway(upstream, breakers=policy) as gw:
        upstream.script("/a/1", Reply(status=503, json={}))
        await gw.run(aggregate, {"id": "1"}, identity=caller("u-1"))
        assert status(gw).breaker == "open"
        await asyncio.sleep(0.25)
        upstream.received.clear()
        upstream.script("/a/1", Reply(json=OK))
        result = await gw.run(aggregate, {"id": "1"}, identity=caller("bad\nsubject"))
        assert result["a"].reason == "unavailable"
        # No verdict on the upstream: neither closed nor opened again, and the next request
        # is the trial.
        assert status(gw).breaker == "half-open"
        assert (await gw.run(aggregate, {"id": "1"}, identity=caller("u-1")))["a"].ok
        assert status(gw).breaker == "closed"
        assert len(upstream.received) == 1


# -- half-open: one trial decides --------------------------------------------------------------


async def open_breaker(gw: Gateway, upstream: ScriptedUpstream, aggregate: Aggregate) -> None:
    """Open ``svc``'s breaker (policy with min_calls=1) with one 503, and forget the request."""
    upstream.script("/a/1", Reply(status=503, json={}))
    await run(gw, aggregate)
    assert status(gw).breaker == "open"
    upstream.received.clear()


async def test_after_reset_timeout_exactly_one_trial_goes_through_and_its_success_closes(
    upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    aggregate = single()
    async with gateway(
        upstream, breakers=BreakerPolicy(failures=1, min_calls=1, reset_timeout=0.3)
    ) as gw:
        await open_breaker(gw, upstream, aggregate)
        upstream.script("/a/1", Reply(json=OK, delay=0.1))
        assert (await run(gw, aggregate))["a"].reason == "circuit_open"  # still cooling
        await asyncio.sleep(0.35)
        assert status(gw).opens_for == 0
        results = await asyncio.gather(*(run(gw, aggregate) for _ in range(10)))
        reasons = sorted(str(r["a"].reason) for r in results)
        assert reasons == ["None"] + ["circuit_open"] * 9
        assert len(upstream.received) == 1  # the trial, alone
        assert (status(gw).breaker, status(gw).failures) == ("closed", 0)
        assert status(gw).refused == 1 + 9
        results = await asyncio.gather(*(run(gw, aggregate) for _ in range(3)))
        assert all(r["a"].ok for r in results)
        assert len(upstream.received) == 4
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert [m.split(":")[0] for m in messages if "circuit breaker" in m] == [
        "circuit breaker of upstream svc opened",
        "circuit breaker of upstream svc half-open",
        "circuit breaker of upstream svc closed",
    ]


# Serial: it counts the requests of 0.3 s reset timeouts, which a loaded machine stretches.
@pytest.mark.serial
@pytest.mark.parametrize(
    "trial",
    [Reply(status=503, json={}), Reply(hang=True), Reply(drop=True)],
    ids=["503", "timeout", "dropped"],
)
async def test_a_failed_trial_opens_it_for_another_reset_timeout(
    upstream: ScriptedUpstream, trial: Reply
) -> None:
    aggregate = single(timeout=0.1)
    async with gateway(
        upstream, breakers=BreakerPolicy(failures=1, min_calls=1, reset_timeout=0.3)
    ) as gw:
        await open_breaker(gw, upstream, aggregate)
        await asyncio.sleep(0.35)
        upstream.script("/a/1", trial)
        results = await asyncio.gather(*(run(gw, aggregate) for _ in range(5)))
        assert sum(r["a"].reason == "circuit_open" for r in results) == 4
        # One trial request (aiohttp itself sends a dropped GET a second time).
        sent = 2 if trial.drop else 1
        assert len(upstream.received) == sent
        reopened = status(gw)
        assert reopened.breaker == "open"
        assert reopened.opens_for is not None and 0.1 < reopened.opens_for <= 0.3
        assert (await run(gw, aggregate))["a"].reason == "circuit_open"
        assert len(upstream.received) == sent
        # Another reset timeout later, another trial; this one succeeds.
        upstream.script("/a/1", Reply(json=OK))
        await asyncio.sleep(0.35)
        assert (await run(gw, aggregate))["a"].ok
        assert status(gw).breaker == "closed"
        assert len(upstream.received) == sent + 1


async def test_the_trial_outlives_the_run_that_started_it(upstream: ScriptedUpstream) -> None:
    aggregate = single()
    async with gateway(
        upstream, breakers=BreakerPolicy(failures=1, min_calls=1, reset_timeout=0.2)
    ) as gw:
        await open_breaker(gw, upstream, aggregate)
        await asyncio.sleep(0.25)
        upstream.script("/a/1", Reply(json=OK, delay=0.15))
        started = asyncio.ensure_future(run(gw, aggregate))
        await eventually(lambda: len(upstream.received) == 1)
        started.cancel()
        with pytest.raises(asyncio.CancelledError):
            await started
        # The trial is the breaker's: it goes on without its run, and decides.
        assert (await run(gw, aggregate))["a"].reason == "circuit_open"
        await eventually(lambda: status(gw).breaker == "closed")
        assert upstream.abandoned == []
        assert (await run(gw, aggregate))["a"].ok


async def test_closing_the_gateway_cancels_a_running_trial(upstream: ScriptedUpstream) -> None:
    aggregate = single()
    gw = gateway(
        upstream, timeout=5.0, breakers=BreakerPolicy(failures=1, min_calls=1, reset_timeout=0.1)
    )
    try:
        await open_breaker(gw, upstream, aggregate)
        await asyncio.sleep(0.15)
        upstream.script("/a/1", Reply(hang=True))
        task = asyncio.ensure_future(run(gw, aggregate))
        await eventually(received(upstream, 1))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [t.get_name() for t in bff_tasks()] == ["bff-breaker-trial:svc"]
    finally:
        await gw.aclose()
    assert bff_tasks() == []
    await eventually(lambda: upstream.abandoned == ["/a/1"])


async def test_transition_hooks_see_every_transition(
    upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    aggregate = single()
    seen: list[tuple[str, str, float | None]] = []

    def broken(service: str, state: str, opened_at: float | None) -> None:
        raise RuntimeError("a hook that fails")

    async with gateway(
        upstream, breakers=BreakerPolicy(failures=1, min_calls=1, reset_timeout=0.1)
    ) as gw:
        gw.upstreams.on_transition(broken)
        gw.upstreams.on_transition(lambda *transition: seen.append(transition))
        before = time.time()
        await open_breaker(gw, upstream, aggregate)
        await asyncio.sleep(0.15)
        upstream.script("/a/1", Reply(json=OK))
        assert (await run(gw, aggregate))["a"].ok
    assert [(service, state) for service, state, _ in seen] == [
        ("svc", "open"),
        ("svc", "half-open"),
        ("svc", "closed"),
    ]
    opened_at = seen[0][2]
    assert opened_at is not None and before <= opened_at <= before + 1
    assert seen[1][2] is None and seen[2][2] is None
    failed = [r for r in caplog.records if r.getMessage() == "breaker transition hook failed"]
    assert len(failed) == 3


async def test_one_opening_is_one_transition(
    upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    # Five requests sent while closed all fail; the 2nd opens it. The three that fail after
    # that are not counted (it is open), so it is neither opened, logged nor published again.
    upstream.script("*", Reply(status=503, json={}, delay=0.05))
    aggregate = single()
    seen: list[str] = []
    async with gateway(upstream, breakers=BreakerPolicy(failures=2, min_calls=2)) as gw:
        gw.upstreams.on_transition(lambda service, state, opened_at: seen.append(state))
        await asyncio.gather(*(gw.run(aggregate, {"id": str(n)}) for n in range(5)))
        assert status(gw).breaker == "open"
        assert len(upstream.received) == 5
    assert seen == ["open"]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


# -- cancelled requests ------------------------------------------------------------------------


def critical_elsewhere() -> Aggregate:
    """A critical part on service ``crit`` and an optional one on ``svc``."""
    return Aggregate(
        "critical_elsewhere",
        params=[Param("id")],
        sources=[
            Source("c", service="crit", path="/c/{id}", returns=dict[str, int], critical=True),
            Source("b", service="svc", path="/b/{id}", returns=dict[str, int]),
        ],
    )


async def test_requests_cancelled_because_a_critical_part_failed_are_not_failures(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/c/1", Reply(status=404, json={}, delay=0.05))
    upstream.script("/b/1", Reply(hang=True))
    aggregate = critical_elsewhere()
    policy = BreakerPolicy(failures=2, min_calls=2, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, services=("svc", "crit"), breakers=policy) as gw:
        for _ in range(4):
            started = time.monotonic()
            with pytest.raises(AggregationFailed) as caught:
                await run(gw, aggregate)
            assert caught.value.status == 404
            assert time.monotonic() - started < 0.5  # the deadline (1 s) was not waited for
        assert (status(gw).breaker, status(gw).failures) == ("closed", 0)
        await eventually(lambda: upstream.abandoned.count("/b/1") == 4)


async def test_a_cancelled_run_is_not_a_failure(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(hang=True))
    aggregate = single()
    async with gateway(upstream, breakers=BreakerPolicy(failures=1, min_calls=1)) as gw:
        for n in range(1, 4):
            task = asyncio.ensure_future(run(gw, aggregate))
            await eventually(received(upstream, n))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert status(gw).breaker == "closed"


async def test_a_cancelled_request_leaves_the_window_alone(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/c/1", Reply(status=404, json={}, delay=0.05))
    upstream.script("/b/1", Reply(status=503, json={}))
    only_b = single("b")
    policy = BreakerPolicy(failures=3, min_calls=3, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, services=("svc", "crit"), breakers=policy) as gw:
        await run(gw, only_b)
        await run(gw, only_b)
        assert status(gw).failures == 2
        upstream.script("/b/1", Reply(hang=True))
        with pytest.raises(AggregationFailed):
            await run(gw, critical_elsewhere())  # svc's request to /b/1 is cancelled
        assert (status(gw).failures, status(gw).calls) == (2, 2)  # neither failure nor success
        upstream.script("/b/1", Reply(status=503, json={}))
        await run(gw, only_b)
        assert status(gw).breaker == "open"


# -- retries -----------------------------------------------------------------------------------


async def test_a_retried_source_sends_at_most_attempts_requests(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/a/1", Reply(status=503, json={"error": "down"}))
    aggregate = single(retry=RetryPolicy(attempts=3, backoff=0.001))
    async with gateway(upstream) as gw:
        result = await run(gw, aggregate)
        assert result["a"].reason == "upstream_status"
        assert result["a"].upstream_status == 503
        assert len(upstream.received) == 3
        assert (status(gw).requests, status(gw).retries) == (1, 2)
        assert status(gw).budget == 8.0


@pytest.mark.parametrize(
    "first",
    [
        Reply(drop=True),
        Reply(status=503, json={}),
        Reply(status=502, json={}),
        Reply(status=500, json={}),
    ],
    ids=["dropped", "503", "502", "500"],
)
@pytest.mark.parametrize("default_client", [False, True], ids=["aiohttp", "default"])
async def test_a_retry_turns_a_flaky_upstream_into_an_ok_part(
    upstream: ScriptedUpstream, first: Reply, default_client: bool
) -> None:
    # aiohttp sends a dropped GET a second time by itself: the gateway sees the second drop.
    failed = [first, first] if first.drop and not default_client else [first]
    sequence(upstream, "/a/1", *failed, Reply(json=OK))
    aggregate = single(retry=RetryPolicy(attempts=2, backoff=0.005))
    async with gateway(upstream, default_client=default_client) as gw:
        result = await run(gw, aggregate)
        assert result["a"].ok
        assert result["a"].value == OK
        assert len(upstream.received) == len(failed) + 1
        assert status(gw).retries == 1
        # The request counts once, as its first attempt ended: the retry is not counted.
        assert (status(gw).failures, status(gw).calls) == (1, 1)


async def test_retries_only_on_what_the_policy_names(upstream: ScriptedUpstream) -> None:
    sequence(upstream, "/a/1", Reply(status=503, json={}), Reply(json=OK))
    sequence(upstream, "/b/1", Reply(drop=True), Reply(json=OK))
    sequence(upstream, "/c/1", Reply(status=429, json={}), Reply(json=OK))
    unavailable_only = RetryPolicy(on=frozenset({"unavailable"}), backoff=0.001)
    only_429 = RetryPolicy(on=frozenset({"429"}), backoff=0.001)
    async with gateway(upstream) as gw:
        assert (await run(gw, single("a", retry=unavailable_only)))["a"].upstream_status == 503
        assert (await run(gw, single("b", retry=unavailable_only)))["b"].ok
        assert (await run(gw, single("c", retry=only_429)))["c"].ok
        assert sorted(upstream.paths()) == ["/a/1", "/b/1", "/b/1", "/c/1", "/c/1"]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(status=404, json={}), "upstream_status"),
        (Reply(status=400, json={}), "upstream_status"),
        (Reply(status=429, json={}), "upstream_status"),  # not in the default ``on``
        (Reply(body=b"{oops"), "invalid_response"),
        (Reply(hang=True), "timeout"),
    ],
    ids=["404", "400", "429", "invalid", "timeout"],
)
async def test_answers_and_timeouts_are_not_retried(
    upstream: ScriptedUpstream, reply: Reply, reason: str
) -> None:
    upstream.script("/a/1", reply)
    aggregate = single(retry=RetryPolicy(attempts=5, backoff=0.0), timeout=0.1)
    async with gateway(upstream) as gw:
        result = await run(gw, aggregate)
        assert result["a"].reason == reason
        assert len(upstream.received) == 1
        assert status(gw).retries == 0


async def test_the_retry_budget_bounds_the_extra_requests(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single(retry=RetryPolicy(attempts=3, backoff=0.0))
    budget = RetryBudget(ratio=0.1, burst=10)
    runs = 200
    async with gateway(upstream, breakers=None, retry_budget=budget) as gw:
        for _ in range(runs):
            assert (await run(gw, aggregate))["a"].upstream_status == 503
        extra = len(upstream.received) - runs
        assert budget.burst <= extra <= budget.burst + budget.ratio * runs + 1
        counted = status(gw)
        assert counted.retries == extra
        assert counted.requests == runs
        # A run that wanted a retry the budget did not allow stopped there: one each.
        assert runs - extra <= counted.over_budget <= runs
        assert 0 <= counted.budget < 1


async def test_no_retries_without_a_retry_budget(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single(retry=RetryPolicy(attempts=3, backoff=0.0))
    async with gateway(upstream, retry_budget=None) as gw:
        assert (await run(gw, aggregate))["a"].upstream_status == 503
        assert len(upstream.received) == 1
        assert (status(gw).retries, status(gw).budget) == (0, 0)


async def test_a_retry_never_goes_past_the_deadline(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}, delay=0.12))
    aggregate = single(retry=RetryPolicy(attempts=5, backoff=0.0))
    async with gateway(upstream, timeout=0.3) as gw:
        result, elapsed = await timed(gw, aggregate)
        # The first 503 came after 0.12 s with 0.18 s left: time enough for a retry that
        # takes as long. Its 503 left 0.06 s: not enough for a third, so the 503 is reported.
        assert result["a"].upstream_status == 503
        assert elapsed < 0.3
        assert len(upstream.received) == 2
        first, retry = (int(r.headers["x-request-timeout-ms"]) for r in upstream.received)
        assert 120 <= retry <= 180 < 250 < first <= 300
        assert status(gw).retries == 1


async def test_a_retry_needs_as_long_as_the_failed_attempt_took(
    upstream: ScriptedUpstream,
) -> None:
    # A slow 503 (0.2 s) leaves 0.1 s: a retry would only time out, and hide the 503.
    upstream.script("/a/1", Reply(status=503, json={}, delay=0.2))
    aggregate = single(retry=RetryPolicy(attempts=5, backoff=0.0))
    async with gateway(upstream, timeout=0.3) as gw:
        result, elapsed = await timed(gw, aggregate)
        assert result["a"].upstream_status == 503
        assert elapsed < 0.3
        assert len(upstream.received) == 1
        assert status(gw).retries == 0


async def test_no_retry_when_too_little_time_is_left(upstream: ScriptedUpstream) -> None:
    # The 503 arrives with less than the 5 ms a retry needs (or the request times out first).
    upstream.script("/a/1", Reply(status=503, json={}, delay=0.297))
    aggregate = single(retry=RetryPolicy(attempts=5, backoff=0.0))
    async with gateway(upstream, timeout=0.3) as gw:
        result, elapsed = await timed(gw, aggregate)
        assert result["a"].reason in ("upstream_status", "timeout")
        assert elapsed < 0.3 + 0.1
        assert len(upstream.received) == 1
        assert status(gw).retries == 0


async def test_no_retry_when_its_backoff_would_end_past_the_deadline(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single(retry=FixedBackoff(attempts=3, backoff=0.35, max_backoff=1.0))
    async with gateway(upstream, timeout=0.3) as gw:
        result, elapsed = await timed(gw, aggregate)
        assert result["a"].upstream_status == 503
        assert elapsed < 0.2  # it gave up at once instead of waiting for nothing
        assert len(upstream.received) == 1
        assert (status(gw).retries, status(gw).over_budget) == (0, 0)


async def test_retries_stop_when_the_breaker_opens(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single(retry=RetryPolicy(attempts=5, backoff=0.0))
    policy = BreakerPolicy(failures=1, min_calls=1, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, breakers=policy) as gw:
        result = await run(gw, aggregate)
        # The first attempt's failure opened the breaker: the part reports that failure, and
        # no retry is spent on a request the breaker would refuse.
        assert result["a"].upstream_status == 503
        assert len(upstream.received) == 1
        counted = status(gw)
        assert (counted.breaker, counted.retries, counted.refused) == ("open", 0, 0)
        assert counted.budget == 10.0


async def test_a_retried_request_counts_once(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single(retry=RetryPolicy(attempts=5, backoff=0.0))
    policy = BreakerPolicy(failures=2, min_calls=2, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, breakers=policy) as gw:
        result = await run(gw, aggregate)
        assert result["a"].upstream_status == 503
        assert len(upstream.received) == 5  # every attempt sent, and failed
        counted = status(gw)
        assert (counted.breaker, counted.failures, counted.calls) == ("closed", 1, 1)
        assert counted.retries == 4
        await run(gw, aggregate)  # a second request: 2 of 2 failed
        assert status(gw).breaker == "open"


# -- hedges ------------------------------------------------------------------------------------


@pytest.mark.parametrize("default_client", [False, True], ids=["aiohttp", "default"])
async def test_a_hedge_answers_when_the_first_request_is_slow(
    upstream: ScriptedUpstream, default_client: bool
) -> None:
    sequence(upstream, "/a/1", Reply(json={"n": 1}, delay=3.0), Reply(json={"n": 2}))
    aggregate = single(hedge_after=0.05)
    async with gateway(upstream, timeout=1.5, default_client=default_client) as gw:
        started = time.monotonic()
        result, elapsed = await timed(gw, aggregate)
        assert result["a"].value == {"n": 2}
        assert elapsed < 0.5  # well under the slow answer
        assert len(upstream.received) == 2
        # Not sent at once: the hedge left after its 50 ms (measured from the run's start; the
        # first request itself may arrive late on a busy machine). The loop's millisecond
        # timers may fire up to 1 ms early.
        assert upstream.received[1].at - started >= 0.048
        counted = status(gw)
        assert (counted.requests, counted.hedges, counted.hedges_won) == (1, 1, 1)
        assert counted.budget == 9.0
        assert bff_tasks() == []
        # The loser was cancelled, and the upstream saw its client go away: at once with
        # aiohttp; pyreqwest cannot abort it, so it ends in Rust at the part's deadline.
        within = 2.0 if default_client else 0.3
        await eventually(lambda: upstream.abandoned == ["/a/1"], within=within)


async def test_the_first_request_may_still_win_after_the_hedge_is_sent(
    upstream: ScriptedUpstream,
) -> None:
    sequence(upstream, "/a/1", Reply(json={"n": 1}, delay=0.15), Reply(json={"n": 2}, delay=1.0))
    aggregate = single(hedge_after=0.05)
    async with gateway(upstream, timeout=1.5) as gw:
        result, elapsed = await timed(gw, aggregate)
        assert result["a"].value == {"n": 1}
        assert elapsed < 0.5
        assert (status(gw).hedges, status(gw).hedges_won) == (1, 0)
        await eventually(lambda: upstream.abandoned == ["/a/1"])


async def test_a_failed_first_request_waits_for_the_hedge(upstream: ScriptedUpstream) -> None:
    sequence(
        upstream, "/a/1", Reply(status=503, json={}, delay=0.1), Reply(json={"n": 2}, delay=0.15)
    )
    aggregate = single(hedge_after=0.05)
    async with gateway(upstream, timeout=1.0) as gw:
        result = await run(gw, aggregate)
        assert result["a"].value == {"n": 2}
        assert (status(gw).hedges, status(gw).hedges_won) == (1, 1)


async def test_no_hedge_when_the_first_answers_in_time(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(json=OK, delay=0.01))
    aggregate = single(hedge_after=0.2)
    async with gateway(upstream) as gw:
        for _ in range(5):
            assert (await run(gw, aggregate))["a"].ok
        assert len(upstream.received) == 5
        assert (status(gw).hedges, status(gw).over_budget) == (0, 0)
        assert upstream.abandoned == []


async def test_hedges_spend_the_retry_budget(upstream: ScriptedUpstream) -> None:
    slow, fast = Reply(json={"n": 1}, delay=0.3), Reply(json={"n": 2})
    sequence(upstream, "/a/1", slow, fast, slow)
    aggregate = single(hedge_after=0.05)
    async with gateway(upstream, retry_budget=RetryBudget(ratio=0.0, burst=1)) as gw:
        hedged, hedged_elapsed = await timed(gw, aggregate)
        assert hedged["a"].value == {"n": 2}
        assert status(gw).budget == 0
        unhedged, unhedged_elapsed = await timed(gw, aggregate)  # no token left: no hedge
        assert unhedged["a"].value == {"n": 1}
        assert unhedged_elapsed >= 0.25 > hedged_elapsed
        assert len(upstream.received) == 3
        counted = status(gw)
        assert (counted.hedges, counted.hedges_won, counted.over_budget) == (1, 1, 1)


async def test_no_hedges_without_a_retry_budget(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(json=OK, delay=0.15))
    aggregate = single(hedge_after=0.05)
    async with gateway(upstream, retry_budget=None) as gw:
        assert (await run(gw, aggregate))["a"].ok
        assert len(upstream.received) == 1
        assert status(gw).hedges == 0


async def test_a_hedge_is_not_sent_after_the_part_timeout(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(hang=True))
    aggregate = single(hedge_after=0.05, timeout=0.052)
    async with gateway(upstream) as gw:
        result, elapsed = await timed(gw, aggregate)
        assert result["a"].reason == "timeout"
        assert elapsed < 0.3
        assert len(upstream.received) == 1
        assert status(gw).hedges == 0


async def test_hedged_and_retried_source(upstream: ScriptedUpstream) -> None:
    # First attempt: slow 503 and a hedge that is also a 503; the retry then answers.
    sequence(
        upstream,
        "/a/1",
        Reply(status=503, json={}, delay=0.1),
        Reply(status=503, json={}),
        Reply(json=OK),
    )
    aggregate = single(hedge_after=0.05, retry=RetryPolicy(attempts=2, backoff=0.0))
    async with gateway(upstream) as gw:
        result = await run(gw, aggregate)
        assert result["a"].ok
        assert len(upstream.received) == 3
        counted = status(gw)
        assert (counted.hedges, counted.hedges_won, counted.retries) == (1, 0, 1)
        assert counted.budget == 8.0


# -- the deadline header -----------------------------------------------------------------------


def header_values(upstream: ScriptedUpstream, name: str = "x-request-timeout-ms") -> dict[str, int]:
    return {r.raw_path: int(r.headers[name]) for r in upstream.received}


@pytest.mark.parametrize("default_client", [False, True], ids=["aiohttp", "default"])
async def test_upstreams_get_the_time_left_in_a_header(
    upstream: ScriptedUpstream, default_client: bool
) -> None:
    upstream.script("*", Reply(json=OK))
    aggregate = Aggregate(
        "deadlines",
        params=[Param("id")],
        sources=[
            Source("a", service="svc", path="/a/{id}", returns=dict[str, int]),
            Source("b", service="svc", path="/b/{id}", returns=dict[str, int], timeout=0.2),
        ],
    )
    async with gateway(upstream, timeout=1.0, default_client=default_client) as gw:
        await run(gw, aggregate)
        values = header_values(upstream)
        assert 900 < values["/a/1"] <= 1000
        assert 100 < values["/b/1"] <= 200
        upstream.received.clear()
        await gw.run(aggregate, {"id": "1"}, time_limit=0.15)
        values = header_values(upstream)
        assert 50 < values["/a/1"] <= 150
        assert 50 < values["/b/1"] <= 150


async def test_a_dependent_source_gets_what_is_left_after_its_dependency(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/first/1", Reply(json={"n": 7}, delay=0.2))
    upstream.script("/then/7", Reply(json=OK))
    aggregate = Aggregate(
        "chain",
        params=[Param("id")],
        sources=[
            Source("first", service="svc", path="/first/{id}", returns=dict[str, int]),
            Source("then", service="svc", path="/then/{first.n}", returns=dict[str, int]),
        ],
    )
    async with gateway(upstream, timeout=0.5) as gw:
        assert (await run(gw, aggregate))["then"].ok
        values = header_values(upstream)
        assert 0 < values["/then/7"] <= 300 < 450 < values["/first/1"] <= 500


async def test_the_deadline_header_can_be_renamed_or_left_out(upstream: ScriptedUpstream) -> None:
    upstream.script("*", Reply(json=OK))
    aggregate = single()
    async with gateway(upstream, deadline_header="X-Time-Budget-Ms") as gw:
        await run(gw, aggregate)
        [received] = upstream.received
        assert "x-request-timeout-ms" not in received.headers
        assert 0 < int(received.headers["x-time-budget-ms"]) <= 1000
    upstream.received.clear()
    async with gateway(upstream, deadline_header=None) as gw:
        await gw.run(aggregate, {"id": "1"}, headers={"x-request-id": "r1"})
        [received] = upstream.received
        assert received.headers["x-request-id"] == "r1"
        assert not any("timeout" in name or "budget" in name for name in received.headers)


# -- the cache and the breaker -----------------------------------------------------------------


async def test_a_stale_entry_is_served_while_the_breaker_is_open(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/a/1", Reply(json={"n": 5}))
    upstream.script("/b/1", Reply(status=503, json={}))
    cached = Aggregate(
        "cached",
        params=[Param("id")],
        sources=[
            Source(
                "a",
                service="svc",
                path="/a/{id}",
                returns=dict[str, int],
                cache=CachePolicy(ttl=0.05, stale_if_error=60),
            ),
            Source("b", service="svc", path="/b/{id}", returns=dict[str, int]),
        ],
    )
    only_b = single("b")
    policy = BreakerPolicy(failures=2, min_calls=2, reset_timeout=STAYS_OPEN)
    async with gateway(upstream, breakers=policy, cache=MemoryStore()) as gw:
        first = await run(gw, cached)
        assert first["a"].value == {"n": 5}
        assert not first["a"].stale
        await run(gw, only_b)
        await run(gw, only_b)
        assert status(gw).breaker == "open"
        await asyncio.sleep(0.1)  # the entry is past its ttl, within stale_if_error
        upstream.received.clear()
        refused = status(gw).refused
        result = await run(gw, cached)
        assert result["a"].ok
        assert result["a"].value == {"n": 5}
        assert result["a"].stale
        assert result["a"].age is not None and result["a"].age >= 0.05
        assert result["b"].reason == "circuit_open"
        assert upstream.received == []
        assert status(gw).refused == refused + 2


async def test_no_stale_entry_means_circuit_open(upstream: ScriptedUpstream) -> None:
    upstream.script("*", Reply(status=503, json={}))
    cached = single(cache=CachePolicy(ttl=10, stale_if_error=60))
    async with gateway(
        upstream, breakers=BreakerPolicy(failures=1, min_calls=1), cache=MemoryStore()
    ) as gw:
        assert (await run(gw, cached))["a"].upstream_status == 503
        upstream.received.clear()
        assert (await run(gw, cached))["a"].reason == "circuit_open"
        assert upstream.received == []


# -- declarations ------------------------------------------------------------------------------


def src(**kwargs: Any) -> Source:
    return Source("x", service="svc", path="/x", returns=dict[str, int], **kwargs)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RetryPolicy(attempts=1), "attempts must be 2 to 5"),
        (lambda: RetryPolicy(attempts=6), "attempts must be 2 to 5"),
        (lambda: RetryPolicy(backoff=-0.1), "must not be negative"),
        (lambda: RetryPolicy(max_backoff=-1), "must not be negative"),
        (lambda: RetryPolicy(on=frozenset({"timeout"})), "unknown 'timeout'"),
        (lambda: RetryPolicy(on=frozenset()), "at least one"),
        (lambda: RetryPolicy(on="5xx"), "not a string"),  # type: ignore[arg-type]
        (lambda: BreakerPolicy(failures=0), "failures must be at least 1"),
        (lambda: BreakerPolicy(min_calls=0), "min_calls must be at least 1"),
        (lambda: BreakerPolicy(failure_rate=0), "failure_rate must be above 0 and at most 1"),
        (lambda: BreakerPolicy(failure_rate=1.5), "failure_rate must be above 0 and at most 1"),
        (lambda: BreakerPolicy(failure_rate=float("nan")), "failure_rate must be above 0"),
        (lambda: BreakerPolicy(window=0), "window must be 0.01 to 3600 seconds"),
        (lambda: BreakerPolicy(window=7200), "window must be 0.01 to 3600 seconds"),
        (lambda: BreakerPolicy(reset_timeout=0), "reset_timeout must be positive"),
        (lambda: BreakerPolicy(counts=frozenset({"4xx"})), "unknown '4xx'"),
        (lambda: BreakerPolicy(counts=frozenset()), "at least one"),
        (lambda: RetryBudget(ratio=1.5), "ratio"),
        (lambda: RetryBudget(ratio=-0.1), "ratio"),
        (lambda: RetryBudget(burst=-1), "burst"),
        (lambda: src(idempotent=False, retry=RetryPolicy()), "not idempotent"),
        (lambda: src(idempotent=False, hedge_after=0.1), "not idempotent"),
        (lambda: src(hedge_after=0), "hedge_after must be positive"),
        (lambda: src(hedge_after=0.5, timeout=0.5), "shorter than its timeout"),
    ],
)
def test_misdeclared_resilience_is_refused(build: Callable[[], object], message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        build()


def test_idempotent_sources_may_be_retried_and_hedged() -> None:
    source = src(retry=RetryPolicy(), hedge_after=0.1, timeout=0.5)
    assert source.retry == RetryPolicy()
    assert src(idempotent=False).retry is None


def test_breakers_for_an_unknown_service_are_refused_when_the_gateway_is_built() -> None:
    with pytest.raises(DeclarationError, match=r"unknown service.*nope"):
        Gateway(services={"svc": "http://127.0.0.1:1"}, breakers={"nope": BreakerPolicy()})
    gw = Gateway(services={"svc": "http://127.0.0.1:1"}, breakers={"svc": None})
    assert gw.upstream_status()["svc"].breaker == "none"


# -- nothing is left behind --------------------------------------------------------------------


async def test_cancelling_a_run_while_a_hedge_is_pending(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(hang=True))
    aggregate = single(hedge_after=0.05)
    async with gateway(upstream, timeout=1.5) as gw:
        task = asyncio.ensure_future(run(gw, aggregate))
        await eventually(lambda: len(upstream.received) == 2)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 0.2
        assert bff_tasks() == []
        assert status(gw).hedges == 1
        await eventually(lambda: upstream.abandoned == ["/a/1", "/a/1"])
        assert (status(gw).breaker, status(gw).failures) == ("closed", 0)


async def test_cancelling_a_run_while_a_retry_waits(upstream: ScriptedUpstream) -> None:
    upstream.script("/a/1", Reply(status=503, json={}))
    aggregate = single(retry=FixedBackoff(attempts=3, backoff=5.0, max_backoff=5.0))
    async with gateway(upstream, timeout=10.0) as gw:
        task = asyncio.ensure_future(run(gw, aggregate))
        await eventually(lambda: status(gw).retries == 1)  # counted before the wait
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 0.2
        assert bff_tasks() == []
        await asyncio.sleep(0.05)
        assert len(upstream.received) == 1  # the retry never went out


async def test_runs_that_end_while_hedges_and_retries_are_pending_leave_nothing(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/slow/1", Reply(hang=True))
    upstream.script("/flaky/1", Reply(status=503, json={}))
    upstream.script("/crit/1", Reply(status=500, json={}, delay=0.1))
    aggregate = Aggregate(
        "pending",
        params=[Param("id")],
        sources=[
            Source(
                "slow", service="svc", path="/slow/{id}", returns=dict[str, int], hedge_after=0.02
            ),
            Source(
                "flaky",
                service="svc",
                path="/flaky/{id}",
                returns=dict[str, int],
                retry=FixedBackoff(attempts=5, backoff=0.03),
            ),
            Source(
                "crit", service="crit", path="/crit/{id}", returns=dict[str, int], critical=True
            ),
        ],
    )
    async with gateway(upstream, services=("svc", "crit"), timeout=1.0, breakers=None) as gw:
        for _ in range(3):
            with pytest.raises(AggregationFailed):
                await run(gw, aggregate)
            assert bff_tasks() == []
        # The deadline ends them too.
        upstream.script("/crit/1", Reply(json=OK))
        result = await gw.run(aggregate, {"id": "1"}, time_limit=0.15)
        assert result["slow"].reason == "timeout"
        assert result["flaky"].upstream_status == 503
        assert bff_tasks() == []
