"""bff-upstreams: what both BFFs know of the upstream services.

The variable that configures each service (:data:`SERVICE_URL_VARIABLES`), the objects the
services answer (:class:`Product`, :class:`Inventory`, ...), and the reads of them as
:class:`~bff_core.Source` declarations with their cache, breaker, retry and batch policies
(:func:`product`, :func:`tile_sources`, ...; :data:`BREAKERS` for the gateway), and the
writes as :class:`~bff_core.Mutation` declarations (:func:`set_cart_line`, :func:`place_order`,
:func:`write_review`) with the bodies a client may send. A BFF composes
its screens from these reads, each decoded into the type that screen shows, and its views from
:class:`Answer`, which ends every answer with its ``errors`` and ``stale`` parts.

Screens, views and trimmed types are each client's own, in its BFF.
"""

from ._answer import Answer
from ._objects import (
    Cart,
    CartLine,
    Category,
    Inventory,
    Order,
    Pricing,
    Product,
    Rating,
    Recommendations,
    Review,
    Reviews,
    Warehouse,
)
from ._policies import BREAKERS
from ._services import (
    SERVICE_URL_VARIABLES,
    cart,
    category,
    inventory,
    pricing,
    product,
    recommendations,
    reviews,
    tile_sources,
)
from ._totals import SalePrice, cart_total
from ._writes import LineQuantity, ReviewText, place_order, set_cart_line, write_review

__all__ = [
    "BREAKERS",
    "SERVICE_URL_VARIABLES",
    "Answer",
    "Cart",
    "CartLine",
    "Category",
    "Inventory",
    "LineQuantity",
    "Order",
    "Pricing",
    "Product",
    "Rating",
    "Recommendations",
    "Review",
    "ReviewText",
    "Reviews",
    "SalePrice",
    "Warehouse",
    "cart",
    "cart_total",
    "category",
    "inventory",
    "place_order",
    "pricing",
    "product",
    "recommendations",
    "reviews",
    "set_cart_line",
    "tile_sources",
    "write_review",
]
