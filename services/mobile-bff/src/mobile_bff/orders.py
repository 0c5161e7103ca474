"""The phone's checkout: placing an order of the signed-in user's cart.

Every request carries an ``Idempotency-Key`` (a retry over a flaky network places one order);
the phone gets the order's id, status and lines.
"""

from __future__ import annotations

import bff_upstreams as upstreams
import msgspec
from bff_core.litestar import mutation_route
from bff_upstreams import CartLine

__all__ = ["PLACE_ORDER", "PhoneOrder", "place_order"]


class PhoneOrder(msgspec.Struct):
    """An order as a phone shows it (the user is the caller: left out)."""

    id: str
    status: str
    items: list[CartLine]


PLACE_ORDER = upstreams.place_order("mobile_place_order", returns=PhoneOrder)

place_order = mutation_route(
    "/api/orders",
    PLACE_ORDER,
    summary="Place an order of the signed-in user's cart (Idempotency-Key required)",
)
