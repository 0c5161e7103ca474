"""A team unit-tests its aggregate without a network: an httpx client with a MockTransport."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from bff_core import AggregationFailed, Gateway, HttpxTransport
from bff_core._guards import Identity
from mobile_bff import CART_SCREEN, PRODUCT_SCREEN, CartScreen, ProductScreen
from mobile_bff.app import PhonePrice, PhoneProduct
from mobile_bff.cart import Total
from web_bff import CART_PAGE, PRODUCT_PAGE, CartPage
from web_bff.cart import Money

SERVICES = {
    name: f"http://{name}.test"
    for name in (
        "product",
        "inventory",
        "pricing",
        "reviews",
        "category",
        "recommendations",
        "cart",
        "orders",
    )
}

UPSTREAM = {
    "/products/p-1": {
        "id": "p-1",
        "name": "Lamp",
        "description": "A long text " * 20,
        "category": "home",
        "images": ["https://img.test/1.jpg", "https://img.test/2.jpg"],
        "attributes": {"watts": 40},
        "added_later": True,
    },
    "/inventory/p-1": {"product_id": "p-1", "in_stock": True, "quantity": 3, "warehouses": []},
    "/prices/p-1": {"product_id": "p-1", "currency": "EUR", "amount": 1999, "discount_pct": 0},
    "/reviews/p-1": {"product_id": "p-1", "average": 4.5, "count": 2, "top": []},
    "/carts/ada": {
        "user": "ada",
        "items": [{"product_id": "p-1", "quantity": 3}, {"product_id": "p-9", "quantity": 1}],
    },
}


def handler(request: httpx.Request) -> httpx.Response:
    if request.url.host == "reviews.test":
        return httpx.Response(503, json={"error": "down"})
    batches = {
        "/products": "/products/p-1",
        "/inventory": "/inventory/p-1",
        "/prices": "/prices/p-1",
    }
    if request.url.path in batches:  # a cart's products, read in batches: p-1 only is known
        return httpx.Response(200, json=[UPSTREAM[batches[request.url.path]]])
    body = UPSTREAM.get(request.url.path)
    return httpx.Response(200, json=body) if body else httpx.Response(404, json={})


@asynccontextmanager
async def mock_gateway() -> AsyncIterator[Gateway]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        yield Gateway(services=SERVICES, transport=HttpxTransport(client))


async def test_the_phone_screen_from_mocked_upstreams() -> None:
    async with mock_gateway() as gateway:
        result = await gateway.run(PRODUCT_SCREEN, {"id": "p-1"})
    screen = ProductScreen.of(result)
    assert isinstance(screen.product, PhoneProduct)
    assert screen.product.image == "https://img.test/1.jpg"
    assert isinstance(screen.pricing, PhonePrice)
    assert screen.pricing.amount == 1999
    assert screen.reviews is None
    assert isinstance(screen.errors, list)
    assert [(e.source, e.reason, e.status) for e in screen.errors] == [
        ("reviews", "upstream_status", 503)
    ]


async def test_the_web_page_fails_without_its_product() -> None:
    async with mock_gateway() as gateway:
        with pytest.raises(AggregationFailed) as caught:
            await gateway.run(PRODUCT_PAGE, {"id": "p-2"})
    assert caught.value.status == 404


ADA = Identity(subject="ada", token="t", expires_at=time.time() + 3600, claims={})


async def test_a_cart_enriches_its_lines_and_sums_the_priced_ones() -> None:
    async with mock_gateway() as gateway:
        web = CartPage.of(await gateway.run(CART_PAGE, {}, identity=ADA))
        phone = CartScreen.of(await gateway.run(CART_SCREEN, {}, identity=ADA))
    assert isinstance(web.lines, list) and isinstance(phone.lines, list)
    # p-9 is unknown to the product service: its line stays, without a product.
    assert [(line.product_id, line.quantity) for line in web.lines] == [("p-1", 3), ("p-9", 1)]
    assert web.lines[1].product is None and phone.lines[1].product is None
    first = web.lines[0].product
    assert first is not None and first.name == "Lamp" and first.rating is None
    assert web.count == phone.count == 2
    assert isinstance(web.total, Money) and (web.total.currency, web.total.amount) == (
        "EUR",
        3 * 1999,
    )
    assert isinstance(phone.total, Total) and phone.total.amount == 3 * 1999
    assert web.priced == 1
