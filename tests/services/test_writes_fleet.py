"""The write path across a fleet of real processes: two ``python -m web_bff`` on one real Redis,
identity on (the demo identity provider of the demo upstreams: its JWKS, its tokens), and a
demo-upstreams process of this module's own (its orders service counts what it was sent).

What issue 24 asked of the fleet: one key places one order however many requests race over
both instances, and its answer is replayed by each, also after both were stopped and started
again; the same key with another body is refused; an order whose upstream never answers is sent
once and answered as an unknown outcome; a review written through one instance is counted by
the other's next product page; a user's cart is theirs alone; no token, no write.

The processes start once for the module (one xdist worker: ``xdist_group``); each test uses a
demo user of its own, so they may run in any order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from demo_upstreams import TOKEN_PATH
from demo_upstreams._demo import identity_env

from tests.processes import RunningService, run_service
from tests.services.conftest import run_bff

# Serial: five real processes (two BFFs, upstreams, Redis) under 20 racing orders starve
# whatever shares the machine (the Redis Cluster tests timed out beside it).
pytestmark = [pytest.mark.process, pytest.mark.serial, pytest.mark.xdist_group("writes-fleet")]

ORDERS = "/api/orders"
CART = "/api/aggregated/cart"
AUDIENCE = "web-bff"
PROBLEM = "application/problem+json"
#: A write's deadline: long enough that twenty racing requests on a busy machine all end in
#: time, short enough that the order that hangs costs the module little.
TIMEOUT_MS = "3000"


class Fleet:
    """Two web-bff processes on one Redis and the module's demo upstreams; ``restart`` stops
    both and starts two new ones on the same Redis."""

    def __init__(self, upstreams: RunningService, env: dict[str, str]) -> None:
        self.upstreams = upstreams
        self.env = env
        self.instances: list[RunningService] = []
        self._stack = ExitStack()

    def start(self) -> None:
        """Both instances, started side by side (each waits for its own ``/healthz``)."""
        starting = [run_bff(self.upstreams.url, "web_bff", **self.env) for _ in range(2)]
        with ThreadPoolExecutor(2) as pool:
            entered = [pool.submit(one.__enter__) for one in starting]
        self._stack = ExitStack()
        failures: list[BaseException] = []
        for one, future in zip(starting, entered, strict=True):
            error = future.exception()
            if error is None:
                self._stack.push(one.__exit__)
                self.instances.append(future.result())
            else:
                failures.append(error)
        if failures:
            self.stop()
            raise failures[0]

    def stop(self) -> None:
        self._stack.close()
        self.instances = []

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[RunningService]:
    """The module's own demo upstreams: its carts, orders, faults and request log are no other
    test's."""
    with run_service("demo_upstreams") as service:
        yield service


@pytest.fixture(scope="module")
def fleet(upstreams: RunningService, redis_url: str) -> Iterator[Fleet]:
    env = {
        **identity_env(upstreams.url, AUDIENCE),
        "REDIS_URL": redis_url,
        "BFF_CACHE": "on",
        "BFF_CACHE_NAMESPACE": f"writes-fleet-{uuid.uuid4().hex[:8]}",
        "BFF_TIMEOUT_MS": TIMEOUT_MS,
    }
    running = Fleet(upstreams, env)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15.0) as client:
        yield client


