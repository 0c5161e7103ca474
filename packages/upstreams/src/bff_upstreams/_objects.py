"""What the upstream services answer, as they define it (the contract's upstream table).

A BFF that passes an object through whole declares these as its sources' ``returns``; one
that shows less declares a trimmed Struct of its own instead, with only the fields it shows
(msgspec ignores the others while decoding, and so do these: fields a service adds later).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "Cart",
    "CartLine",
    "Category",
    "Inventory",
    "Order",
    "Pricing",
    "Product",
    "Rating",
    "Recommendations",
    "Review",
    "Reviews",
    "Warehouse",
]


class Product(msgspec.Struct):
    id: str
    name: str
    description: str
    category: str
    images: list[str]
    attributes: dict[str, Any]


class Warehouse(msgspec.Struct):
    id: str
    qty: int


class Inventory(msgspec.Struct):
    product_id: str
    in_stock: bool
    quantity: int
    warehouses: list[Warehouse]


class Pricing(msgspec.Struct):
    product_id: str
    currency: str
    amount: int
    discount_pct: int


class Review(msgspec.Struct):
    author: str
    stars: int
    text: str


class Reviews(msgspec.Struct):
    product_id: str
    average: float
    count: int
    top: list[Review]


class Rating(msgspec.Struct):
    """A product's reviews summed up (the reviews service's batch answer)."""

    product_id: str
    average: float
    count: int


class Category(msgspec.Struct):
    slug: str
    name: str
    product_ids: list[str]


class Recommendations(msgspec.Struct):
    user: str
    product_ids: list[str]


class CartLine(msgspec.Struct):
    """A line of a cart or an order: a product and how many of it."""

    product_id: str
    quantity: int


class Cart(msgspec.Struct):
    """A user's cart (``items: []`` for a user with none yet)."""

    user: str
    items: list[CartLine]


class Order(msgspec.Struct):
    """An order as the orders service placed it (``status``: ``placed``)."""

    id: str
    user: str
    items: list[CartLine]
    status: str
