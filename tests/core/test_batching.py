"""Cross-request batching against a real scripted HTTP server: the single reads that concurrent
runs need from a batched source go out as batch requests, and each part gets what a single
read would have given it (its item, its 404, its own failure, its own deadline).

Runs started together (one ``asyncio.gather``) start their parts in one turn of the event loop,
in order: the first run's read of each source leads (it is sent at once, as its own single
read) and the others' gather behind it into batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import msgspec
import pytest
from bff_core import (
    Aggregate,
    AggregateResult,
    AggregationFailed,
    Batch,
    CachePolicy,
    DeclarationError,
    Gateway,
    Param,
    Source,
)
from bff_core._cache import MemoryStore
from bff_core._guards import Identity
from bff_core._telemetry import Metrics, Tracing
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .scripted_upstream import Reply, ScriptedUpstream, batch_reply, scripted_upstream


class Product(msgspec.Struct):
    id: str
    name: str


class Price(msgspec.Struct):
    product_id: str
    amount: int


PRODUCTS = {f"p{i}": {"id": f"p{i}", "name": f"Product {i}"} for i in range(100)}
PRICES = {f"p{i}": {"product_id": f"p{i}", "amount": 100 + i} for i in range(100)}
POISON = "p13"


def script_singles(upstream: ScriptedUpstream, *, delay: float = 0.0) -> None:
    for pid, product in PRODUCTS.items():
        upstream.script(f"/products/{pid}", Reply(json=product, delay=delay))
    for pid, price in PRICES.items():
        upstream.script(f"/prices/{pid}", Reply(json=price, delay=delay))


def product(*, size: int = 50, **options: Any) -> Source:
    """The product read, batched through ``/products?ids=``."""
    return Source(
        "product",
        service="svc",
        path="/products/{id}",
        returns=Product,
        batch=Batch("/products?ids={ids}", size=size, key="id"),
        **options,
    )


def page(*, priced_per_user: bool = False) -> Aggregate:
    return Aggregate(
        "page",
        params=[Param("id")],
        sources=[
            product(critical=True),
            Source(
                "pricing",
                service="svc",
                path="/prices/{id}",
                returns=Price,
                subject_header="x-user-id" if priced_per_user else None,
                batch=Batch("/prices?ids={ids}", size=50, key="product_id"),
            ),
        ],
    )


def batches(upstream: ScriptedUpstream, path: str) -> list[list[str]]:
    """The ids of each batch request to ``path`` (``/products``), in the order they came."""
    found = []
    for received in upstream.received:
        if received.raw_path.startswith(path + "?ids="):
            raw = received.raw_path.partition("ids=")[2]
            found.append([unquote(one) for one in raw.split(",")])
    return found


def singles(upstream: ScriptedUpstream, path: str) -> list[str]:
    return [r.raw_path for r in upstream.received if r.raw_path.startswith(path + "/")]


def every_id_asked(upstream: ScriptedUpstream, path: str) -> list[str]:
    """The ids asked of ``path``, in batches and single reads, sorted."""
    asked = [one for chunk in batches(upstream, path) for one in chunk]
    asked += [unquote(single.rpartition("/")[2]) for single in singles(upstream, path)]
    return sorted(asked)


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    async with scripted_upstream() as server:
        server.script("/products", batch_reply(PRODUCTS))
        server.script("/prices", batch_reply(PRICES))
        script_singles(server)
        yield server


@pytest.fixture
async def gateway(upstream: ScriptedUpstream) -> AsyncIterator[Gateway]:
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gw:
        yield gw


async def run_all(gateway: Gateway, aggregate: Aggregate, ids: list[str]) -> list[Any]:
    return await asyncio.gather(
        *(gateway.run(aggregate, {"id": pid}) for pid in ids), return_exceptions=True
    )


def whole(result: Any, pid: str) -> None:
    assert isinstance(result, AggregateResult), result
    product = result.value("product")
    price = result.value("pricing")
    assert isinstance(product, Product) and product.id == pid, product
    assert product.name == PRODUCTS[pid]["name"]
    assert isinstance(price, Price) and price.product_id == pid, price
    assert price.amount == PRICES[pid]["amount"]
    assert not result.failures


async def test_forty_concurrent_runs_read_each_source_in_one_batch(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    ids = [f"p{i}" for i in range(40)]
    results = await run_all(gateway, page(), ids)
    for pid, result in zip(ids, results, strict=True):
        whole(result, pid)
    for path in ("/products", "/prices"):
        asked = batches(upstream, path)
        assert len(asked) + len(singles(upstream, path)) <= 8, asked
        # The first run's read led, alone; the other 39 gathered behind it.
        assert singles(upstream, path) == [f"{path}/p0"]
        assert every_id_asked(upstream, path) == sorted(ids)


async def test_the_first_read_of_a_turn_leads_and_the_rest_gather_behind_it(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    aggregate = page()
    for turn in range(2):
        ids = [f"p{turn * 10 + i}" for i in range(4)]
        for pid, result in zip(ids, await run_all(gateway, aggregate, ids), strict=True):
            whole(result, pid)
    # Each turn's first read went alone, and no later than the reads gathered behind it; a
    # later turn's first read leads again.
    assert singles(upstream, "/products") == ["/products/p0", "/products/p10"]
    assert batches(upstream, "/products") == [["p1", "p2", "p3"], ["p11", "p12", "p13"]]
    sent = [r.raw_path for r in upstream.received if r.raw_path.startswith("/products")]
    assert sent.index("/products/p0") < sent.index("/products?ids=p1,p2,p3")


async def test_with_a_window_every_read_gathers(upstream: ScriptedUpstream) -> None:
    ids = ["p1", "p2", "p3"]
    async with Gateway(services={"svc": upstream.url}, timeout=2.0, batch_window=0.02) as gw:
        for pid, result in zip(ids, await run_all(gw, page(), ids), strict=True):
            whole(result, pid)
    assert not singles(upstream, "/products")
    assert batches(upstream, "/products") == [ids]


async def test_with_batching_off_every_part_is_its_own_request(upstream: ScriptedUpstream) -> None:
    ids = [f"p{i}" for i in range(40)]
    async with Gateway(services={"svc": upstream.url}, timeout=2.0, batch_window=None) as gw:
        results = await run_all(gw, page(), ids)
    for pid, result in zip(ids, results, strict=True):
        whole(result, pid)
    assert not batches(upstream, "/products") and not batches(upstream, "/prices")
    assert len(singles(upstream, "/products")) == 40
    assert len(singles(upstream, "/prices")) == 40


async def test_a_run_alone_sends_its_own_single_read(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    whole(await gateway.run(page(), {"id": "p7"}), "p7")
    assert singles(upstream, "/products") == ["/products/p7"]
    assert not batches(upstream, "/products")


async def test_a_batch_is_at_most_the_declared_size(upstream: ScriptedUpstream) -> None:
    aggregate = Aggregate("small", params=[Param("id")], sources=[product(size=7)])
    ids = [f"p{i}" for i in range(30)]
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gw:
        results = await run_all(gw, aggregate, ids)
    for pid, result in zip(ids, results, strict=True):
        assert result.value("product").id == pid
    asked = batches(upstream, "/products")
    assert asked and max(len(chunk) for chunk in asked) <= 7
    assert every_id_asked(upstream, "/products") == sorted(ids)


async def test_identical_ids_are_asked_once_and_answered_to_each(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    ids = ["p1"] * 10 + ["p2", "p3"]
    results = await run_all(gateway, page(), ids)
    for pid, result in zip(ids, results, strict=True):
        whole(result, pid)
    # The leading read of p1 went alone; the nine others asked for it once, in the batch.
    assert singles(upstream, "/products") == ["/products/p1"]
    asked = batches(upstream, "/products")
    assert [sorted(chunk) for chunk in asked] == [["p1", "p2", "p3"]]


async def test_an_id_the_batch_leaves_out_is_that_parts_404(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    results = await run_all(gateway, page(), ["p1", "nope", "p2"])
    whole(results[0], "p1")
    whole(results[2], "p2")
    failed = results[1]
    assert isinstance(failed, AggregationFailed)
    assert failed.critical.upstream_status == 404
    assert failed.status == 404


async def test_a_poison_id_fails_only_its_own_part(upstream: ScriptedUpstream) -> None:
    def poisoned(ids: list[str]) -> Reply | None:
        return Reply(status=500, json={"error": "boom"}) if POISON in ids else None

    upstream.script("/prices", batch_reply(PRICES, fail=poisoned))
    ids = [f"p{i}" for i in range(32)]
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gw:
        results = await run_all(gw, page(), ids)
    for pid, result in zip(ids, results, strict=True):
        if pid == POISON:
            assert isinstance(result, AggregateResult)
            assert result["pricing"].reason == "upstream_status"
            assert result["pricing"].upstream_status == 500
            assert result.value("product").id == POISON
        else:
            whole(result, pid)
        status = gw.upstreams.status()["svc"]
    asked = batches(upstream, "/prices")
    # The first batch, then two halves per level until one id is left: about 2 log2(32).
    assert len(asked) <= 1 + 2 * 5, asked
    assert [POISON] in asked
    assert status.retries == (len(asked) - 1) // 2


async def test_a_batch_that_fails_as_a_whole_is_not_split_into_a_storm(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/prices", Reply(status=503, json={"error": "down"}))
    ids = [f"p{i}" for i in range(40)]
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gw:
        results = await run_all(gw, page(), ids)
        # Both halves failed: the service's failure, counted once, as the batch's.
        counted = gw.upstreams.status()["svc"]
        assert (counted.failures, counted.retries) == (1, 1)
    leading, *gathered = results
    whole(leading, "p0")  # its single read: the single reads are up
    for result in gathered:
        assert isinstance(result, AggregateResult)
        assert result["pricing"].upstream_status == 503
    # The batch, its two halves, and no more: both halves failing is not one id's doing.
    assert len(batches(upstream, "/prices")) == 3


async def test_a_malformed_batch_answer_is_isolated_too(upstream: ScriptedUpstream) -> None:
    def garbled(ids: list[str]) -> Reply | None:
        return Reply(body=b"[{not json") if "p5" in ids else None

    upstream.script("/products", batch_reply(PRODUCTS, fail=garbled))
    ids = [f"p{i}" for i in range(8)]
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gw:
        results = await run_all(gw, page(), ids)
    for pid, result in zip(ids, results, strict=True):
        if pid == "p5":
            assert isinstance(result, AggregationFailed)
            assert result.critical.reason == "invalid_response"
        else:
            whole(result, pid)


async def test_two_users_priced_reads_never_share_a_batch(upstream: ScriptedUpstream) -> None:
    aggregate = page(priced_per_user=True)
    alice = Identity(subject="alice", token="a.b.c", expires_at=time.time() + 60, claims={})
    bob = Identity(subject="bob", token="d.e.f", expires_at=time.time() + 60, claims={})
    calls = []
    for i in range(20):
        who = alice if i % 2 else bob
        calls.append((who, f"p{i}"))
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gw:
        results = await asyncio.gather(
            *(gw.run(aggregate, {"id": pid}, identity=who) for who, pid in calls)
        )
    for (_, pid), result in zip(calls, results, strict=True):
        whole(result, pid)
    wanted = {"alice": {pid for who, pid in calls if who is alice}}
    wanted["bob"] = {pid for who, pid in calls if who is bob}
    priced = [r for r in upstream.received if r.raw_path.startswith("/prices")]
    # Per user: the first read leads alone, the other nine gather in one batch.
    assert len(priced) == 4
    got: dict[str, set[str]] = {"alice": set(), "bob": set()}
    for received in priced:
        user = received.headers["x-user-id"]
        if "?ids=" in received.raw_path:
            asked = {unquote(one) for one in received.raw_path.partition("ids=")[2].split(",")}
        else:
            asked = {unquote(received.raw_path.rpartition("/")[2])}
        assert asked <= wanted[user], (user, asked)
        got[user] |= asked
    assert got == wanted
    # The product source is not per user: one batch for both (behind the one leading read).
    assert len(batches(upstream, "/products")) == 1
    assert singles(upstream, "/products") == ["/products/p0"]


async def test_a_part_stops_waiting_at_its_own_deadline_while_its_batch_goes_on(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/products", batch_reply(PRODUCTS, delay=1.0))
    aggregate = page()
    async with Gateway(services={"svc": upstream.url}, timeout=3.0) as gw:

        async def timed(pid: str, time_limit: float) -> tuple[Any, float]:
            began = time.monotonic()
            try:
                result = await gw.run(aggregate, {"id": pid}, time_limit=time_limit)
                return result, time.monotonic() - began
            except AggregationFailed as failed:
                return failed, time.monotonic() - began

        # p0's read leads (a single read, answered at once); p1's and p2's gather in a batch.
        timings = await asyncio.gather(timed("p0", 3.0), timed("p1", 0.1), timed("p2", 3.0))
    (short, short_took), (long, long_took) = timings[1:]
    assert isinstance(short, AggregationFailed)
    assert short.critical.reason == "timeout"
    # Ended by its own 100 ms, not by the batch's second (which it did not shorten).
    assert short_took < 0.6 < long_took
    whole(long, "p2")
    assert [sorted(chunk) for chunk in batches(upstream, "/products")] == [["p1", "p2"]]


async def test_each_item_of_a_batch_is_cached_on_its_own(upstream: ScriptedUpstream) -> None:
    cached = Aggregate("cached", params=[Param("id")], sources=[product(cache=CachePolicy(ttl=60))])
    async with Gateway(services={"svc": upstream.url}, timeout=2.0, cache=MemoryStore()) as gw:
        await run_all(gw, cached, ["p1", "p2", "p3"])
        # p1's read led alone; p2 and p3 went in one batch.
        assert [r.raw_path for r in upstream.received] == ["/products/p1", "/products?ids=p2,p3"]
        again = await gw.run(cached, {"id": "p3"})
    assert again["product"].cache == "hit"
    assert again.value("product").id == "p3"
    assert len(upstream.received) == 2


async def test_a_batch_request_has_one_span_linked_to_every_part(
    upstream: ScriptedUpstream,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ids = ["p1", "p2", "p3"]
    async with Gateway(
        services={"svc": upstream.url}, timeout=2.0, tracing=Tracing(provider)
    ) as gw:
        await run_all(gw, page(), ids)
    spans = exporter.get_finished_spans()
    parts = {span.context.span_id: span for span in spans if span.name == "part product"}
    assert len(parts) == 3
    (batch,) = [span for span in spans if span.name == "batch product"]
    # p1's read led alone: its request carries its own part's span, as with batching off.
    (led,) = [r for r in upstream.received if r.raw_path == "/products/p1"]
    (leading,) = [span_id for span_id in parts if f"{span_id:016x}" in led.headers["traceparent"]]
    assert {link.context.span_id for link in batch.links} == set(parts) - {leading}
    assert batch.attributes is not None and batch.attributes["bff.batch.ids"] == 2
    (sent,) = [r for r in upstream.received if r.raw_path.startswith("/products?")]
    assert f"{batch.context.span_id:016x}" in sent.headers["traceparent"]


async def test_the_ids_per_batch_request_are_a_histogram(upstream: ScriptedUpstream) -> None:
    metrics = Metrics()
    async with Gateway(services={"svc": upstream.url}, timeout=2.0, metrics=metrics) as gw:
        await run_all(gw, page(), [f"p{i}" for i in range(5)])
    text = metrics.exposition().decode()
    # Per source, the leading read alone and a batch of the four others.
    assert 'bff_upstream_batch_ids_count{service="svc"} 2.0' in text
    assert 'bff_upstream_batch_ids_sum{service="svc"} 8.0' in text
    assert 'bff_upstream_batch_ids_bucket{le="8.0",service="svc"} 2.0' in text


def test_a_batched_part_must_read_one_id() -> None:
    batch = Batch("/products?ids={ids}", size=50, key="id")
    with pytest.raises(DeclarationError, match="exactly one placeholder"):
        Aggregate(
            "two",
            params=[Param("id"), Param("lang")],
            sources=[
                Source(
                    "product",
                    service="svc",
                    path="/products/{id}?lang={lang}",
                    returns=Product,
                    batch=batch,
                )
            ],
        )
    with pytest.raises(DeclarationError, match="may use only"):
        Aggregate(
            "params",
            params=[Param("id"), Param("lang")],
            sources=[
                Source(
                    "product",
                    service="svc",
                    path="/products/{id}",
                    returns=Product,
                    batch=Batch("/products?ids={ids}&lang={lang}", size=50, key="id"),
                )
            ],
        )
    with pytest.raises(DeclarationError, match="same_as_item=False"):
        Aggregate(
            "summary",
            params=[Param("id")],
            sources=[
                Source(
                    "product",
                    service="svc",
                    path="/products/{id}",
                    returns=Product,
                    batch=Batch("/products?ids={ids}", size=50, key="id", same_as_item=False),
                )
            ],
        )


async def test_a_batch_names_every_client_request_it_serves(upstream: ScriptedUpstream) -> None:
    aggregate = page()
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gw:
        await asyncio.gather(
            *(
                gw.run(aggregate, {"id": f"p{i}"}, headers={"x-request-id": f"req-{i}"})
                for i in range(3)
            )
        )
    (led,) = [r for r in upstream.received if r.raw_path == "/products/p0"]
    assert led.headers["x-request-id"] == "req-0"
    (sent,) = [r for r in upstream.received if r.raw_path.startswith("/products?")]
    assert sent.headers["x-request-id"].split(",") == ["req-1", "req-2"]


async def test_when_every_part_it_serves_is_gone_the_batch_request_is_abandoned(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/products", Reply(hang=True))
    aggregate = page()
    async with Gateway(services={"svc": upstream.url}, timeout=0.3, http_client="aiohttp") as gw:
        # p0's read leads (a single read, answered); p1 to p3 wait for the hung batch.
        leading, *gathered = await run_all(gw, aggregate, ["p0", "p1", "p2", "p3"])
        whole(leading, "p0")
        assert all(isinstance(r, AggregationFailed) for r in gathered)
        for _ in range(100):
            if upstream.abandoned:
                break
            await asyncio.sleep(0.02)
    assert [path for path in upstream.abandoned if path.startswith("/products?")], (
        "the hung batch request was left running after every part it served had ended"
    )


async def test_a_group_whose_parts_all_ended_before_it_was_sent_is_not_joined_again(
    upstream: ScriptedUpstream,
) -> None:
    aggregate = page()
    async with Gateway(services={"svc": upstream.url}, timeout=2.0, batch_window=0.2) as gw:
        # Its run ends (10 ms) while its group still waits for the window (200 ms).
        with pytest.raises(AggregationFailed):
            await gw.run(aggregate, {"id": "p1"}, time_limit=0.01)
        # A later read starts a group of its own instead of waiting in the abandoned one.
        whole(await gw.run(aggregate, {"id": "p2"}, time_limit=1.0), "p2")
    assert not batches(upstream, "/products") or ["p1"] not in batches(upstream, "/products")


async def test_a_poison_id_in_every_batch_opens_no_breaker(upstream: ScriptedUpstream) -> None:
    # One client asks for the poison id again and again, each time among 16 other clients'
    # reads. Each batch it lands in fails (500) before halving finds it: were that failure
    # counted, half the service's requests (the turn's leading read, then the batch) would be
    # failures, and the breaker would open for every client. A batch whose other ids the
    # service answered counts as an answer; one the budget let nobody split, not at all.
    def poisoned(ids: list[str]) -> Reply | None:
        return Reply(status=500, json={"error": "boom"}) if POISON in ids else None

    upstream.script("/prices", batch_reply(PRICES, fail=poisoned))
    priced = Aggregate("priced", params=[Param("id")], sources=[page().sources[1]])
    seen: list[str] = []
    isolated = 0
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gw:  # default breaker
        gw.upstreams.on_transition(lambda service, state, opened_at: seen.append(state))
        for round_ in range(15):
            others = [f"p{20 + (round_ * 16 + n) % 80}" for n in range(16)]
            leading, poisoned_one, *rest = await run_all(
                gw, priced, [others[0], POISON, *others[1:]]
            )
            assert poisoned_one["pricing"].upstream_status == 500  # its own failure
            assert leading["pricing"].ok
            if all(r["pricing"].ok for r in rest):
                isolated += 1
            # else out of retry budget (finding one id among 16 costs four splits, the batch
            # earns 1.6 tokens): parts of the batch share its failure, as the budget bounds.
            assert gw.upstreams.status()["svc"].breaker == "closed", round_
        counted = gw.upstreams.status()["svc"]
    assert counted.over_budget and isolated >= 3  # the budget's burst and what batches earned
    # Each round's leading read counted, and each batch whose halving had the service answer
    # other ids: none of them a failure.
    assert counted.failures == 0 and counted.calls >= 15 + isolated
    assert seen == []