class User:
    """A demo user, signed in with a token of the demo identity provider."""

    def __init__(self, name: str, upstreams: RunningService, http: httpx.Client) -> None:
        self.name = name
        self.http = http
        minted = http.post(upstreams.url + TOKEN_PATH, json={"user": name, "audience": AUDIENCE})
        assert minted.status_code == 200, minted.text
        self.token: str = minted.json()["access_token"]

    def headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["idempotency-key"] = key
        return headers

    def cart(self, instance: RunningService) -> dict[str, int]:
        answer = self.http.get(instance.url + CART, headers=self.headers())
        assert answer.status_code == 200, answer.text
        return {line["product_id"]: line["quantity"] for line in answer.json()["lines"]}

    def set_line(self, instance: RunningService, product_id: str, quantity: int) -> None:
        answer = self.http.put(
            f"{instance.url}/api/cart/items/{product_id}",
            json={"quantity": quantity},
            headers=self.headers(),
        )
        assert answer.status_code == 200, answer.text

    def order(self, instance: RunningService, key: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(instance.url + ORDERS, headers=self.headers(key), **kwargs)


def user(name: str, fleet: Fleet, http: httpx.Client) -> User:
    return User(name, fleet.upstreams, http)


def orders_of(http: httpx.Client, upstreams: RunningService, name: str) -> list[dict[str, Any]]:
    """The orders the orders service placed for ``name``."""
    answer = http.get(f"{upstreams.url}/admin/orders", params={"user": name}).json()
    orders: list[dict[str, Any]] = answer["orders"]
    assert answer["count"] == len(orders)
    return orders


def sent_with_key(http: httpx.Client, upstreams: RunningService, key: str) -> int:
    """How many requests the orders service received with this Idempotency-Key."""
    log = http.get(f"{upstreams.url}/admin/requests").json()["orders"]["requests"]
    return sum(1 for request in log if request["headers"].get("idempotency-key") == key)


def problem_type(answer: httpx.Response) -> str:
    assert answer.headers["content-type"].startswith(PROBLEM), answer.text
    kind: str = answer.json()["type"]
    return kind


def test_one_key_places_one_order_across_the_fleet_and_replays_it_after_a_restart(
    fleet: Fleet, http: httpx.Client
) -> None:
    alice = user("alice", fleet, http)
    before = len(orders_of(http, fleet.upstreams, "alice"))
    alice.set_line(fleet.instances[0], "p-1007", 2)
    key = f"race-{uuid.uuid4()}"
    urls = [instance.url + ORDERS for instance in fleet.instances]

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=15.0) as client:
            return await asyncio.gather(
                *(client.post(urls[n % 2], json={}, headers=alice.headers(key)) for n in range(20))
            )

    answers = asyncio.run(race())
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}, statuses
    placed = orders_of(http, fleet.upstreams, "alice")
    assert len(placed) == before + 1
    order = placed[-1]
    assert order["items"] == [{"product_id": "p-1007", "quantity": 2}]
    created = [answer.json() for answer in answers if answer.status_code == 201]
    assert all(body["id"] == order["id"] for body in created)
    assert all(body == created[0] for body in created)
    for answer in answers:
        if answer.status_code == 409:
            assert problem_type(answer) == "urn:bff:problem:idempotency-key-in-use"

    def replays_on_each_instance() -> None:
        for instance in fleet.instances:
            again = alice.order(instance, key, json={})
            assert again.status_code == 201, again.text
            assert again.headers["idempotent-replayed"] == "true"
            assert again.json() == created[0]

    replays_on_each_instance()
    # Both processes stopped, two new ones on the same Redis: the record outlives them.
    fleet.restart()
    replays_on_each_instance()
    assert len(orders_of(http, fleet.upstreams, "alice")) == before + 1

    # The same key with another body is refused, by either instance, and sends nothing.
    for instance in fleet.instances:
        other = alice.order(instance, key, json={"gift": True})
        assert other.status_code == 422, other.text
        assert problem_type(other) == "urn:bff:problem:idempotency-key-reused"
    assert len(orders_of(http, fleet.upstreams, "alice")) == before + 1


