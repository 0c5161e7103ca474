"""Streamed answers end to end: Server-Sent Events and NDJSON from both BFFs (served from the
test process, over real HTTP), events timed as they arrive, faults injected into the real demo
upstreams."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.processes import Served

from .conftest import Upstreams, serve_bff

PRODUCT = "/api/aggregated/product"
CATEGORY = "/api/aggregated/category"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"


@dataclass
class Event:
    name: str
    data: Any
    at: float  # seconds after the request was sent


def read_events(response: httpx.Response, began: float) -> Iterator[Event]:
    """The events of a streamed answer as they arrive (heartbeats included, as ``heartbeat``)."""
    if response.headers["content-type"].startswith(SSE):
        name, data = "", ""
        for line in response.iter_lines():
            if line.startswith(":"):
                yield Event("heartbeat", None, time.perf_counter() - began)
            elif line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif line == "" and name:
                yield Event(name, json.loads(data), time.perf_counter() - began)
                name, data = "", ""
    else:
        for line in response.iter_lines():
            if line:
                event = json.loads(line)
                yield Event(event["event"], event.get("data"), time.perf_counter() - began)


@contextmanager
def streamed(
    http: httpx.Client, url: str, accept: str = SSE, **params: Any
) -> Iterator[tuple[httpx.Response, Iterator[Event]]]:
    began = time.perf_counter()
    with http.stream("GET", url, params=params, headers={"accept": accept}) as response:
        yield response, read_events(response, began)


def merged(events: list[Event]) -> dict[str, Any]:
    """What a client shows: every event's view merged in order."""
    view: dict[str, Any] = {}
    for event in events:
        if event.name in ("ready", "part", "failed"):
            view.update(event.data["view"])
    return view


@pytest.mark.parametrize("accept", [SSE, NDJSON])
def test_both_formats_carry_the_same_view_as_the_json_answer(
    upstreams: Upstreams, http: httpx.Client, bff: Served, accept: str
) -> None:
    whole = http.get(f"{bff.url}{PRODUCT}", params={"id": "p-1003"}).json()
    with streamed(http, f"{bff.url}{PRODUCT}", accept, id="p-1003") as (response, events):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(accept)
        assert response.headers["vary"] == "Accept"
        assert response.headers["cache-control"] == "no-cache"
        received = [e for e in events if e.name != "heartbeat"]
    names = [e.name for e in received]
    assert names[0] == "ready" and names[-1] == "done"
    assert sorted(names[1:-1]) == ["part", "part", "part"]
    assert received[0].data["parts"] == ["product"]
    assert set(received[0].data["view"]) == {"product"}
    assert merged(received) == whole
    summary = received[-1].data
    assert summary["errors"] == [] and summary["stale"] == []
    assert set(summary["timing"]) == {"product", "inventory", "pricing", "reviews", "total"}


def test_parts_arrive_as_they_end_not_with_the_last(
    upstreams: Upstreams, http: httpx.Client, web_bff: Served
) -> None:
    upstreams.inject("reviews", latency_ms=300)
    with streamed(http, f"{web_bff.url}{PRODUCT}", id="p-1004") as (_, events):
        received = {e.data.get("part", e.name) if e.data else e.name: e for e in events}
    ready, reviews = received["ready"], received["reviews"]
    # The product, stock and price come first, each about when its upstream answers; the
    # reviews about 300 ms after the first event, not with it.
    for part in ("inventory", "pricing"):
        assert received[part].at - ready.at < 0.15, part
    assert 0.2 < reviews.at - ready.at < 0.6
    assert received["done"].at >= reviews.at


def test_a_failed_optional_part_is_an_event_and_a_failed_critical_one_the_usual_problem(
    upstreams: Upstreams, http: httpx.Client, bff: Served
) -> None:
    upstreams.inject("pricing", status=503)
    with streamed(http, f"{bff.url}{PRODUCT}", id="p-1005") as (response, events):
        assert response.status_code == 200
        received = [e for e in events if e.name != "heartbeat"]
    (failed,) = [e for e in received if e.name == "failed"]
    assert failed.data == {
        "source": "pricing",
        "reason": "upstream_status",
        "status": 503,
        "view": {"pricing": None},
    }
    assert received[-1].data["errors"] == [
        {"source": "pricing", "reason": "upstream_status", "status": 503}
    ]
    upstreams.clear()
    for fault, status in (({"status": 404}, 404), ({"status": 500}, 502), ({"drop": True}, 502)):
        upstreams.inject("product", **fault)
        with streamed(http, f"{bff.url}{PRODUCT}", id="p-1006") as (response, _):
            response.read()
            assert response.status_code == status, fault
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["errors"][-1]["source"] == "product"
        upstreams.clear()
    bad = http.get(f"{bff.url}{PRODUCT}", params={"id": ""}, headers={"accept": SSE})
    assert bad.status_code == 400 and bad.json()["parameter"] == "id"


