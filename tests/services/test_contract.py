"""The contract's rules for ``GET /api/aggregated/product``, on both BFFs (served from the test
process, over real HTTP), with faults injected into the real demo upstreams."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, unquote

import httpx
import msgspec
import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from web_bff import create_app as create_web_app

from tests.processes import RunningService, Served, free_port

from .conftest import SERVICES, Upstreams, serve_bff

PRODUCT = "p-1001"
PARTS = ["product", "inventory", "pricing", "reviews"]


def parts_of(bff: Served) -> list[str]:
    """Every part of the product page; the web page's last two (its category and related
    products) are not in the default answer."""
    return [*PARTS, "category", "related"] if bff.name == "web_bff" else PARTS


ROUTE = "/api/aggregated/product"


def aggregate(bff: Served, http: httpx.Client, query: str) -> httpx.Response:
    return http.get(f"{bff.url}{ROUTE}?{query}")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"] and problem["detail"] and problem["type"]
    return problem


def test_a_full_answer_has_every_part_and_no_errors(
    bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    response = aggregate(bff, http, f"id={PRODUCT}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == PARTS
    assert all(body[part] is not None for part in PARTS)
    assert body["product"]["id"] == PRODUCT
    assert upstreams.counts() == dict.fromkeys(SERVICES, 1)
    timing = response.headers["server-timing"]
    assert [entry.split(";")[0].strip() for entry in timing.split(",")] == [*PARTS, "total"]


def test_the_web_answer_is_each_upstream_object_whole(
    web_bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    body = aggregate(web_bff, http, f"id={PRODUCT}").json()
    assert body["product"] == upstreams.get(f"/products/{PRODUCT}")
    assert body["inventory"] == upstreams.get(f"/inventory/{PRODUCT}")
    assert body["pricing"] == upstreams.get(f"/prices/{PRODUCT}")
    assert body["reviews"] == upstreams.get(f"/reviews/{PRODUCT}")


def test_upstreams_are_called_concurrently(
    bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    for service in SERVICES:
        upstreams.inject(service, latency_ms=200)
    started = time.monotonic()
    response = aggregate(bff, http, f"id={PRODUCT}")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert "errors" not in response.json()
    # In sequence the four would take at least 800 ms.
    assert 0.2 <= elapsed < 0.6


@pytest.mark.parametrize(
    ("service", "fault", "reason", "status"),
    [
        ("reviews", {"status": 503}, "upstream_status", 503),
        ("inventory", {"status": 404}, "upstream_status", 404),
        ("pricing", {"drop": True}, "unavailable", None),
        ("reviews", {"malformed": True}, "invalid_response", None),
        ("inventory", {"wrong_shape": True}, "invalid_response", None),
        ("pricing", {"huge_bytes": 9 * 1024 * 1024}, "invalid_response", None),
    ],
)
def test_a_failed_optional_part_is_null_and_named_in_errors(
    bff: Served,
    upstreams: Upstreams,
    http: httpx.Client,
    service: str,
    fault: dict[str, Any],
    reason: str,
    status: int | None,
) -> None:
    upstreams.inject(service, **fault)
    response = aggregate(bff, http, f"id={PRODUCT}")
    assert response.status_code == 200
    body = response.json()
    assert body[service] is None
    assert all(body[part] is not None for part in PARTS if part != service)
    expected: dict[str, Any] = {"source": service, "reason": reason}
    if status is not None:
        expected["status"] = status
    assert body["errors"] == [expected]
    assert f"{service};dur=" in response.headers["server-timing"]


def test_several_failures_are_all_reported(
    bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    upstreams.inject("reviews", status=500)
    upstreams.inject("pricing", malformed=True)
    body = aggregate(bff, http, f"id={PRODUCT}").json()
    assert body["errors"] == [
        {"source": "pricing", "reason": "invalid_response"},
        {"source": "reviews", "reason": "upstream_status", "status": 500},
    ]


def test_the_aggregation_ends_by_the_deadline_whatever_the_upstreams_do(
    bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    upstreams.inject("inventory", hang=True)
    upstreams.inject("reviews", latency_ms=5000)
    started = time.monotonic()
    response = aggregate(bff, http, f"id={PRODUCT}")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    body = response.json()
    assert body["inventory"] is None and body["reviews"] is None
    assert body["product"] is not None and body["pricing"] is not None
    assert body["errors"] == [
        {"source": "inventory", "reason": "timeout"},
        {"source": "reviews", "reason": "timeout"},
    ]
    # BFF_TIMEOUT_MS defaults to 1000.
    assert 0.95 <= elapsed < 1.4


def test_an_unknown_product_is_a_404_problem(
    bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    problem = assert_problem(aggregate(bff, http, "id=no-such-product"), 404)
    assert {"source": "product", "reason": "upstream_status", "status": 404} in problem["errors"]
    assert "product" in problem["detail"]


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [
        ({"status": 500}, 502, "upstream_status"),
        ({"status": 503}, 502, "upstream_status"),
        ({"drop": True}, 502, "unavailable"),
        ({"malformed": True}, 502, "invalid_response"),
        ({"wrong_shape": True}, 502, "invalid_response"),
        ({"hang": True}, 504, "timeout"),
    ],
)
def test_a_failed_product_is_an_error_answer_naming_it(
    bff: Served,
    upstreams: Upstreams,
    http: httpx.Client,
    fault: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    upstreams.inject("product", **fault)
    started = time.monotonic()
    problem = assert_problem(aggregate(bff, http, f"id={PRODUCT}"), status)
    elapsed = time.monotonic() - started
    assert problem["errors"][0]["source"] == "product"
    assert problem["errors"][0]["reason"] == reason
    assert "product" in problem["detail"]
    assert elapsed < 1.4


def test_when_product_and_others_fail_the_problem_names_them_all(
    bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    upstreams.inject("reviews", status=500)
    upstreams.inject("product", latency_ms=100, status=500)
    problem = assert_problem(aggregate(bff, http, f"id={PRODUCT}"), 502)
    assert {e["source"] for e in problem["errors"]} == {"product", "reviews"}


def test_an_unreachable_upstream_is_unavailable(
    upstreams_process: RunningService, http: httpx.Client
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with serve_bff(upstreams_process.url, REVIEWS_SERVICE_URL=closed) as web:
        body = aggregate(web, http, f"id={PRODUCT}").json()
    assert body["reviews"] is None
    assert body["errors"] == [{"source": "reviews", "reason": "unavailable"}]


def test_the_aiohttp_client_keeps_the_same_contract(
    upstreams_process: RunningService, upstreams: Upstreams, http: httpx.Client
) -> None:
    upstreams.inject("reviews", hang=True)
    upstreams.inject("pricing", drop=True)
    env = {"BFF_HTTP_CLIENT": "aiohttp", "BFF_TIMEOUT_MS": "300"}
    with serve_bff(upstreams_process.url, **env) as web:
        body = aggregate(web, http, f"id={PRODUCT}").json()
        assert body["errors"] == [
            {"source": "pricing", "reason": "unavailable"},
            {"source": "reviews", "reason": "timeout"},
        ]
        assert_problem(aggregate(web, http, "id=" + quote("..", safe="")), 404)
    assert upstreams.requests("product")[-1]["path"] == "/products/%2E%2E"


def test_bff_timeout_ms_sets_the_deadline(
    upstreams_process: RunningService, upstreams: Upstreams, http: httpx.Client
) -> None:
    with serve_bff(upstreams_process.url, "mobile_bff", BFF_TIMEOUT_MS="250") as bff:
        # A first answer warms the new instance up (its connections, its first request), so
        # that the deadline measured is the aggregation's, not the start-up's.
        assert aggregate(bff, http, "id=p-1002").status_code == 200
        upstreams.inject("pricing", hang=True)
        started = time.monotonic()
        body = aggregate(bff, http, f"id={PRODUCT}").json()
        elapsed = time.monotonic() - started
    assert body["errors"] == [{"source": "pricing", "reason": "timeout"}]
    assert 0.24 <= elapsed < 0.6


@pytest.mark.parametrize(
    ("query", "problem_text"),
    [
        ("", "required"),
        ("fields=product", "required"),
        ("id=", "empty"),
        ("id=" + "x" * 129, "longer than 128"),
        ("id=p-10%0A01", "control character"),
        ("id=p-1001%00", "control character"),
        ("id=%1F", "control character"),
        ("id=%7F", "control character"),
    ],
)
def test_a_bad_id_is_a_400_problem(
    bff: Served, upstreams: Upstreams, http: httpx.Client, query: str, problem_text: str
) -> None:
    problem = assert_problem(aggregate(bff, http, query), 400)
    assert problem_text in problem["detail"]
    assert problem["parameter"] == "id"
    assert upstreams.counts() == dict.fromkeys(SERVICES, 0)


@pytest.mark.parametrize(
    "query", ["id=p-1001&id=p-1002", "id=p-1001&fields=product&fields=pricing"]
)
def test_a_parameter_given_twice_is_a_400(
    bff: Served, upstreams: Upstreams, http: httpx.Client, query: str
) -> None:
    problem = assert_problem(aggregate(bff, http, query), 400)
    assert "more than once" in problem["detail"]
    assert upstreams.counts() == dict.fromkeys(SERVICES, 0)


def test_unknown_query_parameters_are_ignored(
    bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    assert aggregate(bff, http, f"utm_source=mail&id={PRODUCT}&x=").status_code == 200


def test_an_id_of_128_characters_is_accepted(
    bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    # Accepted, passed on, and unknown to the product service.
    assert_problem(aggregate(bff, http, "id=" + "x" * 128), 404)
    assert upstreams.requests("product")[0]["path"] == "/products/" + "x" * 128


@pytest.mark.parametrize(
    "hostile",
    [
        "..",
        "../admin/faults",
        "../../products?ids=p-1001",
        "p-1001/../../admin",
        "p-1001?ids=x",
        "p-1001#x",
        "p-1001&fields=x",
        "%2e%2e%2fadmin",
        "p%2F1001",
        "\\..\\admin",
        "p-1001;x=1",
        "ü ñ 日本",
    ],
)
def test_no_id_can_make_the_bff_request_another_path_or_add_a_query(
    bff: Served, upstreams: Upstreams, http: httpx.Client, hostile: str
) -> None:
    response = aggregate(bff, http, "id=" + quote(hostile, safe=""))
    assert_problem(response, 404)  # no such product, asked for as one opaque id
    [request] = upstreams.requests("product")
    assert request["query"] == ""
    prefix, segment = request["path"].lstrip("/").split("/")
    assert prefix == "products"
    assert unquote(segment) == hostile
    counts = upstreams.counts()
    assert counts["product"] == 1


@pytest.mark.parametrize(
    ("fields", "called"),
    [
        ("product,pricing", {"product", "pricing"}),
        ("reviews", {"reviews"}),
        ("inventory,reviews,pricing,product", set(SERVICES)),
    ],
)
def test_fields_return_only_those_parts_and_call_only_their_upstreams(
    bff: Served, upstreams: Upstreams, http: httpx.Client, fields: str, called: set[str]
) -> None:
    response = aggregate(bff, http, f"id={PRODUCT}&fields={fields}")
    assert response.status_code == 200
    assert set(response.json()) == set(fields.split(","))
    assert {s for s, n in upstreams.counts().items() if n} == called


def test_fields_without_product_do_not_need_the_product(
    bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    upstreams.inject("product", status=500)
    response = aggregate(bff, http, f"id={PRODUCT}&fields=pricing")
    assert response.status_code == 200
    assert list(response.json()) == ["pricing"]


@pytest.mark.parametrize("fields", ["name", "product,price", "", "product,,reviews"])
def test_unknown_fields_are_a_400_listing_the_valid_ones(
    bff: Served, upstreams: Upstreams, http: httpx.Client, fields: str
) -> None:
    problem = assert_problem(aggregate(bff, http, f"id={PRODUCT}&fields={fields}"), 400)
    valid = parts_of(bff)
    assert problem["valid"] == valid
    for part in valid:
        assert part in problem["detail"]
    assert upstreams.counts() == dict.fromkeys(SERVICES, 0)


def test_health_readiness_and_openapi(bff: Served, http: httpx.Client) -> None:
    assert http.get(f"{bff.url}/healthz").status_code == 200
    ready = http.get(f"{bff.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    schema = http.get(f"{bff.url}/schema/openapi.json").json()
    operation = schema["paths"][ROUTE]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"id", "fields"}
    assert set(operation["responses"]) >= {"200", "400", "404", "502", "504"}
    assert "application/problem+json" in operation["responses"]["404"]["content"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    name = ok["$ref"].rsplit("/", 1)[1]
    properties = set(schema["components"]["schemas"][name]["properties"])
    assert properties == {*parts_of(bff), "errors", "stale"}


def test_the_documented_fields_parameter_is_what_the_server_accepts(
    bff: Served, http: httpx.Client
) -> None:
    schema = http.get(f"{bff.url}/schema/openapi.json").json()
    (fields,) = [p for p in schema["paths"][ROUTE]["get"]["parameters"] if p["name"] == "fields"]
    assert (fields["style"], fields["explode"]) == ("form", False)
    assert fields["schema"]["type"] == "array" and fields["schema"]["minItems"] == 1
    names = fields["schema"]["items"]["enum"]
    assert names == parts_of(bff)

    def documented(value: str) -> bool:
        return all(item in names for item in value.split(","))

    # What a contract fuzzer found: "00" is no part, the server says 400, and so must the schema.
    for value in (
        "00",
        "",
        ",",
        "product,",
        "PRODUCT",
        "product,,pricing",
        "product",
        "pricing,product",
        ",".join(PARTS),
        "reviews,reviews",
    ):
        status = http.get(f"{bff.url}{ROUTE}", params={"id": PRODUCT, "fields": value}).status_code
        assert (status == 200) == documented(value), (value, status)


def test_messagepack_is_the_same_view_for_the_clients_that_ask_for_it(
    bff: Served, http: httpx.Client
) -> None:
    url = f"{bff.url}{ROUTE}?id={PRODUCT}"
    as_json = http.get(url)
    assert as_json.headers["content-type"] == "application/json"
    assert "Accept" in as_json.headers["vary"]
    for spelling in ("application/msgpack", "application/vnd.msgpack", "application/x-msgpack"):
        packed = http.get(url, headers={"accept": spelling})
        assert packed.status_code == 200
        assert packed.headers["content-type"] == spelling
        assert "Accept" in packed.headers["vary"]
        assert msgspec.msgpack.decode(packed.content) == as_json.json()
        assert len(packed.content) < len(as_json.content)
        assert packed.headers["etag"] != as_json.headers["etag"]
        again = http.get(url, headers={"accept": spelling, "if-none-match": packed.headers["etag"]})
        assert again.status_code == 304
    # q-values decide; JSON when it is preferred, or when nothing says otherwise.
    for accept, expected in (
        ("application/json;q=0.5, application/msgpack", "application/msgpack"),
        ("application/msgpack;q=0.2, application/json", "application/json"),
        ("application/msgpack;q=0, */*", "application/json"),
        ("*/*", "application/json"),
        ("text/html", "application/json"),
    ):
        answer = http.get(url, headers={"accept": accept})
        assert answer.headers["content-type"] == expected, accept
    # Problems stay problem+json.
    missing = http.get(f"{bff.url}{ROUTE}?id=p-9999", headers={"accept": "application/msgpack"})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    schema = http.get(f"{bff.url}/schema/openapi.json").json()
    content = schema["paths"][ROUTE]["get"]["responses"]["200"]["content"]
    assert content.keys() >= {"application/json", "application/msgpack"}
    assert content["application/msgpack"] == content["application/json"]


def test_an_unknown_route_is_a_problem_too(bff: Served, http: httpx.Client) -> None:
    assert_problem(http.get(f"{bff.url}/api/nothing-here"), 404)
    # An aggregate route answers GET; other methods as Litestar answers them for any route.
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        refused = http.request(method, f"{bff.url}{ROUTE}?id={PRODUCT}")
        assert refused.status_code == 405, method
        assert refused.headers["allow"] == "GET, OPTIONS"
        assert refused.headers["x-request-id"]
        if method != "HEAD":
            assert_problem(refused, 405)
    options = http.options(f"{bff.url}{ROUTE}")
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, OPTIONS"


def test_a_websocket_to_an_aggregate_route_is_refused() -> None:
    # The route is an ASGI route (the hot path), which a websocket would reach too (granian,
    # the production server, answers an upgrade as a plain GET; other servers pass it on).
    with (
        TestClient(create_web_app()) as client,
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(f"{ROUTE}?id={PRODUCT}"),
    ):
        pass
    assert refused.value.code == 1008
