"""The four product services answer the contract's shapes (list services: test_lists.py)."""

from __future__ import annotations

from typing import Any

import pytest
from demo_upstreams import PRODUCT_IDS
from demo_upstreams._catalogue import LONG_DESCRIPTION_IDS, NO_REVIEWS_ID, OUT_OF_STOCK_ID

from .conftest import Upstream


def _assert_keys(obj: Any, keys: set[str]) -> None:
    assert isinstance(obj, dict)
    assert keys <= obj.keys()


def test_catalogue_has_the_special_products() -> None:
    assert len(set(PRODUCT_IDS)) == len(PRODUCT_IDS) == 300
    assert {OUT_OF_STOCK_ID, NO_REVIEWS_ID, *LONG_DESCRIPTION_IDS} <= set(PRODUCT_IDS)


async def test_healthz(upstream: Upstream) -> None:
    status, body = await upstream.get("/healthz")
    assert status == 200
    assert body == {"status": "ok"}


async def test_product_shape(upstream: Upstream) -> None:
    status, content_type, _ = await upstream.get_raw("/products/p-1001")
    assert (status, content_type) == (200, "application/json")
    status, product = await upstream.get("/products/p-1001")
    _assert_keys(product, {"id", "name", "description", "category", "images", "attributes"})
    assert product["id"] == "p-1001"
    assert all(isinstance(product[k], str) for k in ("name", "description", "category"))
    assert isinstance(product["attributes"], dict)
    assert all(url.startswith("https://") for url in product["images"])


@pytest.mark.parametrize("product_id", LONG_DESCRIPTION_IDS)
async def test_long_products_are_big(upstream: Upstream, product_id: str) -> None:
    _, product = await upstream.get(f"/products/{product_id}")
    assert len(product["description"]) >= 500
    assert 4 <= len(product["images"]) <= 6


async def test_inventory_shape(upstream: Upstream) -> None:
    status, inventory = await upstream.get("/inventory/p-1001")
    assert status == 200
    _assert_keys(inventory, {"product_id", "in_stock", "quantity", "warehouses"})
    assert inventory["product_id"] == "p-1001"
    assert inventory["in_stock"] is True
    assert inventory["quantity"] == sum(w["qty"] for w in inventory["warehouses"]) > 0
    for warehouse in inventory["warehouses"]:
        assert isinstance(warehouse["id"], str)
        assert isinstance(warehouse["qty"], int)


async def test_out_of_stock(upstream: Upstream) -> None:
    _, inventory = await upstream.get(f"/inventory/{OUT_OF_STOCK_ID}")
    assert inventory["in_stock"] is False
    assert inventory["quantity"] == 0


async def test_price_shape(upstream: Upstream) -> None:
    status, price = await upstream.get("/prices/p-1001")
    assert status == 200
    assert price == {
        "product_id": "p-1001",
        "currency": "EUR",
        "amount": 24999,
        "discount_pct": 15,
    }


async def test_reviews_shape(upstream: Upstream) -> None:
    status, reviews = await upstream.get("/reviews/p-1001")
    assert status == 200
    _assert_keys(reviews, {"product_id", "average", "count", "top"})
    assert isinstance(reviews["average"], float)
    assert isinstance(reviews["count"], int)
    assert reviews["top"]
    for review in reviews["top"]:
        _assert_keys(review, {"author", "stars", "text"})
        assert 1 <= review["stars"] <= 5


async def test_no_reviews(upstream: Upstream) -> None:
    _, reviews = await upstream.get(f"/reviews/{NO_REVIEWS_ID}")
    assert reviews["count"] == 0
    assert reviews["top"] == []


@pytest.mark.parametrize("path", ["products", "inventory", "prices", "reviews"])
async def test_every_product_is_served_by_every_service(upstream: Upstream, path: str) -> None:
    for product_id in PRODUCT_IDS:
        status, _, _ = await upstream.get_raw(f"/{path}/{product_id}")
        assert status == 200, product_id


@pytest.mark.parametrize("path", ["products", "inventory", "prices", "reviews"])
async def test_unknown_id_is_404_json(upstream: Upstream, path: str) -> None:
    status, content_type, _ = await upstream.get_raw(f"/{path}/p-9999")
    assert (status, content_type) == (404, "application/json")
    _, body = await upstream.get(f"/{path}/p-9999")
    assert "p-9999" in body["error"]


async def test_ids_in_order_asked_unknown_left_out(upstream: Upstream) -> None:
    status, products = await upstream.get("/products?ids=p-1003,nope,p-1001,p-1012")
    assert status == 200
    assert [p["id"] for p in products] == ["p-1003", "p-1001", "p-1012"]
    _, single = await upstream.get("/products/p-1003")
    assert products[0] == single


async def test_ids_all_unknown_is_empty_list(upstream: Upstream) -> None:
    assert await upstream.get("/products?ids=x,y") == (200, [])


async def test_missing_ids_is_400(upstream: Upstream) -> None:
    status, body = await upstream.get("/products")
    assert status == 400
    assert "ids" in body["error"]


async def test_percent_encoded_id_is_one_segment_recorded_raw(upstream: Upstream) -> None:
    status, body = await upstream.get("/products/p%2F1001")
    assert status == 404
    # Decoded before matching: the id looked up is "p/1001", not "p" under another path.
    assert "'p/1001'" in body["error"]
    status, _ = await upstream.get("/prices/p%2D1001")  # "%2D" is "-": decodes to p-1001
    assert status == 200
    log = await upstream.requests()
    assert [r["path"] for r in log["product"]["requests"]] == ["/products/p%2F1001"]
    assert [r["path"] for r in log["pricing"]["requests"]] == ["/prices/p%2D1001"]


async def test_unencoded_slash_is_recorded_but_not_found(upstream: Upstream) -> None:
    status, _ = await upstream.get("/reviews/p/1001")
    assert status == 404
    log = await upstream.requests()
    assert log["reviews"]["count"] == 1
    assert log["reviews"]["requests"][0]["path"] == "/reviews/p/1001"


async def test_unknown_path_is_404(upstream: Upstream) -> None:
    status, body = await upstream.get("/nothing/here")
    assert status == 404
    assert "error" in body
