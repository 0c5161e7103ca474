"""Writes through the gateway, against a real upstream on 127.0.0.1 (no mocks).

A write's rules, each observed at the upstream: the body validated before anything is sent,
the caller's subject put where the mutation says (never the client's), the key forwarded,
cached parts it touched dropped, the answer read after the write; and its resilience: never
hedged, a ``POST`` sent once however it fails after leaving, a ``PUT`` retried as idempotent,
an unknown outcome told apart from a request that did not leave.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
import pytest
import pytest_asyncio
from aiohttp import web
from bff_core import (
    Aggregate,
    CachePolicy,
    DeclarationError,
    Gateway,
    InvalidBody,
    InvalidParameter,
    Mutation,
    Param,
    RetryPolicy,
    Source,
    UpstreamResponse,
    WriteFailed,
)
from bff_core._cache import MemoryStore
from bff_core._guards import Identity

from ._servers import closed_port

ADA = Identity(subject="ada/1", token="t", expires_at=time.time() + 3600, claims={})


class Quantity(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(ge=0, le=99)]


class ReviewIn(msgspec.Struct, forbid_unknown_fields=True):
    stars: Annotated[int, msgspec.Meta(ge=1, le=5)]
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class Review(msgspec.Struct):
    author: str
    stars: int
    text: str


class Order(msgspec.Struct):
    id: str
    user: str
    status: str


@dataclass
class Shop:
    """The upstream: carts, orders and reviews in memory; it records every write it got."""

    base_url: str = ""
    writes: list[tuple[str, str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    carts: dict[str, dict[str, int]] = field(default_factory=dict)
    reviews: dict[str, int] = field(default_factory=dict)
    #: per path: what the next writes get ("hang", "drop", a status), in order
    faults: dict[str, list[str]] = field(default_factory=dict)


@pytest_asyncio.fixture(loop_scope="session")
async def shop() -> AsyncIterator[Shop]:
    state = Shop()

    async def write(request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read() or b"{}")
        headers = {k.lower(): v for k, v in request.headers.items()}
        state.writes.append((request.method, request.raw_path, body, headers))
        queued = state.faults.get(request.path)
        fault = queued.pop(0) if queued else None
        if fault == "hang":
            await asyncio.sleep(10)
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if fault is not None:
            return web.json_response({"error": fault}, status=int(fault))
        parts = request.path.strip("/").split("/")
        if parts[0] == "carts":
            user, product = request.match_info["user"], request.match_info["product"]
            cart = state.carts.setdefault(user, {})
            if body["quantity"]:
                cart[product] = body["quantity"]
            else:
                cart.pop(product, None)
            return web.json_response({"user": user, "items": _lines(cart)})
        if parts[0] == "orders":
            number = sum(1 for w in state.writes if w[1] == "/orders")
            return web.json_response(
                {"id": f"o-{number}", "user": body["user"], "status": "placed"}, status=201
            )
        state.reviews[parts[1]] = state.reviews.get(parts[1], 0) + 1
        return web.json_response(body, status=201)

    async def cart(request: web.Request) -> web.Response:
        user = request.match_info["user"]
        return web.json_response({"user": user, "items": _lines(state.carts.get(user, {}))})

    async def reviews(request: web.Request) -> web.Response:
        product = request.match_info["id"]
        return web.json_response({"product_id": product, "count": state.reviews.get(product, 0)})

    app = web.Application()
    app.router.add_put("/carts/{user}/items/{product}", write)
    app.router.add_post("/orders", write)
    app.router.add_post("/reviews/{id}", write)
    app.router.add_get("/carts/{user}", cart)
    app.router.add_get("/reviews/{id}", reviews)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.base_url = f"http://{host}:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


def _lines(cart: dict[str, int]) -> list[dict[str, Any]]:
    return [{"product_id": p, "quantity": q} for p, q in sorted(cart.items())]


CART = Aggregate(
    name="cart",
    params=[],
    sources=[Source(name="cart", service="shop", path="/carts/{user}", returns=dict[str, Any])],
)
CART_LINE = Mutation(
    name="cart_line",
    method="PUT",
    service="shop",
    path="/carts/{user}/items/{product_id}",
    params=[Param("product_id")],
    body=Quantity,
    then=CART,
    retry=RetryPolicy(attempts=2),
)
ORDER = Mutation(
    name="order", method="POST", service="shop", path="/orders", user_field="user", returns=Order
)
REVIEW = Mutation(
    name="review",
    method="POST",
    service="shop",
    path="/reviews/{id}",
    params=[Param("id")],
    body=ReviewIn,
    user_field="author",
    invalidates=["id"],
    returns=Review,
)
PRODUCT = Aggregate(
    name="product",
    params=[Param("id")],
    sources=[
        Source(
            name="reviews",
            service="shop",
            path="/reviews/{id}",
            returns=dict[str, Any],
            cache=CachePolicy(ttl=60),
        )
    ],
)


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(shop: Shop) -> AsyncIterator[Gateway]:
    async with Gateway(
        services={"shop": shop.base_url},
        aggregates=[PRODUCT],
        mutations=[CART_LINE, ORDER, REVIEW],
        timeout=0.5,
        cache=MemoryStore(),
        http_client="aiohttp",
    ) as running:
        yield running


async def test_a_put_answers_the_aggregate_read_after_it(gateway: Gateway, shop: Shop) -> None:
    result = await gateway.mutate(
        CART_LINE, {"product_id": "p 1"}, b'{"quantity": 2}', identity=ADA
    )

    assert result.status == 200 and result.value is None
    assert result.aggregate is not None
    assert result.aggregate["cart"].value["items"] == [{"product_id": "p 1", "quantity": 2}]
    method, path, body, _ = shop.writes[-1]
    # The user is the caller's subject, one segment; the id too.
    assert (method, path, body) == ("PUT", "/carts/ada%2F1/items/p%201", {"quantity": 2})


async def test_a_post_sends_the_caller_as_its_user_field_and_forwards_the_key(
    gateway: Gateway, shop: Shop
) -> None:
    result = await gateway.mutate(ORDER, {}, b"{}", identity=ADA, idempotency_key="k-1")

    assert result.status == 201
    assert isinstance(result.value, Order) and result.value.user == "ada/1"
    _, path, body, headers = shop.writes[-1]
    assert (path, body) == ("/orders", {"user": "ada/1"})
    assert headers["idempotency-key"] == "k-1"
    assert headers["content-type"] == "application/json"
    assert 0 < int(headers["x-request-timeout-ms"]) <= 500


async def test_a_review_drops_the_cached_reviews_of_its_product(
    gateway: Gateway, shop: Shop
) -> None:
    before = await gateway.run(PRODUCT, {"id": "p-9"})
    cached = await gateway.run(PRODUCT, {"id": "p-9"})
    assert before["reviews"].value["count"] == cached["reviews"].value["count"] == 0

    result = await gateway.mutate(
        REVIEW, {"id": "p-9"}, b'{"stars": 5, "text": "fine"}', identity=ADA, idempotency_key="r"
    )

    assert result.value == Review(author="ada/1", stars=5, text="fine")
    assert result.invalidated == ("id=p-9",)
    after = await gateway.run(PRODUCT, {"id": "p-9"})
    assert after["reviews"].value["count"] == 1


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b'{"stars": 9, "text": "x"}', ("$.stars",)),
        (b'{"stars": 5}', ("$",)),
        (b'{"stars": 5, "text": "x", "author": "eve"}', ("$",)),
        (b"not json", ()),
        (b"", ()),
    ],
)
async def test_an_invalid_body_is_refused_before_anything_is_sent(
    gateway: Gateway, shop: Shop, body: bytes, fields: tuple[str, ...]
) -> None:
    sent = len(shop.writes)
    with pytest.raises(InvalidBody) as raised:
        await gateway.mutate(REVIEW, {"id": "p"}, body, identity=ADA, idempotency_key="k")
    assert raised.value.fields == fields
    assert b"eve" not in str(raised.value).encode()
    assert len(shop.writes) == sent


async def test_no_caller_no_key_no_write(gateway: Gateway, shop: Shop) -> None:
    sent = len(shop.writes)
    with pytest.raises(WriteFailed) as raised:
        await gateway.mutate(ORDER, {}, None, identity=None, idempotency_key="k")
    assert (raised.value.reason, raised.value.status) == ("unauthenticated", 401)
    with pytest.raises(InvalidParameter):
        await gateway.mutate(ORDER, {}, None, identity=ADA)
    with pytest.raises(InvalidParameter):
        await gateway.mutate(ORDER, {}, None, identity=ADA, idempotency_key="bad\nkey")
    assert len(shop.writes) == sent


async def test_an_upstream_refusal_is_passed_on(gateway: Gateway, shop: Shop) -> None:
    shop.faults["/orders"] = ["409"]
    with pytest.raises(WriteFailed) as raised:
        await gateway.mutate(ORDER, {}, None, identity=ADA, idempotency_key="k")
    assert (raised.value.reason, raised.value.status) == ("rejected", 409)


async def test_a_post_past_its_deadline_is_sent_once_and_its_outcome_unknown(
    gateway: Gateway, shop: Shop
) -> None:
    sent = len(shop.writes)
    shop.faults["/orders"] = ["hang"]
    with pytest.raises(WriteFailed) as raised:
        await gateway.mutate(ORDER, {}, None, identity=ADA, idempotency_key="k")
    assert (raised.value.reason, raised.value.status) == ("outcome_unknown", 504)
    assert "outcome is unknown" in str(raised.value)
    await asyncio.sleep(0.1)
    assert len(shop.writes) == sent + 1


async def test_a_post_whose_connection_is_lost_is_not_sent_again(
    gateway: Gateway, shop: Shop
) -> None:
    sent = len(shop.writes)
    shop.faults["/orders"] = ["drop"]
    with pytest.raises(WriteFailed) as raised:
        await gateway.mutate(ORDER, {}, None, identity=ADA, idempotency_key="k")
    assert (raised.value.reason, raised.value.status) == ("outcome_unknown", 502)
    assert len(shop.writes) == sent + 1


async def test_a_post_answered_5xx_is_not_retried(gateway: Gateway, shop: Shop) -> None:
    sent = len(shop.writes)
    shop.faults["/orders"] = ["503"]
    with pytest.raises(WriteFailed) as raised:
        await gateway.mutate(ORDER, {}, None, identity=ADA, idempotency_key="k")
    assert (raised.value.reason, raised.value.status) == ("upstream_status", 502)
    assert len(shop.writes) == sent + 1


async def test_a_put_is_retried_as_idempotent(gateway: Gateway, shop: Shop) -> None:
    sent = len(shop.writes)
    shop.faults["/carts/ada/1/items/p-2"] = ["503"]
    shop.faults["/carts/ada%2F1/items/p-2"] = ["503"]
    result = await gateway.mutate(
        CART_LINE, {"product_id": "p-2"}, b'{"quantity": 1}', identity=ADA
    )
    assert result.status == 200
    assert len(shop.writes) == sent + 2


async def test_a_refused_connection_is_not_an_unknown_outcome() -> None:
    async with Gateway(
        services={"shop": f"http://127.0.0.1:{closed_port()}"},
        mutations=[ORDER],
        http_client="aiohttp",
    ) as gateway:
        with pytest.raises(WriteFailed) as raised:
            await gateway.mutate(ORDER, {}, None, identity=ADA, idempotency_key="k")
    assert (raised.value.reason, raised.value.status) == ("unavailable", 502)


async def test_a_transport_that_cannot_write_is_refused_at_start_up() -> None:
    class ReadOnly:
        async def get(
            self, url: str, *, headers: Any, time_left: float | None = None
        ) -> UpstreamResponse:
            return UpstreamResponse(200, {}, b"{}")

        async def aclose(self) -> None:
            pass

    with pytest.raises(DeclarationError, match=r"'order'.*cannot send writes"):
        Gateway(services={"shop": "http://127.0.0.1:1"}, mutations=[ORDER], transport=ReadOnly())
    with pytest.raises(DeclarationError, match="'order' calls service 'shop'"):
        Gateway(services={"other": "http://127.0.0.1:1"}, mutations=[ORDER])
