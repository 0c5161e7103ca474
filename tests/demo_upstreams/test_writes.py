"""The write path's upstreams: carts, orders and the review write, on the wire."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from .conftest import ServerFactory, Upstream


async def send(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, Any]:
    """``method url`` (sent as written, no re-encoding) with ``body`` as JSON (or ``raw``);
    the status, the content type and the decoded JSON answer."""
    data = raw if raw is not None else (None if body is None else aiohttp.JsonPayload(body))
    async with http.request(method, URL(url, encoded=True), data=data, headers=headers) as r:
        return r.status, r.content_type, await r.json(content_type=None)


def new_user() -> str:
    # The shared server keeps every cart and order: each test its own users.
    return f"user-{uuid.uuid4().hex[:12]}"


async def set_line(upstream: Upstream, user: str, product_id: str, quantity: int) -> Any:
    status, _, cart = await send(
        upstream.http,
        "PUT",
        f"{upstream.url}/carts/{user}/items/{product_id}",
        {"quantity": quantity},
    )
    assert status == 200, cart
    return cart


async def place(upstream: Upstream, user: str) -> tuple[int, str, Any]:
    return await send(upstream.http, "POST", f"{upstream.url}/orders", {"user": user})


async def orders_of(upstream: Upstream, user: str) -> Any:
    status, body = await upstream.get(f"/admin/orders?user={user}")
    assert status == 200
    return body


# --- carts -------------------------------------------------------------------------------------


async def test_a_user_without_a_cart_has_an_empty_one(upstream: Upstream) -> None:
    user = new_user()
    status, content_type, _ = await upstream.get_raw(f"/carts/{user}")
    assert (status, content_type) == (200, "application/json")
    assert (await upstream.get(f"/carts/{user}"))[1] == {"user": user, "items": []}


async def test_lines_are_set_changed_and_removed(upstream: Upstream) -> None:
    user = new_user()
    cart = await set_line(upstream, user, "p-1001", 2)
    assert cart == {"user": user, "items": [{"product_id": "p-1001", "quantity": 2}]}
    await set_line(upstream, user, "p-1003", 1)
    # A changed line keeps its place; the answer is the whole cart.
    cart = await set_line(upstream, user, "p-1001", 5)
    assert cart["items"] == [
        {"product_id": "p-1001", "quantity": 5},
        {"product_id": "p-1003", "quantity": 1},
    ]
    assert (await upstream.get(f"/carts/{user}"))[1] == cart
    # 0 removes the line, and removing it again changes nothing (idempotent).
    for _ in range(2):
        cart = await set_line(upstream, user, "p-1001", 0)
        assert cart["items"] == [{"product_id": "p-1003", "quantity": 1}]
    assert (await set_line(upstream, user, "p-1003", 0))["items"] == []
    assert (await set_line(upstream, new_user(), "p-1003", 0))["items"] == []


async def test_one_users_cart_is_not_anothers(upstream: Upstream) -> None:
    alice, bob = new_user(), new_user()
    await set_line(upstream, alice, "p-1001", 1)
    assert (await upstream.get(f"/carts/{bob}"))[1]["items"] == []


async def test_the_user_is_one_percent_encoded_segment(upstream: Upstream) -> None:
    user = f"a/b c?{uuid.uuid4().hex[:6]}"
    encoded = "a%2Fb%20c%3F" + user[-6:]
    cart = await set_line(upstream, encoded, "p-1002", 3)
    assert cart["user"] == user
    assert (await upstream.get(f"/carts/{encoded}"))[1] == cart
    log = await upstream.requests()
    assert [r["path"] for r in log["cart"]["requests"]] == [
        f"/carts/{encoded}/items/p-1002",
        f"/carts/{encoded}",
    ]


async def test_an_unknown_product_is_404(upstream: Upstream) -> None:
    user = new_user()
    status, _, body = await send(
        upstream.http, "PUT", f"{upstream.url}/carts/{user}/items/nope", {"quantity": 1}
    )
    assert status == 404
    assert "nope" in body["error"]
    assert (await upstream.get(f"/carts/{user}"))[1]["items"] == []


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (b'{"quantity": 100}', 422, "$.quantity"),
        (b'{"quantity": -1}', 422, "$.quantity"),
        (b'{"quantity": "2"}', 422, "$.quantity"),
        (b'{"quantity": 1.5}', 422, "$.quantity"),
        (b"{}", 422, "quantity"),
        (b"[]", 422, "object"),
        (b"", 400, "empty"),
        (b'{"quantity": ', 400, "not JSON"),
    ],
)
async def test_a_bad_quantity_is_refused_with_a_problem(
    upstream: Upstream, raw: bytes, status: int, says: str
) -> None:
    user = new_user()
    got, content_type, body = await send(
        upstream.http, "PUT", f"{upstream.url}/carts/{user}/items/p-1001", raw=raw
    )
    assert (got, content_type) == (status, "application/problem+json")
    assert body["status"] == status
    assert says in body["detail"]
    assert (await upstream.get(f"/carts/{user}"))[1]["items"] == []


# --- orders ------------------------------------------------------------------------------------


async def test_an_order_is_the_cart_which_it_empties(upstream: Upstream) -> None:
    user = new_user()
    await set_line(upstream, user, "p-1001", 2)
    cart = await set_line(upstream, user, "p-1005", 1)
    status, content_type, order = await place(upstream, user)
    assert (status, content_type) == (201, "application/json")
    assert order == {"id": order["id"], "user": user, "items": cart["items"], "status": "placed"}
    assert (await upstream.get(f"/carts/{user}"))[1]["items"] == []
    assert await upstream.get(f"/orders/{order['id']}") == (200, order)
    assert await orders_of(upstream, user) == {"count": 1, "orders": [order]}


async def test_an_empty_cart_is_409_and_places_nothing(upstream: Upstream) -> None:
    user = new_user()
    status, content_type, body = await place(upstream, user)
    assert (status, content_type) == (409, "application/problem+json")
    assert "empty" in body["detail"]
    assert (await orders_of(upstream, user))["count"] == 0


async def test_every_post_places_a_new_order_whatever_its_headers(upstream: Upstream) -> None:
    user = new_user()
    ids = []
    for _ in range(2):
        await set_line(upstream, user, "p-1002", 1)
        status, _, order = await send(
            upstream.http,
            "POST",
            f"{upstream.url}/orders",
            {"user": user},
            headers={"Idempotency-Key": "the-same-key"},
        )
        assert status == 201
        ids.append(order["id"])
    assert len(set(ids)) == 2
    listed = await orders_of(upstream, user)
    assert listed["count"] == 2
    assert [o["id"] for o in listed["orders"]] == ids
    # Right after the first order the cart was empty, so a third call is refused.
    assert (await place(upstream, user))[0] == 409
    log = await upstream.requests()
    assert [r["method"] for r in log["orders"]["requests"]].count("POST") == 3


async def test_every_order_is_listed_without_a_user(upstream: Upstream) -> None:
    users = [new_user(), new_user()]
    for user in users:
        await set_line(upstream, user, "p-1001", 1)
        assert (await place(upstream, user))[0] == 201
    listed = (await upstream.get("/admin/orders"))[1]
    assert listed["count"] == len(listed["orders"]) >= 2
    assert {o["user"] for o in listed["orders"]} >= set(users)


@pytest.mark.parametrize(
    ("raw", "status"), [(b"{}", 422), (b'{"user": ""}', 422), (b'{"user": 7}', 422), (b"", 400)]
)
async def test_a_bad_order_body_is_refused(upstream: Upstream, raw: bytes, status: int) -> None:
    got, content_type, body = await send(upstream.http, "POST", f"{upstream.url}/orders", raw=raw)
    assert (got, content_type) == (status, "application/problem+json")
    assert body["title"]


async def test_an_unknown_order_is_404(upstream: Upstream) -> None:
    assert (await upstream.get("/orders/o-nope"))[0] == 404


# --- review writes -----------------------------------------------------------------------------


@pytest.fixture
async def private(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> AsyncIterator[Upstream]:
    """A server of this test's own: a written review changes what every later read says."""
    async with server_factory(latency_scale=0) as url:
        yield Upstream(url, http)


