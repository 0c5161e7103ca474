"""Request hygiene at the edge of a real BFF process: sizes, bodies where none belongs, and the
headers every answer carries. On the processes (granian), since some of it is the server's:
how long a request line or header may be, what a raw request on the socket gets."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.processes import RunningService

# One worker: the two BFF processes are started once.
pytestmark = [pytest.mark.process, pytest.mark.xdist_group("bff-processes")]

ROUTE = "/api/aggregated/product"


@pytest.fixture
def bff(bff_process: RunningService) -> RunningService:
    """Each BFF's process in turn (not the BFFs served in the test process)."""
    return bff_process


def raw(service: RunningService, request: bytes) -> tuple[int, bytes]:
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head + b"\r\n\r\n" + body


def assert_problem(response: httpx.Response, status: int, type_: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["type"] == type_
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "x-request-id" in response.headers


def test_every_answer_says_nosniff_and_errors_are_never_cached(
    bff: RunningService, http: httpx.Client
) -> None:
    ok = http.get(bff.url + ROUTE, params={"id": "p-1001"})
    assert ok.headers["x-content-type-options"] == "nosniff"
    assert ok.headers["cache-control"] == "no-cache"
    for response in (
        http.get(bff.url + ROUTE, params={"id": "p-9999"}),  # 404 from the critical upstream
        http.get(bff.url + ROUTE),  # 400: no id
        http.get(bff.url + "/nothing/here"),  # 404: no route
    ):
        assert response.headers["cache-control"] == "no-store", response.status_code
        assert response.headers["x-content-type-options"] == "nosniff"


def test_a_long_query_or_oversized_headers_are_refused(
    bff: RunningService, http: httpx.Client
) -> None:
    assert_problem(
        http.get(bff.url + ROUTE, params={"id": "p-1001", "x": "y" * 3000}),
        414,
        "urn:bff:problem:uri-too-long",
    )
    assert_problem(
        http.get(bff.url + ROUTE, params={"id": "p-1001"}, headers={"x-big": "z" * 20_000}),
        431,
        "urn:bff:problem:headers-too-large",
    )
    # An 8 KB bearer token still fits.
    fits = http.get(bff.url + ROUTE, params={"id": "p-1001"}, headers={"x-token": "t" * 8192})
    assert fits.status_code == 200


def test_a_body_on_a_get_is_refused(bff: RunningService, http: httpx.Client) -> None:
    assert_problem(
        http.request("GET", bff.url + ROUTE, params={"id": "p-1001"}, content=b'{"a": 1}'),
        400,
        "urn:bff:problem:unexpected-body",
    )
    host = bff.url.removeprefix("http://")
    status, answer = raw(
        bff,
        f"GET {ROUTE}?id=p-1001 HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n".encode(),
    )
    assert status == 400 and b"unexpected-body" in answer
    # Content-Length: 0 is no body.
    empty = http.request("GET", bff.url + ROUTE, params={"id": "p-1001"}, content=b"")
    assert empty.status_code == 200


def test_an_unknown_path_is_a_problem_with_a_request_id(
    bff: RunningService, http: httpx.Client
) -> None:
    answer = http.get(bff.url + "/no/such/path", headers={"x-request-id": "trace-me-42"})
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-request-id"] == "trace-me-42"
    assert answer.headers["x-content-type-options"] == "nosniff"
    fresh = http.get(bff.url + "/no/such/path")
    assert len(fresh.headers["x-request-id"]) == 32
    # A matched route's problems get the id once, from the edge middleware.
    bad = http.get(bff.url + "/api/aggregated/product", headers={"x-request-id": "once"})
    assert bad.status_code == 400
    assert bad.headers.get_list("x-request-id") == ["once"]
