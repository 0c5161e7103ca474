"""The upstream catalogue's public API only grows on purpose: this list is what BFFs import."""

from __future__ import annotations

import bff_upstreams


def test_exported_members() -> None:
    assert bff_upstreams.__all__ == [
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
    for name in bff_upstreams.__all__:
        assert getattr(bff_upstreams, name) is not None, name
