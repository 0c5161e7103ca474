"""A team unit-tests its aggregate without a network: an httpx client with a MockTransport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from bff_core import AggregationFailed, Gateway, HttpxTransport
from mobile_bff import PRODUCT_SCREEN, ProductScreen
from mobile_bff.app import PhonePrice, PhoneProduct
from web_bff import PRODUCT_PAGE

SERVICES = {
    name: f"http://{name}.test"
    for name in ("product", "inventory", "pricing", "reviews", "category", "recommendations")
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
}


def handler(request: httpx.Request) -> httpx.Response:
    if request.url.host == "reviews.test":
        return httpx.Response(503, json={"error": "down"})
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
