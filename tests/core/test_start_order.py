"""The parts that start together start slowest first, learnt from their recent durations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
from bff_core import Aggregate, AiohttpTransport, Gateway, Param, Source, UpstreamResponse
from bff_core._engine._start_order import REORDER_EVERY, StartOrder

from .scripted_upstream import Reply, ScriptedUpstream, scripted_upstream


class RecordingTransport(AiohttpTransport):
    """The real aiohttp transport, remembering the order in which requests were handed to it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    async def get(
        self, url: str, *, headers: Mapping[str, str], time_left: float | None = None
    ) -> UpstreamResponse:
        self.sent.append(url.rsplit("/", 2)[-2])
        return await super().get(url, headers=headers, time_left=time_left)


def parts(*names: str) -> list[Source]:
    return [Source(n, service="svc", path=f"/{n}/{{id}}", returns=dict[str, int]) for n in names]


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    async with scripted_upstream() as server:
        yield server


def test_unseen_parts_keep_the_declared_order() -> None:
    a, b, c = parts("a", "b", "c")
    order = StartOrder()
    assert list(order.of((a, b, c))) == [a, b, c]
    order.observe(b, 0.010)
    # a and c are unseen (instant): b first, then the others as declared.
    assert list(order.of((a, b, c))) == [b, a, c]


def test_the_slowest_recently_goes_first_and_ties_keep_the_declared_order() -> None:
    a, b, c, d = parts("a", "b", "c", "d")
    roots = (a, b, c, d)
    order = StartOrder()
    for part, seconds in ((a, 0.020), (b, 0.005), (c, 0.020), (d, 0.040)):
        order.observe(part, seconds)
    assert list(order.of(roots)) == [d, a, c, b]


def test_a_settled_order_is_sorted_again_only_every_so_many_runs() -> None:
    a, b = parts("a", "b")
    roots = (a, b)
    order = StartOrder()
    order.observe(a, 0.001)
    order.observe(b, 0.050)
    assert list(order.of(roots)) == [b, a]
    for _ in range(20):  # a becomes the slow one; the recent mean follows within a few runs
        order.observe(a, 0.200)
    assert (order.recent(a) or 0.0) > (order.recent(b) or 0.0)
    seen = [order.of(roots)[0] for _ in range(REORDER_EVERY)]
    assert seen[: REORDER_EVERY - 1] == [b] * (REORDER_EVERY - 1)
    assert seen[-1] is a


def test_a_cut_off_part_counts_as_at_least_that_slow() -> None:
    (a,) = parts("a")
    order = StartOrder()
    order.observe_at_least(a, 0.5)
    assert order.recent(a) == 0.5
    order.observe_at_least(a, 0.1)  # a lower bound below what is known says nothing new
    assert order.recent(a) == 0.5


def test_recent_is_per_object_not_per_name() -> None:
    first, second = parts("a"), parts("a")
    order = StartOrder()
    order.observe(first[0], 0.3)
    assert order.recent(first[0]) == 0.3
    assert order.recent(second[0]) is None


async def test_the_engine_sends_the_slowest_part_first_once_it_has_seen_it(
    upstream: ScriptedUpstream,
) -> None:
    for name, delay in (("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.15)):
        upstream.script(f"/{name}/1", Reply(json={"n": 1}, delay=delay))
    aggregate = Aggregate("four", params=[Param("id")], sources=parts("a", "b", "c", "d"))
    transport = RecordingTransport()
    async with Gateway(services={"svc": upstream.url}, timeout=2.0, transport=transport) as gw:
        first = await gw.run(aggregate, {"id": "1"})
        assert all(o.ok for o in first.values())
        assert transport.sent == ["a", "b", "c", "d"]  # nothing known yet: as declared
        transport.sent.clear()
        second = await gw.run(aggregate, {"id": "1"})
        assert all(o.ok for o in second.values())
        assert transport.sent[0] == "d"
        assert sorted(transport.sent) == ["a", "b", "c", "d"]
    await transport.aclose()


async def test_with_slowest_first_off_the_declared_order_stands(
    upstream: ScriptedUpstream,
) -> None:
    for name, delay in (("a", 0.0), ("b", 0.1)):
        upstream.script(f"/{name}/1", Reply(json={"n": 1}, delay=delay))
    aggregate = Aggregate("two", params=[Param("id")], sources=parts("a", "b"))
    transport = RecordingTransport()
    async with Gateway(
        services={"svc": upstream.url}, timeout=2.0, transport=transport, slowest_first=False
    ) as gw:
        for _ in range(3):
            assert all(o.ok for o in (await gw.run(aggregate, {"id": "1"})).values())
    assert transport.sent == ["a", "b"] * 3
    await transport.aclose()
