"""The phone's cart screen: the signed-in user's lines as the list's tiles, and the total.

As the web BFF's cart (the cart never cached, its products read in one batch request per
source), with the phone's trimmed tiles. Setting a line answers this same screen.
"""

from __future__ import annotations

import bff_upstreams as upstreams
import msgspec
from bff_core import Aggregate, AggregateResult, Items, ItemsResult, WriteResult
from bff_core.litestar import aggregate_route, mutation_route
from bff_upstreams import Answer, Cart
from msgspec import UNSET, UnsetType

from .tiles import TILE_SOURCES, PhoneTile

__all__ = ["CART_LINE", "CART_SCREEN", "CartScreen", "cart_screen", "set_cart_line"]

#: Lines shown with their product; any further line is listed with ``product: null``.
MAX_LINES = 48

CART_SCREEN = Aggregate(
    "mobile_cart_screen",
    params=[],
    sources=[
        upstreams.cart(returns=Cart),
        Items("lines", ids="cart.items.product_id", limit=MAX_LINES, sources=TILE_SOURCES),
    ],
    requires_identity=True,
)

CART_LINE = upstreams.set_cart_line("mobile_cart_line", then=CART_SCREEN)


class Total(msgspec.Struct):
    currency: str
    amount: int  # minor units


class PhoneCartLine(msgspec.Struct):
    """A line: its product as a tile (``null`` when the product could not be read)."""

    product_id: str
    quantity: int
    product: PhoneTile | None


class CartScreen(Answer):
    """The phone's cart. Its ``errors`` and ``stale`` come from
    :class:`~bff_upstreams.Answer`."""

    lines: list[PhoneCartLine] | UnsetType = UNSET
    #: how many lines the cart has
    count: int | UnsetType = UNSET
    #: what the lines with a price cost, discounts applied (``null`` when none has a price)
    total: Total | UnsetType | None = UNSET

    @classmethod
    def of(cls, result: AggregateResult) -> CartScreen:
        screen = cls.reporting(result)
        cart: Cart | None = result.value("cart")
        if cart is None:
            return screen
        items: ItemsResult | None = result.value("lines")
        tiles = {} if items is None else {item.id: PhoneTile.of(item) for item in items}
        screen.lines = [
            PhoneCartLine(line.product_id, line.quantity, tiles.get(line.product_id))
            for line in cart.items
        ]
        screen.count = len(cart.items)
        screen.total = _total(screen.lines)
        return screen

    @classmethod
    def written(cls, result: WriteResult) -> CartScreen:
        """The cart after a line was set."""
        assert result.aggregate is not None  # a then-mutation's
        return cls.of(result.aggregate)


def _total(lines: list[PhoneCartLine]) -> Total | None:
    """The priced lines' total (:func:`~bff_upstreams.cart_total`)."""
    total = upstreams.cart_total(
        (None if line.product is None else line.product.price, line.quantity) for line in lines
    )
    return None if total is None else Total(total[0], total[1])


cart_screen = aggregate_route(
    "/api/aggregated/cart",
    CART_SCREEN,
    CartScreen.of,
    summary="The signed-in user's cart for a phone, each line a tile, and its total",
)

set_cart_line = mutation_route(
    "/api/cart/items/{product_id:str}",
    CART_LINE,
    CartScreen.written,
    summary="Set a line of the signed-in user's cart (0 removes it); answers the cart screen",
)
