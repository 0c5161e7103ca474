"""Mutations declared as data: what a misdeclared write is told at start-up, and how a
declared one renders its upstream path, its tags and its body rules."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest
from bff_core import Aggregate, DeclarationError, Mutation, Param, RetryPolicy, Source


class Quantity(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(ge=0, le=99)]


class ReviewIn(msgspec.Struct):
    stars: Annotated[int, msgspec.Meta(ge=1, le=5)]
    text: str


class Review(msgspec.Struct):
    author: str
    stars: int
    text: str


CART = Aggregate(
    name="cart",
    params=[],
    sources=[Source(name="cart", service="cart", path="/carts/{user}", returns=dict[str, Any])],
)


def _cart_line(**overrides: Any) -> Mutation:
    declared: dict[str, Any] = {
        "name": "cart_line",
        "method": "PUT",
        "service": "cart",
        "path": "/carts/{user}/items/{product_id}",
        "params": [Param("product_id")],
        "body": Quantity,
        "then": CART,
    }
    declared.update(overrides)
    return Mutation(**declared)


def test_a_put_is_idempotent_by_nature_and_a_post_needs_a_key() -> None:
    assert _cart_line().idempotency == "natural"
    assert not _cart_line().needs_key
    review = Mutation(
        name="review",
        method="POST",
        service="reviews",
        path="/reviews/{id}",
        params=[Param("id")],
        body=ReviewIn,
        user_field="author",
        invalidates=["id"],
        returns=Review,
    )
    assert review.idempotency == "key" and review.needs_key


def test_path_values_are_one_segment_each_and_user_is_the_callers() -> None:
    line = _cart_line()
    assert line.render({"user": "a/b", "product_id": ".."}) == "/carts/a%2Fb/items/%2E%2E"
    assert line.render({"user": "u1", "product_id": "p 1"}) == "/carts/u1/items/p%201"


def test_invalidated_tags_by_the_ids_it_touches() -> None:
    line = _cart_line(invalidates={"id": "product_id"})
    assert line.invalidated({"user": "u1", "product_id": "p-1"}) == ["id=p-1"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "cart line"}, "not an identifier"),
        ({"method": "PATCH"}, "method must be 'PUT' or 'POST'"),
        ({"method": "POST", "idempotency": "natural"}, "a POST is not idempotent by nature"),
        (
            {"method": "POST", "retry": RetryPolicy(attempts=2)},
            "a POST is never sent again",
        ),
        ({"path": "/carts/{user}/items/{sku}"}, "{sku} is not a parameter"),
        ({"path": "/carts/{cart.id}"}, "may use only its parameters and {user}"),
        ({"path": "/carts?user={user}"}, "in the path"),
        ({"body": dict}, "must be a msgspec Struct"),
        ({"user_field": "quantity"}, "has the field 'quantity'"),
        ({"returns": dict}, "exactly one of returns"),
        ({"then": None}, "exactly one of returns"),
        ({"params": []}, "{product_id} is not a parameter"),
        ({"invalidates": {"id": "sku"}}, "'sku', which is not a parameter"),
        ({"requires_user": False}, "needs a signed-in user"),
        ({"subject_header": "Authorization"}, "subject_header"),
        ({"timeout": 0}, "timeout must be positive"),
        (
            {
                "then": Aggregate(
                    name="product",
                    params=[Param("id")],
                    sources=[Source(name="p", service="s", path="/p/{id}", returns=dict)],
                )
            },
            "needs parameter(s) id",
        ),
    ],
)
def test_a_misdeclared_mutation_is_refused_by_name(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(DeclarationError) as raised:
        _cart_line(**overrides)
    assert message in str(raised.value)
    if "name" not in overrides:
        assert "'cart_line'" in str(raised.value)