async def test_a_written_review_is_counted_by_later_reads(private: Upstream) -> None:
    _, before = await private.get("/reviews/p-1001")
    _, before_other = await private.get("/reviews/p-1002")
    review = {"author": "alice", "stars": 1, "text": "Broke on day two."}
    status, content_type, stored = await send(
        private.http, "POST", f"{private.url}/reviews/p-1001", review
    )
    assert (status, content_type) == (201, "application/json")
    assert stored == {**review, "id": stored["id"], "product_id": "p-1001"}

    _, after = await private.get("/reviews/p-1001")
    assert after["count"] == before["count"] + 1
    expected = (before["average"] * before["count"] + 1) / (before["count"] + 1)
    assert after["average"] == pytest.approx(expected, abs=0.01)
    assert after["top"][0] == review
    # The batch read answers the same object, the new review first in its top.
    assert await private.get("/reviews?ids=p-1002,p-1001") == (200, [before_other, after])
    # The other products are untouched.
    assert (await private.get("/reviews/p-1002"))[1] == before_other != after


async def test_the_first_review_of_an_unreviewed_product(private: Upstream) -> None:
    assert (await private.get("/reviews/p-1006"))[1]["count"] == 0
    for stars in (4, 5):
        review = {"author": "bob", "stars": stars, "text": "Fine."}
        assert (await send(private.http, "POST", f"{private.url}/reviews/p-1006", review))[0] == 201
    _, reviews = await private.get("/reviews/p-1006")
    assert (reviews["count"], reviews["average"]) == (2, 4.5)
    assert [r["stars"] for r in reviews["top"]] == [5, 4]


async def test_a_review_of_an_unknown_product_is_404(private: Upstream) -> None:
    review = {"author": "alice", "stars": 5, "text": "?"}
    status, _, body = await send(private.http, "POST", f"{private.url}/reviews/nope", review)
    assert status == 404
    assert "nope" in body["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"author": "alice", "stars": 0, "text": "x"}, "$.stars"),
        ({"author": "alice", "stars": 6, "text": "x"}, "$.stars"),
        ({"author": "alice", "stars": "5", "text": "x"}, "$.stars"),
        ({"author": "alice", "stars": 5, "text": ""}, "$.text"),
        ({"author": "alice", "stars": 5, "text": "x" * 2001}, "$.text"),
        ({"author": "", "stars": 5, "text": "x"}, "$.author"),
        ({"stars": 5, "text": "x"}, "author"),
    ],
)
async def test_a_bad_review_is_422_naming_the_field(
    private: Upstream, body: dict[str, Any], field: str
) -> None:
    status, content_type, problem = await send(
        private.http, "POST", f"{private.url}/reviews/p-1001", body
    )
    assert (status, content_type) == (422, "application/problem+json")
    assert field in problem["detail"]
    # Never the body itself (a text may be long, or someone's personal data).
    assert "x" * 50 not in problem["detail"]
    assert (await private.get("/reviews/p-1001"))[1]["top"][0]["author"] != "alice"
