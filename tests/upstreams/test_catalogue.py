"""The catalogue's reads and the answers' envelope, as the BFFs use them."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import bff_upstreams as upstreams
import msgspec
import pytest
from bff_core import Aggregate, AggregateResult, PartError, PartOutcome, Source, StalePart
from bff_upstreams import Answer
from msgspec import UNSET, UnsetType


class _Trimmed(msgspec.Struct):
    product_id: str = ""


def _declared(source: Source) -> dict[str, Any]:
    return {f.name: getattr(source, f.name) for f in fields(source) if f.init}


@pytest.mark.parametrize(
    "read",
    [
        upstreams.product,
        upstreams.inventory,
        upstreams.pricing,
        upstreams.reviews,
        upstreams.category,
        upstreams.recommendations,
    ],
)
def test_a_read_trimmed_by_a_client_is_the_same_read(read: Any) -> None:
    # Same name, path and policies whatever a client decodes it into: the same cache entry.
    whole, trimmed = _declared(read()), _declared(read(returns=_Trimmed))
    assert trimmed.pop("returns") is _Trimmed
    assert whole.pop("returns") is not _Trimmed
    assert whole == trimmed
    assert whole["retry"] is not None and whole["cache"] is not None


def test_every_tile_source_reads_through_its_batch_endpoint() -> None:
    whole = upstreams.tile_sources()
    trimmed = upstreams.tile_sources(
        product=_Trimmed, inventory=_Trimmed, pricing=_Trimmed, rating=_Trimmed
    )
    assert [s.name for s in whole] == ["product", "inventory", "pricing", "rating"]
    for a, b in zip(whole, trimmed, strict=True):
        assert a.batch is not None and a.path.endswith("/{item}")
        assert {**_declared(a), "returns": None} == {**_declared(b), "returns": None}


def test_a_cart_is_the_callers_own_and_never_cached() -> None:
    cart = upstreams.cart()
    assert cart.path == "/carts/{user}" and cart.critical
    assert cart.cache is None  # not even per user: the screen after a write must show it
    assert "cart" in upstreams.SERVICE_URL_VARIABLES
    assert upstreams.SERVICE_URL_VARIABLES["cart"].name == "CART_SERVICE_URL"
    assert upstreams.SERVICE_URL_VARIABLES["orders"].name == "ORDERS_SERVICE_URL"


def test_the_writes_set_the_caller_and_need_keys_where_they_are_not_idempotent() -> None:
    screen = Aggregate("cart_screen", params=[], sources=[upstreams.cart()])
    line = upstreams.set_cart_line("line", then=screen)
    order = upstreams.place_order("order")
    review = upstreams.write_review("review")
    assert (line.method, line.service, line.needs_key) == ("PUT", "cart", False)
    assert line.render({"user": "a/b", "product_id": "p 1"}) == "/carts/a%2Fb/items/p%201"
    assert (order.method, order.service, order.user_field, order.needs_key) == (
        "POST",
        "orders",
        "user",
        True,
    )
    assert (review.user_field, review.needs_key) == ("author", True)
    assert review.invalidated({"id": "p-1"}) == ["id=p-1"]
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"quantity": 100}', type=upstreams.LineQuantity)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"stars": 5, "text": "", "author": "x"}', type=upstreams.ReviewText)


class _View(Answer):
    first: int | UnsetType = UNSET
    last: str | UnsetType = UNSET


def test_an_answer_ends_with_its_errors_and_stale_parts() -> None:
    # The contract's envelope closes every view, after the view's own parts, and is left out
    # when there is nothing to report.
    assert _View.__struct_fields__ == ("first", "last", "errors", "stale")
    parts = {
        "price": PartOutcome("price", reason="upstream_status", upstream_status=503),
        "stock": PartOutcome("stock", value=3, stale=True, age=12.34),
    }
    view = _View.reporting(AggregateResult("a", parts, 0.01), first=1, last="x")
    assert view.errors == [PartError("price", "upstream_status", status=503)]
    assert view.stale == [StalePart("stock", 12.3)]
    assert msgspec.json.encode(view) == (
        b'{"first":1,"last":"x","errors":[{"source":"price","reason":"upstream_status",'
        b'"status":503}],"stale":[{"source":"stock","age":12.3}]}'
    )
    nothing = _View.reporting(AggregateResult("a", {}, 0.01), first=2)
    assert msgspec.json.encode(nothing) == b'{"first":2}'
