"""OpenTelemetry traces of a real BFF, received by a real OTLP/HTTP receiver: the tree of
spans, and the parent every upstream request named. The traced BFFs are processes of their own:
the OpenTelemetry SDK reads its batching settings (``OTEL_BSP_*``) from the process's
environment."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

import httpx
import pytest

from tests.otlp_receiver import OTLPReceiver, ReceivedSpan, otlp_receiver
from tests.processes import run_service
from tests.services.conftest import SERVICES, Upstreams, bff_env, serve_bff

ROUTE = "/api/aggregated/product"
SERVER, INTERNAL = 2, 1  # OTLP's SpanKind numbers


def spans_of(receiver: OTLPReceiver, trace_id: str, count: int) -> list[ReceivedSpan]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [s for s in receiver.spans if s.trace_id == trace_id]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"spans of {trace_id}: {list(receiver.spans)}")


def traced_env(upstreams: Upstreams, receiver: OTLPReceiver, **extra: str) -> dict[str, str]:
    return bff_env(
        upstreams.url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_SERVICE_NAME="web-bff-under-test",
        OTEL_BSP_SCHEDULE_DELAY="50",
        **extra,
    )


@pytest.mark.process
def test_a_request_is_a_tree_of_spans_and_every_upstream_request_names_its_part(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with (
        otlp_receiver() as receiver,
        run_service("web_bff", env=traced_env(upstreams, receiver)) as web,
    ):
        upstreams.inject("reviews", status=503)  # retried once: two requests, one part
        trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
        response = http.get(
            web.url + ROUTE,
            params={"id": "p-1001"},
            headers={"traceparent": f"00-{trace_id}-{caller}-01"},
        )
        assert response.status_code == 200
        spans = spans_of(receiver, trace_id, 5)
    (server,) = [s for s in spans if s.kind == SERVER]
    assert server.parent_span_id == caller  # it continues the caller's trace
    assert server.name == f"GET {ROUTE}"
    assert server.service == "web-bff-under-test"
    assert server.attributes["http.route"] == ROUTE
    assert server.attributes["http.response.status_code"] == 200
    parts = {s.attributes["bff.source"]: s for s in spans if s.kind == INTERNAL}
    assert parts.keys() == set(SERVICES)
    for name, part in parts.items():
        assert part.parent_span_id == server.span_id, name
        assert part.name == f"part {name}"
        assert part.attributes["bff.aggregate"] == "web_product_page"
    assert parts["reviews"].attributes["bff.outcome"] == "upstream_status"
    assert parts["reviews"].attributes["bff.attempts"] == 2
    assert parts["reviews"].status_code == 2  # ERROR
    assert parts["product"].attributes["bff.outcome"] == "ok"
    assert parts["product"].attributes["bff.attempts"] == 1
    # What the upstreams received: this trace, with the part's span as the parent, on the
    # retry too.
    for service in SERVICES:
        sent = [r["headers"].get("traceparent", "") for r in upstreams.requests(service)]
        assert len(sent) == (2 if service == "reviews" else 1), (service, sent)
        for traceparent in sent:
            _, tid, parent, flags = traceparent.split("-")
            assert (tid, parent, flags) == (trace_id, parts[service].span_id, "01"), service


@pytest.mark.process
def test_a_request_without_traceparent_starts_a_trace_and_hedges_carry_it(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with (
        otlp_receiver() as receiver,
        run_service("web_bff", env=traced_env(upstreams, receiver)) as web,
    ):
        upstreams.inject("product", latency_ms=300)  # hedged after 100 ms
        assert http.get(web.url + ROUTE, params={"id": "p-1002"}).status_code == 200
        deadline = time.monotonic() + 10

        def servers() -> list[ReceivedSpan]:
            return [s for s in receiver.spans if s.kind == SERVER and s.name.endswith(ROUTE)]

        while not servers() and time.monotonic() < deadline:
            time.sleep(0.05)
        (server,) = servers()
        assert server.parent_span_id == ""
        spans = spans_of(receiver, server.trace_id, 5)
    product = next(s for s in spans if s.attributes.get("bff.source") == "product")
    assert product.attributes["bff.attempts"] == 2  # the first request and its hedge
    sent = [r["headers"]["traceparent"] for r in upstreams.requests("product")]
    assert len(sent) == 2
    assert {p.split("-")[2] for p in sent} == {product.span_id}


def test_without_otel_settings_nothing_is_traced_or_propagated(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with serve_bff(upstreams.url) as web:
        trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
        http.get(
            web.url + ROUTE,
            params={"id": "p-1001"},
            headers={"traceparent": f"00-{trace_id}-{caller}-01"},
        )
    for service in SERVICES:
        assert all("traceparent" not in r["headers"] for r in upstreams.requests(service))


@pytest.mark.process
def test_an_unsupported_exporter_protocol_stops_start_up_naming_it(upstreams: Upstreams) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "web_bff", "--port", "0"],
        env={
            **bff_env(upstreams.url),
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "PATH": "",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in done.stderr and "'grpc'" in done.stderr


@pytest.mark.process
def test_a_request_the_sampler_leaves_out_makes_no_span_and_still_passes_the_trace_on(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    with (
        otlp_receiver() as receiver,
        run_service(
            # The default sampler follows the caller: a caller's "not sampled" is kept.
            "web_bff",
            # No hedges: it counts one request per service (a loaded machine's slow first
            # product read was hedged once).
            env=traced_env(upstreams, receiver, BFF_RETRY_BUDGET_PERCENT="0"),
        ) as web,
    ):
        trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
        response = http.get(
            web.url + ROUTE,
            params={"id": "p-1003"},
            headers={"traceparent": f"00-{trace_id}-{caller}-00"},
        )
        assert response.status_code == 200
        time.sleep(0.5)  # several export intervals
        assert [s for s in receiver.spans if s.trace_id == trace_id] == []
    for service in SERVICES:
        (request,) = upstreams.requests(service)
        _, tid, _, flags = request["headers"]["traceparent"].split("-")
        assert (tid, flags) == (trace_id, "00"), service


def test_an_invented_method_is_not_a_span_name(upstreams: Upstreams, http: httpx.Client) -> None:
    with (
        otlp_receiver() as receiver,
        run_service("web_bff", env=traced_env(upstreams, receiver)) as web,
    ):
        trace_id = secrets.token_hex(16)
        response = http.request(
            "FROBNICATE",
            web.url + ROUTE,
            params={"id": "p-1001"},
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
        assert response.status_code == 405
        (server,) = spans_of(receiver, trace_id, 1)
    # OpenTelemetry's HTTP conventions: a method the server does not know is _OTHER.
    assert server.name == f"HTTP {ROUTE}"
    assert server.attributes["http.request.method"] == "_OTHER"
    assert server.attributes["http.request.method_original"] == "FROBNICATE"
