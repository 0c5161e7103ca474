"""The engine against a real scripted HTTP server: scheduling, deadlines, outcomes, encoding."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import unquote

import msgspec
import pytest
from bff_core import (
    Aggregate,
    AggregationFailed,
    AiohttpTransport,
    Gateway,
    InvalidParameter,
    Param,
    Source,
    UnknownParts,
)

from .scripted_upstream import Reply, ScriptedUpstream, scripted_upstream


class Item(msgspec.Struct):
    id: str
    category: str


class Related(msgspec.Struct):
    ids: list[str]


class Price(msgspec.Struct):
    amount: int


ITEM = {"id": "i1", "category": "lamps"}


def engine_tasks() -> list[asyncio.Task[object]]:
    """Tasks the engine started that are still alive (the in-process server's are not counted)."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("bff-part:")]


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    async with scripted_upstream() as server:
        yield server


@pytest.fixture
async def gateway(upstream: ScriptedUpstream) -> AsyncIterator[Gateway]:
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gw:
        yield gw


def four_parts(*, critical: str | None = None, timeout: float | None = None) -> Aggregate:
    return Aggregate(
        "four",
        params=[Param("id")],
        sources=[
            Source(
                name,
                service="svc",
                path=f"/{name}/{{id}}",
                returns=dict[str, int],
                critical=name == critical,
                timeout=timeout,
            )
            for name in ("a", "b", "c", "d")
        ],
    )


async def test_independent_sources_run_concurrently(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    for name in "abcd":
        upstream.script(f"/{name}/1", Reply(json={"n": 1}, delay=0.2))
    started = time.monotonic()
    result = await gateway.run(four_parts(), {"id": "1"})
    elapsed = time.monotonic() - started
    assert [o.value for o in result.values()] == [{"n": 1}] * 4
    assert all(o.ok for o in result.values())
    # Four 200 ms upstreams in sequence would take 800 ms.
    assert elapsed < 0.6
    assert all(o.duration >= 0.19 for o in result.values())


async def test_dependent_source_waits_for_its_dependency_and_uses_its_field(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.script("/items/i%201", Reply(json=ITEM, delay=0.1))
    upstream.script("/related", Reply(json={"ids": ["i2", "i3"]}))
    upstream.script("/prices/i%201", Reply(json={"amount": 5}, delay=0.1))
    aggregate = Aggregate(
        "page",
        params=[Param("id")],
        sources=[
            Source(
                "related", service="svc", path="/related?category={item.category}", returns=Related
            ),
            Source("item", service="svc", path="/items/{id}", returns=Item, critical=True),
            Source("price", service="svc", path="/prices/{id}", returns=Price),
        ],
    )
    result = await gateway.run(aggregate, {"id": "i 1"})
    assert result.value("related") == Related(ids=["i2", "i3"])
    assert list(result) == ["item", "related", "price"]
    by_path = {r.raw_path.split("?")[0]: r for r in upstream.received}
    assert by_path["/related"].query_string == "category=lamps"
    # item and price concurrently; related only after item answered
    assert abs(by_path["/items/i%201"].at - by_path["/prices/i%201"].at) < 0.05
    assert by_path["/related"].at - by_path["/items/i%201"].at >= 0.09


async def test_a_failed_dependency_fails_its_dependents_without_a_request(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.script("/items/1", Reply(status=503, json={}))
    aggregate = Aggregate(
        "page",
        params=[Param("id")],
        sources=[
            Source("item", service="svc", path="/items/{id}", returns=Item),
            Source("related", service="svc", path="/related/{item.category}", returns=Related),
            Source("more", service="svc", path="/more/{related.ids}", returns=Related),
        ],
    )
    result = await gateway.run(aggregate, {"id": "1"})
    assert result["item"].reason == "upstream_status"
    assert result["item"].upstream_status == 503
    assert result["related"].reason == "dependency_failed"
    assert result["more"].reason == "dependency_failed"
    assert upstream.paths() == ["/items/1"]


async def test_deadline_ends_the_aggregation_and_cancels_what_is_left(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("/a/1", Reply(json={"n": 1}))
    upstream.script("/b/1", Reply(hang=True))
    upstream.script("/c/1", Reply(json={"n": 1}, delay=5))
    upstream.script("/d/1", Reply(drop=True))
    async with Gateway(services={"svc": upstream.url}, timeout=0.3) as gw:
        started = time.monotonic()
        result = await gw.run(four_parts(), {"id": "1"})
        elapsed = time.monotonic() - started
        assert 0.29 <= elapsed < 0.5
        assert result["a"].ok
        assert result["b"].reason == "timeout"
        assert result["c"].reason == "timeout"
        assert result["d"].reason == "unavailable"
        assert engine_tasks() == []
        # The server sees both abandoned requests go away: no connection is left hanging.
        for _ in range(50):
            if len(upstream.abandoned) == 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(upstream.abandoned) == ["/b/1", "/c/1"]


async def test_a_part_timeout_shorter_than_the_deadline(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    for name in "abcd":
        upstream.script(f"/{name}/1", Reply(json={"n": 1}, delay=0.3 if name == "b" else 0))
    started = time.monotonic()
    result = await gateway.run(four_parts(timeout=0.1), {"id": "1"})
    assert time.monotonic() - started < 0.25
    assert result["b"].reason == "timeout"
    assert "its timeout of 100 ms" in result["b"].detail
    assert [result[n].ok for n in "acd"] == [True, True, True]


@pytest.mark.parametrize(
    ("reply", "reason", "status"),
    [
        (Reply(status=503, json={"error": "down"}), "upstream_status", 503),
        (Reply(status=404, json={"error": "no"}), "upstream_status", 404),
        (Reply(body=b'{"n": 1'), "invalid_response", 200),
        (Reply(json=["not", "an", "object"]), "invalid_response", 200),
        (Reply(json={"n": "text"}), "invalid_response", 200),
        (Reply(body=b"x" * (9 * 1024 * 1024)), "invalid_response", None),
        (Reply(drop=True), "unavailable", None),
    ],
    ids=["503", "404", "malformed", "wrong-shape", "wrong-type", "huge", "dropped"],
)
async def test_each_failure_has_one_named_outcome(
    upstream: ScriptedUpstream, gateway: Gateway, reply: Reply, reason: str, status: int | None
) -> None:
    upstream.script("*", Reply(json={"n": 1}))
    upstream.script("/b/1", reply)
    result = await gateway.run(four_parts(), {"id": "1"})
    assert result["b"].reason == reason
    assert result["b"].upstream_status == status
    assert result["b"].value is None
    assert [o.name for o in result.failures] == ["b"]


async def test_an_unreachable_service_is_unavailable() -> None:
    async with scripted_upstream() as server:
        closed_url = server.url  # the port is free again once the server is gone
    async with Gateway(services={"svc": closed_url}) as gw:
        result = await gw.run(four_parts(), {"id": "1"})
    assert {o.reason for o in result.values()} == {"unavailable"}


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(status=404, json={}), 404),
        (Reply(hang=True), 504),
        (Reply(status=500, json={}), 502),
        (Reply(drop=True), 502),
        (Reply(body=b"<html>"), 502),
    ],
    ids=["404", "timeout", "500", "dropped", "malformed"],
)
async def test_a_failed_critical_part_fails_the_aggregate_at_once(
    upstream: ScriptedUpstream, reply: Reply, status: int
) -> None:
    upstream.script("*", Reply(json={"n": 1}, delay=1.0))
    upstream.script("/a/1", reply)
    async with Gateway(services={"svc": upstream.url}, timeout=0.3) as gw:
        started = time.monotonic()
        with pytest.raises(AggregationFailed) as caught:
            await gw.run(four_parts(critical="a"), {"id": "1"})
        elapsed = time.monotonic() - started
    assert caught.value.status == status
    assert caught.value.critical.name == "a"
    assert "a" in str(caught.value)
    # It does not wait for the slow optional parts (1 s) nor, unless it timed out, the deadline.
    assert elapsed < (0.45 if status == 504 else 0.2)


async def test_fields_fetch_only_the_parts_asked_for_and_their_dependencies(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.script("/items/1", Reply(json=ITEM))
    upstream.script("/related/lamps", Reply(json={"ids": []}))
    upstream.script("/prices/1", Reply(json={"amount": 3}))
    aggregate = Aggregate(
        "page",
        params=[Param("id")],
        sources=[
            Source("item", service="svc", path="/items/{id}", returns=Item, critical=True),
            Source("related", service="svc", path="/related/{item.category}", returns=Related),
            Source("price", service="svc", path="/prices/{id}", returns=Price),
        ],
    )
    result = await gateway.run(aggregate, {"id": "1"}, fields="price")
    assert list(result) == ["price"]
    assert upstream.paths() == ["/prices/1"]
    upstream.received.clear()
    result = await gateway.run(aggregate, {"id": "1"}, fields=" related ")
    assert list(result) == ["related"]
    assert sorted(upstream.paths()) == ["/items/1", "/related/lamps"]
    with pytest.raises(UnknownParts) as caught:
        await gateway.run(aggregate, {"id": "1"}, fields="price,nope")
    assert caught.value.valid == ("item", "related", "price")
    assert "nope" in str(caught.value)
    with pytest.raises(UnknownParts):
        await gateway.run(aggregate, {"id": "1"}, fields="")


HOSTILE_IDS = [
    "..",
    ".",
    "../admin",
    "../../etc/passwd",
    "a/b",
    "a\\b",
    "a?admin=1",
    "a#frag",
    "a&b=c",
    "%2e%2e",
    "%2F",
    "a b",
    "é☃",
    "a;b",
    "@evil.example",
    "//evil.example/x",
    "{id}",
]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
async def test_no_value_can_change_the_path_or_add_a_query(
    upstream: ScriptedUpstream, gateway: Gateway, hostile: str
) -> None:
    upstream.script("*", Reply(json={"n": 1}))
    aggregate = Aggregate(
        "one",
        params=[Param("id")],
        sources=[Source("x", service="svc", path="/things/{id}/detail", returns=dict[str, int])],
    )
    result = await gateway.run(aggregate, {"id": hostile})
    assert result["x"].ok
    [received] = upstream.received
    assert received.query_string == ""
    prefix, segment, suffix = received.raw_path.split("/")[1:]
    assert (prefix, suffix) == ("things", "detail")
    assert unquote(segment) == hostile


async def test_query_values_are_encoded_as_one_value(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.script("*", Reply(json={"n": 1}))
    aggregate = Aggregate(
        "one",
        params=[Param("q")],
        sources=[Source("x", service="svc", path="/search?q={q}&limit=5", returns=dict[str, int])],
    )
    await gateway.run(aggregate, {"q": "a&limit=500#x y"})
    [received] = upstream.received
    assert received.raw_path.split("?")[0] == "/search"
    assert received.query_string == "q=a%26limit%3D500%23x%20y&limit=5"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "required"),
        ("", "empty"),
        ("x" * 129, "longer than 128"),
        ("a\nb", "control character"),
        ("a\x00", "control character"),
        ("a\x7f", "control character"),
    ],
)
async def test_bad_parameters_are_refused_before_any_request(
    upstream: ScriptedUpstream, gateway: Gateway, value: str | None, problem: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        await gateway.run(four_parts(), {"id": value})
    assert problem in str(caught.value)
    assert caught.value.parameter == "id"
    assert upstream.received == []


async def test_a_128_character_id_is_accepted(upstream: ScriptedUpstream, gateway: Gateway) -> None:
    upstream.script("*", Reply(json={"n": 1}))
    result = await gateway.run(four_parts(), {"id": "x" * 128})
    assert all(o.ok for o in result.values())


@pytest.mark.parametrize(
    ("transport", "released_within"),
    [
        # aiohttp closes a cancelled request's connection at once.
        (AiohttpTransport, 0.3),
        # The default (pyreqwest) cannot abort a cancelled request: it ends in Rust by the
        # aggregation's deadline (0.5 s after the run started), never later.
        (None, 0.5 + 0.3),
    ],
    ids=["aiohttp", "default"],
)
async def test_cancelling_a_run_releases_every_upstream_call(
    upstream: ScriptedUpstream, transport: type[AiohttpTransport] | None, released_within: float
) -> None:
    upstream.script("*", Reply(hang=True))
    own_transport = None if transport is None else transport()
    gateway = Gateway(services={"svc": upstream.url}, timeout=0.5, transport=own_transport)
    try:
        started = time.monotonic()
        run = asyncio.ensure_future(gateway.run(four_parts(), {"id": "1"}))
        await asyncio.sleep(0.1)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert time.monotonic() - started < 0.2  # the run itself ends at once
        assert engine_tasks() == []
        for _ in range(100):
            if len(upstream.abandoned) == 4:
                break
            await asyncio.sleep(0.02)
        assert len(upstream.abandoned) == 4
        assert time.monotonic() - started < released_within
    finally:
        await gateway.aclose()
        if own_transport is not None:  # a transport passed in is the caller's to close
            await own_transport.aclose()


async def test_server_timing_names_every_part_and_the_total(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.script("*", Reply(json={"n": 1}))
    upstream.script("/c/1", Reply(status=500, json={}))
    result = await gateway.run(four_parts(), {"id": "1"})
    entries = [e.strip() for e in result.server_timing().split(",")]
    assert [e.split(";")[0] for e in entries] == ["a", "b", "c", "d", "total"]
    assert entries[2].endswith('desc="upstream_status"')
    assert all(";dur=" in e for e in entries)


async def test_headers_are_sent_to_upstreams(upstream: ScriptedUpstream, gateway: Gateway) -> None:
    upstream.script("*", Reply(json={"n": 1}))
    await gateway.run(four_parts(), {"id": "1"}, headers={"x-request-id": "r-1"})
    assert {r.headers.get("x-request-id") for r in upstream.received} == {"r-1"}
    assert {r.headers.get("accept") for r in upstream.received} == {"application/json"}


async def test_fields_an_upstream_adds_are_ignored(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.script("/items/1", Reply(json={**ITEM, "new_field": [1, 2], "colour": "red"}))
    aggregate = Aggregate(
        "one",
        params=[Param("id")],
        sources=[Source("item", service="svc", path="/items/{id}", returns=Item)],
    )
    result = await gateway.run(aggregate, {"id": "1"})
    assert result.value("item") == Item(id="i1", category="lamps")
