"""What the write path keeps, in memory: carts, orders and the reviews written since start-up.

The bodies the services accept are Structs whose constraints msgspec checks while decoding,
so a bad body is refused with the path of the field at fault before anything is written.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Annotated, Final, Literal

import msgspec

from ._catalogue import Review, Reviews

__all__ = [
    "MAX_QUANTITY",
    "MAX_TOP_REVIEWS",
    "Cart",
    "CartLine",
    "LineChange",
    "Order",
    "OrderDraft",
    "ReviewDraft",
    "StoredReview",
    "WriteStore",
]

MAX_QUANTITY: Final = 99
"""The most of one product a cart line may hold."""

MAX_TOP_REVIEWS: Final = 5
"""How many reviews ``top`` lists at most once reviews have been written (newest first)."""

_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ReviewDraft(msgspec.Struct, frozen=True):
    """The body of ``POST /reviews/{id}``."""

    author: _Name
    stars: Annotated[int, msgspec.Meta(ge=1, le=5)]
    text: _Text


class StoredReview(msgspec.Struct, frozen=True):
    """A written review, as ``POST /reviews/{id}`` answers it."""

    id: str
    product_id: str
    author: str
    stars: int
    text: str


class LineChange(msgspec.Struct, frozen=True):
    """The body of ``PUT /carts/{user}/items/{product_id}``."""

    quantity: Annotated[int, msgspec.Meta(ge=0, le=MAX_QUANTITY)]


class CartLine(msgspec.Struct, frozen=True):
    product_id: str
    quantity: int


class Cart(msgspec.Struct, frozen=True):
    """What ``GET /carts/{user}`` answers."""

    user: str
    items: tuple[CartLine, ...]


class OrderDraft(msgspec.Struct, frozen=True):
    """The body of ``POST /orders``."""

    user: _Name


class Order(msgspec.Struct, frozen=True):
    """A placed order, as ``POST /orders`` and ``GET /orders/{id}`` answer it."""

    id: str
    user: str
    items: tuple[CartLine, ...]
    status: Literal["placed"] = "placed"


class WriteStore:
    """Carts, orders and written reviews of one application instance (never persisted)."""

    __slots__ = ("_carts", "_order_ids", "_orders", "_review_ids", "_reviews")

    def __init__(self) -> None:
        # product id -> quantity, in the order the lines were first added.
        self._carts: dict[str, dict[str, int]] = {}
        self._orders: dict[str, Order] = {}
        self._order_ids = itertools.count(1)
        self._review_ids = itertools.count(1)
        # product id -> its reviews as they are now, once one was written for it.
        self._reviews: dict[str, Reviews] = {}

    def cart(self, user: str) -> Cart:
        lines = self._carts.get(user, {})
        return Cart(user=user, items=tuple(CartLine(p, q) for p, q in lines.items()))

    def set_line(self, user: str, product_id: str, quantity: int) -> Cart:
        """Set one line (0 removes it); the cart as it is afterwards."""
        if quantity:
            self._carts.setdefault(user, {})[product_id] = quantity
        elif (lines := self._carts.get(user)) is not None:
            lines.pop(product_id, None)
            if not lines:
                del self._carts[user]
        return self.cart(user)

    def place_order(self, user: str) -> Order | None:
        """An order of ``user``'s cart, which is emptied; None when the cart is empty."""
        lines = self._carts.pop(user, None)
        if not lines:
            return None
        order = Order(
            id=f"o-{next(self._order_ids):06d}",
            user=user,
            items=tuple(CartLine(p, q) for p, q in lines.items()),
        )
        self._orders[order.id] = order
        return order

    def order(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def orders(self, user: str | None = None) -> list[Order]:
        """Every order placed (by ``user`` when given), oldest first."""
        return [o for o in self._orders.values() if user is None or o.user == user]

    def add_review(self, base: Reviews, draft: ReviewDraft) -> tuple[StoredReview, Reviews]:
        """Store a review of ``base.product_id`` (``base`` is its catalogue entry); the review
        as stored and the product's reviews counting it."""
        current = self._reviews.get(base.product_id, base)
        count = current.count + 1
        average = round((current.average * current.count + draft.stars) / count, 2)
        review = Review(author=draft.author, stars=draft.stars, text=draft.text)
        updated = Reviews(
            product_id=base.product_id,
            average=average,
            count=count,
            top=(review, *current.top)[:MAX_TOP_REVIEWS],
        )
        self._reviews[base.product_id] = updated
        stored = StoredReview(
            id=f"r-{next(self._review_ids):06d}",
            product_id=base.product_id,
            author=draft.author,
            stars=draft.stars,
            text=draft.text,
        )
        return stored, updated

    def written_reviews(self) -> Mapping[str, Reviews]:
        return self._reviews
