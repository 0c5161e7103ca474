"""The web SPA's checkout: placing an order of the signed-in user's cart.

Every request carries an ``Idempotency-Key`` (a double click or a retried request places one
order); the answer is the order as the orders service placed it.
"""

from __future__ import annotations

import bff_upstreams as upstreams
from bff_core.litestar import mutation_route
from bff_upstreams import Order

__all__ = ["PLACE_ORDER", "place_order"]

PLACE_ORDER = upstreams.place_order("web_place_order", returns=Order)

place_order = mutation_route(
    "/api/orders",
    PLACE_ORDER,
    summary="Place an order of the signed-in user's cart (Idempotency-Key required)",
)
