"""The write routes of both BFFs, end to end: a BFF served from the test process with identity
on (a real JWKS endpoint on loopback), the demo upstreams' cart, orders and reviews, and for
the fleet's rules two instances sharing one real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from tests.identity_provider import (
    ISSUER,
    MOBILE_AUDIENCE,
    WEB_AUDIENCE,
    IdentityProvider,
    run_identity_provider,
)
from tests.processes import RunningService, ServedApp
from tests.services.conftest import Upstreams, serve_bff

CART = "/api/aggregated/cart"
ORDERS = "/api/orders"
MODULES = {"web": ("web_bff", WEB_AUDIENCE), "mobile": ("mobile_bff", MOBILE_AUDIENCE)}


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    with run_identity_provider() as running:
        running.add_key("ES256", "ec-1")
        yield running


def identity_env(provider: IdentityProvider, audience: str, **extra: str) -> dict[str, str]:
    return {
        "BFF_JWT_JWKS_URL": provider.url,
        "BFF_JWT_ISSUER": ISSUER,
        "BFF_JWT_AUDIENCE": audience,
        **extra,
    }


@pytest.fixture(scope="module", params=list(MODULES))
def shop(
    request: pytest.FixtureRequest, upstreams_process: RunningService, provider: IdentityProvider
) -> Iterator[tuple[ServedApp, str]]:
    """Each BFF with identity on: the app and its audience."""
    module, audience = MODULES[request.param]
    with serve_bff(upstreams_process.url, module, **identity_env(provider, audience)) as served:
        yield served, audience


class Shopper:
    """One signed-in user of one BFF (a user of their own per test: the upstreams keep carts
    and orders for the whole session)."""

    def __init__(
        self, url: str, http: httpx.Client, provider: IdentityProvider, audience: str
    ) -> None:
        self.url = url
        self.http = http
        self.subject = f"shopper-{uuid.uuid4().hex[:10]}"
        self.token = provider.mint("ec-1", subject=self.subject, audience=audience)

    def headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["idempotency-key"] = key
        return headers

    def cart(self) -> dict[str, Any]:
        response = self.http.get(self.url + CART, headers=self.headers())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def set_line(self, product_id: str, quantity: int) -> httpx.Response:
        return self.http.put(
            f"{self.url}/api/cart/items/{product_id}",
            json={"quantity": quantity},
            headers=self.headers(),
        )

    def order(self, key: str | None, **kwargs: Any) -> httpx.Response:
        return self.http.post(self.url + ORDERS, headers=self.headers(key), **kwargs)

    def review(self, product_id: str, key: str | None, body: Any) -> httpx.Response:
        return self.http.post(
            f"{self.url}/api/products/{product_id}/reviews", json=body, headers=self.headers(key)
        )


@pytest.fixture
def shopper(shop: tuple[ServedApp, str], http: httpx.Client, provider: IdentityProvider) -> Shopper:
    served, audience = shop
    return Shopper(served.url, http, provider, audience)


def orders_of(upstreams: Upstreams, subject: str) -> int:
    count: int = upstreams.get(f"/admin/orders?user={subject}")["count"]
    return count


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- the cart ----------------------------------------------------------------------------------


def test_a_cart_lists_its_lines_as_tiles_with_their_total(shopper: Shopper) -> None:
    empty = shopper.cart()
    assert empty["lines"] == [] and empty["count"] == 0 and empty["total"] is None

    assert shopper.set_line("p-1001", 2).status_code == 200
    written = shopper.set_line("p-1002", 1)
    assert written.status_code == 200, written.text
    assert written.headers["cache-control"] == "no-store"
    cart = shopper.cart()
    assert written.json() == cart  # the answer of a write is the cart screen
    assert [(line["product_id"], line["quantity"]) for line in cart["lines"]] == [
        ("p-1001", 2),
        ("p-1002", 1),
    ]
    assert cart["count"] == 2
    total = 0
    for line in cart["lines"]:
        tile = line["product"]
        assert tile["id"] == line["product_id"] and tile["name"] and tile["image"]
        price = tile["price"]
        total += (price["amount"] * (100 - price["discount_pct"]) + 50) // 100 * line["quantity"]
    assert cart["total"]["amount"] == total and cart["total"]["currency"] == "EUR"

    removed = shopper.set_line("p-1001", 0)
    assert removed.status_code == 200
    assert [line["product_id"] for line in removed.json()["lines"]] == ["p-1002"]
    assert shopper.cart()["count"] == 1


def test_a_user_never_sees_nor_changes_another_users_cart(
    shop: tuple[ServedApp, str], http: httpx.Client, provider: IdentityProvider
) -> None:
    served, audience = shop
    ada = Shopper(served.url, http, provider, audience)
    bob = Shopper(served.url, http, provider, audience)
    assert ada.set_line("p-1001", 3).status_code == 200
    assert bob.cart()["lines"] == []
    assert bob.set_line("p-1003", 1).status_code == 200
    assert [(x["product_id"], x["quantity"]) for x in ada.cart()["lines"]] == [("p-1001", 3)]
    assert [(x["product_id"], x["quantity"]) for x in bob.cart()["lines"]] == [("p-1003", 1)]
    # The body cannot name a user either: a field the route does not declare is refused.
    sneaky = http.put(
        f"{served.url}/api/cart/items/p-1001",
        json={"quantity": 9, "user": ada.subject},
        headers=bob.headers(),
    )
    assert sneaky.status_code == 422
    assert ada.cart()["lines"][0]["quantity"] == 3


def test_every_write_route_needs_a_token(
    shop: tuple[ServedApp, str], http: httpx.Client, upstreams: Upstreams
) -> None:
    served, _ = shop
    key = {"idempotency-key": "no-token"}
    answers = [
        http.get(served.url + CART),
        http.put(f"{served.url}/api/cart/items/p-1001", json={"quantity": 1}),
        http.post(served.url + ORDERS, json={}, headers=key),
        http.post(
            f"{served.url}/api/products/p-1001/reviews",
            json={"stars": 5, "text": "Fine."},
            headers=key,
        ),
    ]
    for answer in answers:
        assert answer.status_code == 401, answer.request.url
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["www-authenticate"].startswith("Bearer")
    for service in ("cart", "orders", "reviews"):
        assert all(r["method"] == "GET" for r in upstreams.requests(service)), service


def test_without_identity_configured_the_write_path_is_a_401(
    bff: ServedApp, http: httpx.Client, upstreams: Upstreams
) -> None:
    """The BFFs start without identity (they serve reads); the cart and the writes refuse."""
    answers = [
        http.get(bff.url + CART),
        http.put(f"{bff.url}/api/cart/items/p-1001", json={"quantity": 1}),
        http.post(bff.url + ORDERS, json={}, headers={"idempotency-key": "k"}),
    ]
    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert upstreams.requests("cart") == [] and upstreams.requests("orders") == []


def test_bodies_are_validated_field_by_field(shopper: Shopper) -> None:
    too_many = shopper.set_line("p-1001", 100)
    assert too_many.status_code == 422
    assert too_many.json()["fields"] == ["$.quantity"]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"stars": 0, "text": "private words"}, "$.stars"),
        ({"stars": 5, "text": ""}, "$.text"),
        ({"stars": 5, "text": "x" * 2001}, "$.text"),
    ]
    for number, (body, field) in enumerate(bad):
        answer = shopper.review("p-1001", f"bad-{number}", body)
        assert answer.status_code == 422, body
        assert answer.json()["fields"] == [field]
        assert "private" not in answer.text
    as_author = shopper.review(
        "p-1001", "as-author", {"stars": 5, "text": "Mine.", "author": "someone-else"}
    )
    assert as_author.status_code == 422
    assert shopper.order("order-with-body", json={"user": "someone-else"}).status_code == 422


def test_a_post_without_a_key_is_a_400(shopper: Shopper, upstreams: Upstreams) -> None:
    assert shopper.set_line("p-1001", 1).status_code == 200
    for answer in (
        shopper.order(None, json={}),
        shopper.review("p-1001", None, {"stars": 4, "text": "Good."}),
    ):
        assert answer.status_code == 400
        assert answer.json()["parameter"] == "Idempotency-Key"
    assert orders_of(upstreams, shopper.subject) == 0


# --- orders ------------------------------------------------------------------------------------


def test_an_order_is_placed_once_per_key_and_replayed(
    shopper: Shopper, upstreams: Upstreams
) -> None:
    assert shopper.set_line("p-1004", 2).status_code == 200
    key = f"order-{uuid.uuid4()}"
    placed = shopper.order(key)  # no body at all
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "placed" and order["id"]
    assert order["items"] == [{"product_id": "p-1004", "quantity": 2}]
    assert shopper.cart()["lines"] == []

    replay = shopper.order(key)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == order
    other = shopper.order(key, json={"gift": True})
    assert other.status_code == 422
    assert other.json()["type"] == "urn:bff:problem:idempotency-key-reused"
    assert orders_of(upstreams, shopper.subject) == 1

    # An empty cart is the orders service's 409, kept for its key like any answer.
    empty = shopper.order(f"order-{uuid.uuid4()}", json={})
    assert empty.status_code == 409
    assert orders_of(upstreams, shopper.subject) == 1


# --- reviews -----------------------------------------------------------------------------------


def test_a_review_is_written_as_the_caller_and_replayed(
    shopper: Shopper, upstreams: Upstreams
) -> None:
    key = f"review-{uuid.uuid4()}"
    body = {"stars": 4, "text": "Light, and the battery lasts."}
    written = shopper.review("p-1005", key, body)
    assert written.status_code == 201, written.text
    review = written.json()
    assert review["author"] == shopper.subject
    assert (review["stars"], review["text"]) == (4, body["text"])
    replay = shopper.review("p-1005", key, body)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == review
    other = shopper.review("p-1005", key, {**body, "stars": 1})
    assert other.status_code == 422
    posts = [r for r in upstreams.requests("reviews") if r["method"] == "POST"]
    assert len(posts) == 1


# --- two instances on one Redis ----------------------------------------------------------------


@pytest.fixture(params=list(MODULES))
def fleet(
    request: pytest.FixtureRequest,
    upstreams_process: RunningService,
    provider: IdentityProvider,
    redis_url: str,
) -> Iterator[tuple[list[ServedApp], str]]:
    """Two instances of one BFF sharing one Redis (cache, peers, idempotency records)."""
    module, audience = MODULES[request.param]
    env = identity_env(
        provider,
        audience,
        REDIS_URL=redis_url,
        BFF_CACHE="on",
        BFF_CACHE_NAMESPACE=f"writes-{uuid.uuid4().hex[:8]}",
    )
    with ExitStack() as stack:
        instances = [
            stack.enter_context(serve_bff(upstreams_process.url, module, **env)) for _ in range(2)
        ]
        yield instances, audience


def _review_count(http: httpx.Client, url: str, product_id: str) -> int:
    page = http.get(f"{url}/api/aggregated/product", params={"id": product_id})
    assert page.status_code == 200, page.text
    count: int = page.json()["reviews"]["count"]
    return count


def test_a_review_written_through_one_instance_is_counted_by_the_other(
    fleet: tuple[list[ServedApp], str], http: httpx.Client, provider: IdentityProvider
) -> None:
    (first, second), audience = fleet
    product_id = "p-1006"
    before = _review_count(http, second.url, product_id)  # cached by the second instance
    assert _review_count(http, first.url, product_id) == before
    writer = Shopper(first.url, http, provider, audience)
    written = writer.review(product_id, f"r-{uuid.uuid4()}", {"stars": 5, "text": "Great."})
    assert written.status_code == 201, written.text
    assert wait_for(lambda: _review_count(http, second.url, product_id) == before + 1)
    assert _review_count(http, first.url, product_id) == before + 1


def test_twenty_racing_orders_with_one_key_place_one_order(
    fleet: tuple[list[ServedApp], str],
    http: httpx.Client,
    provider: IdentityProvider,
    upstreams: Upstreams,
) -> None:
    instances, audience = fleet
    buyer = Shopper(instances[0].url, http, provider, audience)
    assert buyer.set_line("p-1007", 1).status_code == 200
    headers = buyer.headers(f"race-{uuid.uuid4()}")

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10.0) as client:
            return await asyncio.gather(
                *(
                    client.post(instances[n % 2].url + ORDERS, json={}, headers=headers)
                    for n in range(20)
                )
            )

    answers = asyncio.run(race())
    statuses = [answer.status_code for answer in answers]
    assert 201 in statuses and set(statuses) <= {201, 409}, statuses
    assert orders_of(upstreams, buyer.subject) == 1
    later = http.post(instances[1].url + ORDERS, json={}, headers=headers)
    assert later.status_code == 201
    assert later.headers["idempotent-replayed"] == "true"
    created = [a.json() for a in answers if a.status_code == 201]
    assert all(body == later.json() for body in created)
    assert orders_of(upstreams, buyer.subject) == 1
