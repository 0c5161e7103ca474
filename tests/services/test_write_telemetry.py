"""Writes seen like reads: spans, metrics and the access log of a real web-bff process with two
workers (identity on: the demo identity provider; idempotency records in a real Redis), its
spans received by a real OTLP/HTTP receiver, its metrics scraped from ``/metrics`` (both
workers' added up), its JSON access log read from its output.

The process and a demo-upstreams of this module's own start once for the module (one xdist
worker: ``xdist_group``); each test writes as a demo user of its own.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from demo_upstreams import TOKEN_PATH
from demo_upstreams._demo import identity_env
from prometheus_client.parser import text_string_to_metric_families

from tests.otlp_receiver import OTLPReceiver, ReceivedSpan, otlp_receiver
from tests.processes import RunningService, run_service
from tests.services.conftest import run_bff

# Serial: a two-worker BFF, its upstreams, Redis and an OTLP receiver at once.
pytestmark = [pytest.mark.process, pytest.mark.serial, pytest.mark.xdist_group("write-telemetry")]

ORDERS = "/api/orders"
SERVER, INTERNAL = 2, 1  # OTLP's SpanKind numbers
T = TypeVar("T")


@dataclass
class Traced:
    web: RunningService
    upstreams: RunningService
    receiver: OTLPReceiver
    http: httpx.Client

    def token(self, user: str) -> str:
        minted = self.http.post(
            self.upstreams.url + TOKEN_PATH, json={"user": user, "audience": "web-bff"}
        )
        assert minted.status_code == 200, minted.text
        token: str = minted.json()["access_token"]
        return token

    def fault(self, service: str, **fault: Any) -> None:
        answer = self.http.put(f"{self.upstreams.url}/admin/faults/{service}", json=fault)
        assert answer.status_code == 200, answer.text

    def clear(self) -> None:
        self.http.delete(f"{self.upstreams.url}/admin/faults").raise_for_status()
        self.http.delete(f"{self.upstreams.url}/admin/requests").raise_for_status()

    def sent(self, service: str) -> list[dict[str, Any]]:
        log = self.http.get(f"{self.upstreams.url}/admin/requests").json()
        requests: list[dict[str, Any]] = log[service]["requests"]
        return requests


@pytest.fixture(scope="module")
def traced(redis_url: str) -> Iterator[Traced]:
    with (
        httpx.Client(timeout=10.0) as http,
        otlp_receiver() as receiver,
        run_service("demo_upstreams") as upstreams,
        run_bff(
            upstreams.url,
            "web_bff",
            "--workers",
            "2",
            REDIS_URL=redis_url,
            BFF_CACHE="on",
            BFF_CACHE_NAMESPACE=f"write-telemetry-{uuid.uuid4().hex[:8]}",
            BFF_TIMEOUT_MS="3000",
            BFF_ACCESS_LOG="on",
            BFF_LOG_FORMAT="json",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_BSP_SCHEDULE_DELAY="50",
            **identity_env(upstreams.url, "web-bff"),
        ) as web,
    ):
        yield Traced(web, upstreams, receiver, http)


@pytest.fixture
def shop(traced: Traced) -> Iterator[Traced]:
    traced.clear()
    yield traced
    traced.clear()


def eventually(find: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"never came: {what}")
        time.sleep(0.05)


def spans_of(receiver: OTLPReceiver, trace_id: str, count: int) -> list[ReceivedSpan]:
    def found() -> list[ReceivedSpan] | None:
        spans = [s for s in receiver.spans if s.trace_id == trace_id]
        return spans if len(spans) >= count else None

    return eventually(found, f"{count} spans of trace {trace_id}")


def write(
    shop: Traced, method: str, path: str, token: str, key: str | None, body: Any, **headers: str
) -> httpx.Response:
    sent = {"authorization": f"Bearer {token}", **headers}
    if key is not None:
        sent["idempotency-key"] = key
    return shop.http.request(method, shop.web.url + path, json=body, headers=sent)


def traceparent() -> tuple[str, str, str]:
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, caller, f"00-{trace_id}-{caller}-01"


def test_a_write_is_a_span_under_its_request_and_the_parent_of_its_upstream_request(
    shop: Traced,
) -> None:
    token = shop.token("alice")
    # A line set: the write's span is the parent of its upstream request and of the parts of
    # the cart screen read after it.
    trace_id, _, parent = traceparent()
    line = write(
        shop, "PUT", "/api/cart/items/p-1002", token, None, {"quantity": 1}, traceparent=parent
    )
    assert line.status_code == 200, line.text
    server = eventually(
        lambda: next(
            (s for s in shop.receiver.spans if s.trace_id == trace_id and s.kind == SERVER), None
        ),
        "the server span of the line set",
    )
    spans = [s for s in shop.receiver.spans if s.trace_id == trace_id]
    (span,) = [s for s in spans if s.name == "write web_cart_line"]
    assert span.parent_span_id == server.span_id
    assert span.attributes["http.request.method"] == "PUT"
    assert span.attributes["bff.outcome"] == "sent"
    assert "bff.idempotency" not in span.attributes  # no key
    parts = [s for s in spans if s.name.startswith("part ")]
    assert parts and all(part.parent_span_id == span.span_id for part in parts), parts
    assert "cart" in {part.attributes["bff.source"] for part in parts}
    (put,) = [r for r in shop.sent("cart") if r["method"] == "PUT"]
    assert put["headers"]["traceparent"].split("-")[1:3] == [trace_id, span.span_id]
    shop.clear()
    key = f"secret-key-{uuid.uuid4()}"
    trace_id, caller, parent = traceparent()
    placed = write(shop, "POST", ORDERS, token, key, {}, traceparent=parent)
    assert placed.status_code == 201, placed.text
    spans = spans_of(shop.receiver, trace_id, 2)
    (server,) = [s for s in spans if s.kind == SERVER]
    assert server.parent_span_id == caller
    assert server.name == f"POST {ORDERS}"
    (span,) = [s for s in spans if s.kind == INTERNAL]
    assert span.parent_span_id == server.span_id
    assert span.name == "write web_place_order"
    assert span.attributes == {
        "bff.mutation": "web_place_order",
        "bff.service": "orders",
        "http.request.method": "POST",
        "bff.idempotency": "new",
        "bff.outcome": "sent",
        "bff.attempts": 1,
        "http.response.status_code": 201,
    }
    assert span.status_code != 2  # not an error
    # The orders service got the write span as the parent of its one request.
    (request,) = shop.sent("orders")
    assert request["headers"]["idempotency-key"] == key
    _, tid, parent_id, _ = request["headers"]["traceparent"].split("-")
    assert (tid, parent_id) == (trace_id, span.span_id)

    # A replay: a span of its own, and no upstream request.
    trace_id, _, parent = traceparent()
    again = write(shop, "POST", ORDERS, token, key, {}, traceparent=parent)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    spans = spans_of(shop.receiver, trace_id, 2)
    (replayed,) = [s for s in spans if s.kind == INTERNAL]
    assert replayed.attributes["bff.idempotency"] == "replayed"
    assert replayed.attributes["bff.outcome"] == "replayed"
    assert replayed.attributes["bff.attempts"] == 0
    assert "http.response.status_code" not in replayed.attributes
    assert len(shop.sent("orders")) == 1
    # Never the key nor the body in a span.
    for one in shop.receiver.spans:
        assert not any(key in str(value) for value in one.attributes.values()), one
    # Every span's context was left as it was entered (OpenTelemetry logs it otherwise).
    assert "Failed to detach context" not in shop.web.log()


def test_an_unknown_outcome_is_an_error_span(shop: Traced) -> None:
    token = shop.token("bob")
    assert write(shop, "PUT", "/api/cart/items/p-1003", token, None, {"quantity": 1}).is_success
    shop.fault("orders", hang=True, after_write=True, ids=["bob"])
    trace_id, _, parent = traceparent()
    lost = write(shop, "POST", ORDERS, token, f"k-{uuid.uuid4()}", {}, traceparent=parent)
    assert lost.status_code == 504, lost.text
    spans = spans_of(shop.receiver, trace_id, 2)
    (span,) = [s for s in spans if s.kind == INTERNAL]
    assert span.attributes["bff.outcome"] == "unknown"
    assert span.attributes["bff.idempotency"] == "new"
    assert span.attributes["bff.attempts"] == 1
    assert span.status_code == 2  # ERROR
    (request,) = shop.sent("orders")
    assert request["headers"]["traceparent"].split("-")[2] == span.span_id


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(shop: Traced) -> Samples:
    # A new connection each time: either worker may answer, and each adds up both.
    response = httpx.get(shop.web.url + "/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def writes(samples: Samples, mutation: str, outcome: str) -> float:
    return samples.get(
        ("bff_writes_total", frozenset({("mutation", mutation), ("outcome", outcome)})), 0.0
    )


def durations(samples: Samples, mutation: str) -> float:
    return samples.get(
        ("bff_write_duration_seconds_count", frozenset({("mutation", mutation)})), 0.0
    )


def test_writes_are_counted_by_mutation_and_outcome_across_both_workers(shop: Traced) -> None:
    outcomes = ("sent", "rejected", "failed", "unknown", "replayed", "conflict", "mismatch")
    # What the module's other tests wrote is in both workers' totals once each has written
    # them (every second).
    time.sleep(1.2)
    before = scrape(shop)
    # Every declared mutation's series exist from the start, one per outcome.
    for mutation in ("web_place_order", "web_write_review", "web_cart_line"):
        for outcome in (*outcomes, "invalid"):
            assert ("bff_writes_total", frozenset(
                {("mutation", mutation), ("outcome", outcome)}
            )) in before, (mutation, outcome)  # fmt: skip
    token = shop.token("carol")
    review = "/api/products/p-1005/reviews"

    def new_connection(key: str | None, body: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"}
        if key is not None:
            headers["idempotency-key"] = key
        return httpx.post(shop.web.url + review, json=body, headers=headers, timeout=10.0)

    # Ten reviews on new connections (both workers take some), each replayed once.
    keys = [f"r-{uuid.uuid4()}" for _ in range(10)]
    body = {"stars": 5, "text": "Good."}
    with ThreadPoolExecutor(4) as pool:
        first = list(pool.map(lambda key: new_connection(key, body), keys))
        again = list(pool.map(lambda key: new_connection(key, body), keys))
    assert [a.status_code for a in first + again] == [201] * 20
    assert all(a.headers.get("idempotent-replayed") == "true" for a in again)
    assert new_connection(keys[0], {"stars": 1, "text": "Bad."}).status_code == 422  # mismatch
    assert new_connection(None, body).status_code == 400  # invalid: no key
    assert new_connection(f"r-{uuid.uuid4()}", {"stars": 9}).status_code == 422  # invalid body
    # The reviews service refuses one (rejected), then is down (failed: nothing taken).
    shop.fault("reviews", status=400, count=1)
    assert new_connection(f"r-{uuid.uuid4()}", body).status_code == 400
    shop.fault("reviews", status=503)
    assert new_connection(f"r-{uuid.uuid4()}", body).status_code == 502
    shop.clear()
    # A key whose first request is still running: a conflict.
    shop.fault("reviews", latency_ms=600)
    slow_key = f"r-{uuid.uuid4()}"
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(new_connection, slow_key, body)
        time.sleep(0.2)  # not a timing assertion: the 409 is checked only if it came
        running = new_connection(slow_key, body)
        assert slow.result().status_code == 201
    assert running.status_code in (409, 201)  # still running, or done and replayed
    expected = {
        "sent": 11.0,
        "replayed": 10.0 + (running.status_code == 201),
        "conflict": float(running.status_code == 409),
        "mismatch": 1.0,
        "invalid": 2.0,
        "rejected": 1.0,
        "failed": 1.0,
        "unknown": 0.0,
    }

    # Carried out, and so timed: the sent, rejected and failed ones (not a key's replays and
    # refusals, nor the invalid ones).
    expected["timed"] = 13.0

    def added() -> dict[str, float] | None:
        now = scrape(shop)
        seen = {
            outcome: writes(now, "web_write_review", outcome)
            - writes(before, "web_write_review", outcome)
            for outcome in expected
            if outcome != "timed"
        }
        seen["timed"] = durations(now, "web_write_review") - durations(before, "web_write_review")
        return seen if seen == expected else None

    # Each worker writes its totals every second, and a scrape adds up the other's last ones:
    # within a second or so, every scrape has them all.
    eventually(added, f"web_write_review's writes adding up to {expected}")


def test_the_access_log_tells_each_writes_mutation_key_and_outcome(shop: Traced) -> None:
    token = shop.token("alice")
    key = f"log-{uuid.uuid4()}"
    body = {"stars": 4, "text": "Fine."}
    path = "/api/products/p-1006/reviews"
    ids = {"w1": key, "w2": key, "w3": key}
    answers = {
        request_id: write(shop, "POST", path, token, sent, body, **{"x-request-id": request_id})
        for request_id, sent in ids.items()
        if request_id != "w3"
    }
    answers["w3"] = write(
        shop, "POST", path, token, key, {"stars": 1, "text": "No."}, **{"x-request-id": "w3"}
    )
    assert [answers[r].status_code for r in ("w1", "w2", "w3")] == [201, 201, 422]

    def lines() -> dict[str, dict[str, Any]] | None:
        found = {}
        for line in shop.web.log().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("event") == "request" and entry.get("request_id") in ids:
                    found[entry["request_id"]] = entry
        return found if found.keys() == ids.keys() else None

    logged = eventually(lines, "the access lines of w1, w2 and w3")
    first = logged["w1"]
    assert (first["method"], first["status"]) == ("POST", 201)
    assert first["mutation"] == "web_write_review"
    assert (first["idempotency"], first["write"], first["upstream_status"]) == ("new", "sent", 201)
    assert (logged["w2"]["idempotency"], logged["w2"]["write"]) == ("replayed", "replayed")
    assert "upstream_status" not in logged["w2"]
    assert (logged["w3"]["idempotency"], logged["w3"]["write"]) == ("mismatch", "mismatch")
    assert key not in shop.web.log()
