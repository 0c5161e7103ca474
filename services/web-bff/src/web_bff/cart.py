"""The web SPA's cart: the signed-in user's lines, each shown like a tile, and the total.

The cart (critical, never cached: it is the user's own and changes with every write) names
its products; each line is then enriched with the grid's tile sources, in one batch request
per source. Setting a line answers this same screen, read after the write.
"""

from __future__ import annotations

import bff_upstreams as upstreams
import msgspec
from bff_core import Aggregate, AggregateResult, Items, ItemsResult, WriteResult
from bff_core.litestar import aggregate_route, mutation_route
from bff_upstreams import Answer, Cart
from msgspec import UNSET, UnsetType

from .tiles import TILE_SOURCES, ProductTile

__all__ = ["CART_LINE", "CART_PAGE", "CartPage", "cart_page", "set_cart_line"]

#: Lines enriched with their product (a page of tiles, as the grid's); any further line
#: is listed with ``product: null``.
MAX_LINES = 48

CART_PAGE = Aggregate(
    "web_cart_page",
    params=[],
    sources=[
        upstreams.cart(returns=Cart),
        Items("lines", ids="cart.items.product_id", limit=MAX_LINES, sources=TILE_SOURCES),
    ],
    requires_identity=True,
)

CART_LINE = upstreams.set_cart_line("web_cart_line", then=CART_PAGE)


class Money(msgspec.Struct):
    currency: str
    amount: int  # minor units


class CartPageLine(msgspec.Struct):
    """A line: its product as a tile (``null`` when the product could not be read)."""

    product_id: str
    quantity: int
    product: ProductTile | None


class CartPage(Answer):
    """The cart. Its ``errors`` and ``stale`` come from :class:`~bff_upstreams.Answer`."""

    lines: list[CartPageLine] | UnsetType = UNSET
    #: how many lines the cart has
    count: int | UnsetType = UNSET
    #: what the lines with a price cost, discounts applied (``null`` when none has a price)
    total: Money | UnsetType | None = UNSET
    #: how many lines ``total`` counts
    priced: int | UnsetType = UNSET

    @classmethod
    def of(cls, result: AggregateResult) -> CartPage:
        page = cls.reporting(result)
        cart: Cart | None = result.value("cart")
        if cart is None:
            return page
        items: ItemsResult | None = result.value("lines")
        tiles = {} if items is None else {item.id: ProductTile.of(item) for item in items}
        page.lines = [
            CartPageLine(line.product_id, line.quantity, tiles.get(line.product_id))
            for line in cart.items
        ]
        page.count = len(cart.items)
        page.total, page.priced = _total(page.lines)
        return page

    @classmethod
    def written(cls, result: WriteResult) -> CartPage:
        """The cart after a line was set."""
        assert result.aggregate is not None  # a then-mutation's
        return cls.of(result.aggregate)


def _total(lines: list[CartPageLine]) -> tuple[Money | None, int]:
    """The priced lines' total (:func:`~bff_upstreams.cart_total`) and how many it counts."""
    total = upstreams.cart_total(
        (None if line.product is None else line.product.price, line.quantity) for line in lines
    )
    if total is None:
        return None, 0
    currency, amount, priced = total
    return Money(currency, amount), priced


cart_page = aggregate_route(
    "/api/aggregated/cart",
    CART_PAGE,
    CartPage.of,
    summary="The signed-in user's cart, each line with its product's price and stock",
)

set_cart_line = mutation_route(
    "/api/cart/items/{product_id:str}",
    CART_LINE,
    CartPage.written,
    summary="Set a line of the signed-in user's cart (0 removes it); answers the cart",
)
