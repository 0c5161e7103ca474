"""The upstream catalogue's public API only grows on purpose: this list is what BFFs import."""

from __future__ import annotations

import bff_upstreams


def test_exported_members() -> None:
    assert bff_upstreams.__all__ == [
        "BREAKERS",
        "SERVICE_URL_VARIABLES",
        "Answer",
        "Category",
        "Inventory",
        "Pricing",
        "Product",
        "Rating",
        "Recommendations",
        "Review",
        "Reviews",
        "Warehouse",
        "category",
        "inventory",
        "pricing",
        "product",
        "recommendations",
        "reviews",
        "tile_sources",
    ]
    for name in bff_upstreams.__all__:
        assert getattr(bff_upstreams, name) is not None, name
