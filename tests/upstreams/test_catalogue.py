"""The catalogue's reads and the answers' envelope, as the BFFs use them."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import bff_upstreams as upstreams
import msgspec
import pytest
from bff_core import AggregateResult, PartError, PartOutcome, Source, StalePart
from bff_upstreams import Answer
from msgspec import UNSET, UnsetType


class _Trimmed(msgspec.Struct):
    product_id: str = ""


def _declared(source: Source) -> dict[str, Any]:
    return {f.name: getattr(source, f.name) for f in fields(source) if f.init}


@pytest.mark.parametrize(
    "read",
    [
        upstreams.product,
        upstreams.inventory,
        upstreams.pricing,
        upstreams.reviews,
        upstreams.category,
        upstreams.recommendations,
    ],
)
def test_a_read_trimmed_by_a_client_is_the_same_read(read: Any) -> None:
    # Same name, path and policies whatever a client decodes it into: the same cache entry.
    whole, trimmed = _declared(read()), _declared(read(returns=_Trimmed))
    assert trimmed.pop("returns") is _Trimmed
    assert whole.pop("returns") is not _Trimmed
    assert whole == trimmed
    assert whole["retry"] is not None and whole["cache"] is not None


def test_every_tile_source_reads_through_its_batch_endpoint() -> None:
    whole = upstreams.tile_sources()
    trimmed = upstreams.tile_sources(
        product=_Trimmed, inventory=_Trimmed, pricing=_Trimmed, rating=_Trimmed
    )
    assert [s.name for s in whole] == ["product", "inventory", "pricing", "rating"]
    for a, b in zip(whole, trimmed, strict=True):
        assert a.batch is not None and a.path.endswith("/{item}")
        assert {**_declared(a), "returns": None} == {**_declared(b), "returns": None}


class _View(Answer):
    first: int | UnsetType = UNSET
    last: str | UnsetType = UNSET


def test_an_answer_ends_with_its_errors_and_stale_parts() -> None:
    # The contract's envelope closes every view, after the view's own parts, and is left out
    # when there is nothing to report.
    assert _View.__struct_fields__ == ("first", "last", "errors", "stale")
    parts = {
        "price": PartOutcome("price", reason="upstream_status", upstream_status=503),
        "stock": PartOutcome("stock", value=3, stale=True, age=12.34),
    }
    view = _View.reporting(AggregateResult("a", parts, 0.01), first=1, last="x")
    assert view.errors == [PartError("price", "upstream_status", status=503)]
    assert view.stale == [StalePart("stock", 12.3)]
    assert msgspec.json.encode(view) == (
        b'{"first":1,"last":"x","errors":[{"source":"price","reason":"upstream_status",'
        b'"status":503}],"stale":[{"source":"stock","age":12.3}]}'
    )
    nothing = _View.reporting(AggregateResult("a", {}, 0.01), first=2)
    assert msgspec.json.encode(nothing) == b'{"first":2}'