def test_an_order_whose_upstream_hangs_is_sent_once_and_its_outcome_is_unknown(
    fleet: Fleet, http: httpx.Client
) -> None:
    bob = user("bob", fleet, http)
    first, second = fleet.instances
    bob.set_line(first, "p-1003", 1)
    before = len(orders_of(http, fleet.upstreams, "bob"))
    key = f"hang-{uuid.uuid4()}"
    # Bob's orders are placed, and then never answered; everybody else's are served.
    fault = {"hang": True, "after_write": True, "ids": ["bob"]}
    injected = http.put(f"{fleet.upstreams.url}/admin/faults/orders", json=fault)
    assert injected.status_code == 200, injected.text
    try:
        answer = bob.order(first, key, json={})
        assert answer.status_code == 504, answer.text
        assert problem_type(answer) == "urn:bff:problem:outcome-unknown"
        assert "unknown" in answer.json()["detail"]
        # Sent exactly once: one request with the key, and the order it placed.
        assert sent_with_key(http, fleet.upstreams, key) == 1
        assert len(orders_of(http, fleet.upstreams, "bob")) == before + 1
        # A retry with the key, on either instance, is never sent again: the same answer.
        for instance in (second, first):
            again = bob.order(instance, key, json={})
            assert again.status_code == 504, again.text
            assert problem_type(again) == "urn:bff:problem:outcome-unknown"
        assert sent_with_key(http, fleet.upstreams, key) == 1
        assert len(orders_of(http, fleet.upstreams, "bob")) == before + 1
    finally:
        http.delete(f"{fleet.upstreams.url}/admin/faults").raise_for_status()


def _review_count(http: httpx.Client, instance: RunningService, product_id: str) -> int:
    page = http.get(f"{instance.url}/api/aggregated/product", params={"id": product_id})
    assert page.status_code == 200, page.text
    count: int = page.json()["reviews"]["count"]
    return count


def test_a_review_written_through_one_instance_is_counted_by_the_others_next_page(
    fleet: Fleet, http: httpx.Client
) -> None:
    carol = user("carol", fleet, http)
    first, second = fleet.instances
    product_id = "p-1004"
    # Both instances have the product page (and its reviews part) cached.
    before = _review_count(http, second, product_id)
    assert _review_count(http, first, product_id) == before
    assert _review_count(http, second, product_id) == before
    written = http.post(
        f"{first.url}/api/products/{product_id}/reviews",
        json={"stars": 4, "text": "Sturdy."},
        headers=carol.headers(f"review-{uuid.uuid4()}"),
    )
    assert written.status_code == 201, written.text
    assert written.json()["author"] == "carol"
    assert _review_count(http, second, product_id) == before + 1
    assert _review_count(http, first, product_id) == before + 1


def test_a_user_never_sees_nor_changes_another_users_cart(fleet: Fleet, http: httpx.Client) -> None:
    first, second = fleet.instances
    alice, carol = user("alice", fleet, http), user("carol", fleet, http)
    product_id = "p-1009"
    carol.set_line(first, product_id, 3)
    assert product_id not in alice.cart(second)
    alice.set_line(second, product_id, 5)
    # Naming the other user changes nothing: the user is the token's, never the request's.
    named = http.put(
        f"{first.url}/api/cart/items/{product_id}",
        params={"user": "carol"},
        json={"quantity": 7},
        headers=alice.headers(),
    )
    assert named.status_code in (200, 400), named.text
    assert carol.cart(second)[product_id] == 3
    assert carol.cart(first)[product_id] == 3
    assert alice.cart(first)[product_id] == (7 if named.status_code == 200 else 5)
    upstream = http.get(f"{fleet.upstreams.url}/carts/carol").json()["items"]
    assert upstream == [{"product_id": product_id, "quantity": 3}]
    alice.set_line(first, product_id, 0)
    carol.set_line(first, product_id, 0)
    assert product_id not in alice.cart(second) and product_id not in carol.cart(second)


def test_without_a_token_nothing_is_written(fleet: Fleet, http: httpx.Client) -> None:
    before = http.get(f"{fleet.upstreams.url}/admin/orders").json()["count"]
    for instance in fleet.instances:
        for answer in (
            http.post(instance.url + ORDERS, json={}, headers={"idempotency-key": "k-1"}),
            http.put(f"{instance.url}/api/cart/items/p-1001", json={"quantity": 1}),
            http.post(
                f"{instance.url}/api/products/p-1001/reviews",
                json={"stars": 5, "text": "Anonymous."},
                headers={"idempotency-key": "k-2"},
            ),
            http.get(instance.url + CART),
        ):
            assert answer.status_code == 401, answer.text
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert problem_type(answer).startswith("urn:bff:problem:")
    assert http.get(f"{fleet.upstreams.url}/admin/orders").json()["count"] == before
