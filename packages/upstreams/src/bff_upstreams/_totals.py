"""What a cart costs: the pricing service's discounts applied, the same for every client."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

__all__ = ["SalePrice", "cart_total"]


class SalePrice(Protocol):
    """A price as the pricing service gives it (a client's trimmed price type will do)."""

    currency: str
    amount: int  # minor units
    discount_pct: int


def cart_total(lines: Iterable[tuple[SalePrice | None, int]]) -> tuple[str, int, int] | None:
    """What the priced lines cost, discounts applied: ``(currency, amount, lines counted)``,
    or ``None`` when no line has a price.

    ``lines`` are each line's price (``None``: it could not be read) and quantity. The total is
    in the first priced line's currency (the shop has one); a line in another is left out. A
    sale price is rounded half up, as the clients show it.
    """
    currency: str | None = None
    amount = counted = 0
    for price, quantity in lines:
        if price is None or (currency is not None and price.currency != currency):
            continue
        currency = price.currency
        amount += (price.amount * (100 - price.discount_pct) + 50) // 100 * quantity
        counted += 1
    return None if currency is None else (currency, amount, counted)
