"""The writes both BFFs make: what a client may send, and each upstream write as a
:class:`~bff_core.Mutation` with its service, path, idempotency and invalidations filled in.

A BFF says the rest: the mutation's name (its idempotency records and rate limit are its own),
and what it answers (``returns``: the service's object or a trimmed Struct; ``then``: its own
screen read after the write). The caller is never a value the client sends: the path's
``{user}`` and the bodies' ``user``/``author`` are the verified token's subject.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from bff_core import Aggregate, Mutation, Param

from ._objects import Order, Review
from ._policies import RETRY_ONCE

__all__ = ["LineQuantity", "ReviewText", "place_order", "set_cart_line", "write_review"]


class LineQuantity(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /api/cart/items/{product_id}``'s body: how many (0 removes the line)."""

    quantity: Annotated[int, msgspec.Meta(ge=0, le=99)]


class ReviewText(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/products/{id}/reviews``'s body; the author is the caller."""

    stars: Annotated[int, msgspec.Meta(ge=1, le=5)]
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


def set_cart_line(name: str, *, then: Aggregate) -> Mutation:
    """``PUT /carts/{user}/items/{product_id}``: sets a line of the caller's cart, then
    answers ``then`` (the BFF's cart screen). Idempotent by nature, so retried once."""
    return Mutation(
        name,
        method="PUT",
        service="cart",
        path="/carts/{user}/items/{product_id}",
        params=[Param("product_id", description="The product's id")],
        body=LineQuantity,
        then=then,
        retry=RETRY_ONCE,
    )


def place_order(name: str, *, returns: type[Any] = Order) -> Mutation:
    """``POST /orders``: an order of the caller's cart. Not idempotent upstream: every
    request carries an ``Idempotency-Key``, and none is ever sent twice."""
    return Mutation(
        name,
        method="POST",
        service="orders",
        path="/orders",
        user_field="user",
        returns=returns,
    )


def write_review(name: str, *, returns: type[Any] = Review) -> Mutation:
    """``POST /reviews/{id}``: the caller's review of a product. Drops what every instance
    has cached of that product (``id=<id>``: its reviews among them), so the next page
    counts it."""
    return Mutation(
        name,
        method="POST",
        service="reviews",
        path="/reviews/{id}",
        params=[Param("id", description="The product's id")],
        body=ReviewText,
        user_field="author",
        invalidates=["id"],
        returns=returns,
    )
