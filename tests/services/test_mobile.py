"""The mobile BFF: a phone's product screen, trimmed, much smaller than the web's."""

from __future__ import annotations

import httpx
import pytest

from tests.processes import Served

from .conftest import Upstreams

ROUTE = "/api/aggregated/product"


def test_the_phone_gets_only_what_its_screen_shows(
    mobile_bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    body = http.get(f"{mobile_bff.url}{ROUTE}?id=p-1001").json()
    product = upstreams.get("/products/p-1001")
    inventory = upstreams.get("/inventory/p-1001")
    price = upstreams.get("/prices/p-1001")
    reviews = upstreams.get("/reviews/p-1001")
    assert body == {
        "product": {"id": "p-1001", "name": product["name"], "image": product["images"][0]},
        "inventory": {"in_stock": inventory["in_stock"], "quantity": inventory["quantity"]},
        "pricing": {
            "currency": price["currency"],
            "amount": price["amount"],
            "discount_pct": price["discount_pct"],
        },
        "reviews": {"average": reviews["average"], "count": reviews["count"]},
    }


@pytest.mark.parametrize(
    ("product_id", "at_most"),
    [("p-1001", 0.25), ("p-1002", 0.25), ("p-1004", 0.5), ("p-1006", 0.5), ("p-1011", 0.5)],
)
def test_the_mobile_body_is_much_smaller_than_the_web_body(
    mobile_bff: Served,
    web_bff: Served,
    upstreams: Upstreams,
    http: httpx.Client,
    product_id: str,
    at_most: float,
) -> None:
    web = http.get(f"{web_bff.url}{ROUTE}?id={product_id}")
    mobile = http.get(f"{mobile_bff.url}{ROUTE}?id={product_id}")
    assert web.status_code == mobile.status_code == 200
    assert "errors" not in mobile.json()
    # At most half the bytes for a plain product, a quarter for one with a long description.
    ratio = len(mobile.content) / len(web.content)
    assert ratio <= at_most, (len(mobile.content), len(web.content))


def test_out_of_stock_is_a_plain_no_with_a_zero_count(
    mobile_bff: Served, upstreams: Upstreams, http: httpx.Client
) -> None:
    body = http.get(f"{mobile_bff.url}{ROUTE}?id=p-1004").json()
    assert body["inventory"] == {"in_stock": False, "quantity": 0}