def test_the_deadline_ends_a_hung_part_and_the_stream(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with serve_bff(upstreams.url, "mobile_bff", BFF_TIMEOUT_MS="500") as bff:
        upstreams.inject("reviews", hang=True)
        with streamed(http, f"{bff.url}{PRODUCT}", NDJSON, id="p-1007") as (_, events):
            received = [e for e in events if e.name != "heartbeat"]
        upstreams.clear()
        upstreams.inject("product", hang=True)
        timed_out = http.get(
            f"{bff.url}{PRODUCT}", params={"id": "p-1008"}, headers={"accept": SSE}
        )
    (failed,) = [e for e in received if e.name == "failed"]
    assert failed.data["source"] == "reviews" and failed.data["reason"] == "timeout"
    assert 0.45 < failed.at < 0.9
    assert received[-1].name == "done"
    assert received[-1].data["errors"] == [{"source": "reviews", "reason": "timeout"}]
    assert timed_out.status_code == 504  # the critical part: still the problem answer


def test_a_client_that_leaves_cancels_the_parts_still_running(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    # granian notices a closed connection when it writes to it: the heartbeats do that.
    env = {"BFF_TIMEOUT_MS": "9000", "BFF_HTTP_CLIENT": "aiohttp", "BFF_STREAM_HEARTBEAT_MS": "100"}
    with serve_bff(upstreams.url, "web_bff", **env) as bff:
        upstreams.inject("reviews", latency_ms=6000)
        # A client of its own, closed with the stream: its connection goes with it.
        with httpx.Client(timeout=10) as client:
            with streamed(client, f"{bff.url}{PRODUCT}", id="p-1009") as (_, events):
                assert next(events).name == "ready"
            left = time.monotonic()
        # The BFF stops waiting for the reviews, and the reviews service sees its request
        # abandoned long before it would have answered (6 s).
        while time.monotonic() - left < 4.0:
            log = upstreams.client.get(f"{upstreams.url}/admin/requests").json()
            if log["reviews"]["abandoned"]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the reviews request was not abandoned")
        # And the BFF is fine: the next stream is whole.
        upstreams.clear()
        with streamed(http, f"{bff.url}{PRODUCT}", id="p-1010") as (_, events):
            assert [e.name for e in events][-1] == "done"


def test_heartbeats_keep_a_quiet_stream_alive(upstreams: Upstreams, http: httpx.Client) -> None:
    with serve_bff(upstreams.url, "web_bff", BFF_STREAM_HEARTBEAT_MS="100") as bff:
        upstreams.inject("reviews", latency_ms=450)
        for accept in (SSE, NDJSON):
            with streamed(http, f"{bff.url}{PRODUCT}", accept, id="p-1011") as (_, events):
                names = [e.name for e in events]
            assert names.count("heartbeat") >= 2, (accept, names)
            assert names[-1] == "done"


def test_fields_lists_and_no_compression(
    upstreams: Upstreams, http: httpx.Client, bff: Served
) -> None:
    with streamed(http, f"{bff.url}{PRODUCT}", id="p-1012", fields="pricing") as (_, events):
        received = [e for e in events if e.name != "heartbeat"]
    assert [e.name for e in received] == ["ready", "part", "done"]
    assert received[0].data == {"parts": [], "view": {}}
    assert set(received[1].data["view"]) == {"pricing"}
    # A list screen: its category and its items are critical, so they come with "ready".
    began = time.perf_counter()
    with http.stream(
        "GET",
        f"{bff.url}{CATEGORY}",
        params={"slug": "audio", "limit": 5},
        headers={"accept": SSE, "accept-encoding": "gzip, br, zstd"},
    ) as response:
        assert "content-encoding" not in response.headers
        grid = [e for e in read_events(response, began) if e.name != "heartbeat"]
    assert [e.name for e in grid] == ["ready", "done"]
    assert len(grid[0].data["view"]["items"]) == 5


def test_the_openapi_document_describes_the_streams(http: httpx.Client, bff: Served) -> None:
    schema = http.get(f"{bff.url}/schema/openapi.json").json()
    ok = schema["paths"][PRODUCT]["get"]["responses"]["200"]["content"]
    assert {SSE, NDJSON} <= set(ok)
    description = schema["paths"][PRODUCT]["get"]["description"]
    for name in ("ready", "part", "failed", "done"):
        assert f"`{name}`" in description
