"""A cold burst against a deployment sharing one Redis: fifty clients ask one instance at the
same moment for a product nobody asked for yet.

Two web-bff processes, a real Redis (or a real Redis Cluster), the demo upstreams with the
product service answering in about 200 ms, ``BFF_TIMEOUT_MS=500``. What every burst must give:
fifty complete 200s, one request per upstream (the product's: one, and its hedge when the
budget allows it, since 200 ms is past its 100 ms hedge), and then nothing at all for the same
burst against the other instance, which finds everything in Redis. Repeated for every product
of the catalogue, and again after an invalidation made them all cold once more: a race between
the lookups of fifty requests has that many chances to show.
"""

from __future__ import annotations

import socket
import threading
import uuid
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from tests.processes import RunningService, run_service

from .conftest import SERVICES, Upstreams, bff_env

# Serial in ./run tests: fifty clients at once against a 500 ms deadline need the machine to
# themselves.
pytestmark = [pytest.mark.process, pytest.mark.serial]

ROUTE = "/api/aggregated/product"
TOKEN = "test-admin-token-0123456789-abcdefgh"
PRODUCTS = [f"p-{1001 + i}" for i in range(12)]
CLIENTS = 50


@dataclass
class Answer:
    status: int
    body: bytes


def burst(service: RunningService, product: str, clients: int = CLIENTS) -> list[Answer]:
    """``clients`` connections opened first, then every request sent at the same moment."""
    host, port = service.url.removeprefix("http://").rsplit(":", 1)
    request = (
        f"GET {ROUTE}?id={product} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ).encode()
    sockets = [socket.create_connection((host, int(port)), timeout=10) for _ in range(clients)]
    start = threading.Barrier(clients)
    answers: list[Answer | None] = [None] * clients

    def client(index: int) -> None:
        with sockets[index] as sock:
            start.wait(timeout=10)
            sock.sendall(request)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        answers[index] = Answer(int(head.split()[1]), body)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert all(answer is not None for answer in answers), "a client got no answer"
    return [answer for answer in answers if answer is not None]


def hedges(service: RunningService, http: httpx.Client) -> int:
    count: int = http.get(f"{service.url}/readyz").json()["upstreams"]["product"]["hedges"]
    return count


def deployment(
    stack: ExitStack, upstreams: Upstreams, redis_url: str | None, **env: str
) -> list[RunningService]:
    settings = {
        "BFF_CACHE": "on",
        "BFF_BREAKER": "on",
        "BFF_TIMEOUT_MS": "500",
        "BFF_ADMIN_TOKEN": TOKEN,
        "BFF_CACHE_NAMESPACE": f"burst-{uuid.uuid4().hex[:8]}",
        **({"REDIS_URL": redis_url} if redis_url else {}),
        **env,
    }
    count = 2 if redis_url else 1
    return [
        stack.enter_context(run_service("web_bff", env=bff_env(upstreams.url, **settings)))
        for _ in range(count)
    ]


def check_burst(
    answers: list[Answer], upstreams: Upstreams, expected: dict[str, int], what: str
) -> None:
    statuses = sorted({a.status for a in answers})
    assert statuses == [200], f"{what}: statuses {statuses}"
    partial = [a.body[:300] for a in answers if b'"errors"' in a.body]
    assert not partial, f"{what}: partial answers, e.g. {partial[0]!r}"
    assert upstreams.counts() == expected, what


@pytest.mark.parametrize(
    ("shared", "env"),
    [
        ("redis", {}),
        ("redis", {"BFF_RETRY_BUDGET_PERCENT": "0"}),
        ("redis-cluster", {}),
        ("in-process", {}),
    ],
    ids=["redis", "redis-no-hedges", "redis-cluster", "in-process"],
)
def test_a_cold_burst_is_answered_whole_with_one_request_per_upstream(
    upstreams: Upstreams,
    http: httpx.Client,
    request: pytest.FixtureRequest,
    shared: str,
    env: dict[str, str],
) -> None:
    redis_url: str | None = None
    if shared != "in-process":
        redis_url = request.getfixturevalue(
            "redis_cluster_url" if shared == "redis-cluster" else "redis_url"
        )
    hedging = env.get("BFF_RETRY_BUDGET_PERCENT") != "0"
    rounds = 2 if shared == "redis" and hedging else 1
    with ExitStack() as stack:
        services = deployment(stack, upstreams, redis_url, **env)
        first, other = services[0], services[-1]
        for round_no in range(rounds):
            if round_no:
                for product in PRODUCTS:  # cold again, everywhere
                    response = http.post(
                        f"{other.url}/admin/cache/invalidate?id={product}",
                        headers={"authorization": f"Bearer {TOKEN}"},
                    )
                    assert response.status_code == 200, response.text
            for product in PRODUCTS:
                what = f"round {round_no + 1}, {product}"
                upstreams.clear()
                upstreams.inject("product", latency_ms=180)  # about 200 ms in all
                hedged = hedges(first, http)
                answers = burst(first, product)
                # One request per upstream; the product's hedge if the budget allowed it
                # (each lookup earns a tenth of one, so a burst of fresh products spends the
                # starting budget of ten first).
                sent = hedges(first, http) - hedged
                assert sent in ((0, 1) if hedging else (0,)), what
                check_burst(
                    answers,
                    upstreams,
                    {**dict.fromkeys(SERVICES, 1), "product": 1 + sent},
                    what,
                )
                if other is not first:
                    upstreams.clear()
                    check_burst(
                        burst(other, product),
                        upstreams,
                        dict.fromkeys(SERVICES, 0),
                        f"{what}, on the other instance",
                    )
