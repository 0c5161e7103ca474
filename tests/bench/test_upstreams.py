"""The benchmark's upstreams (bench/upstreams.py) answer as the demo upstreams do, copies too.

The throughput and latency scenarios ask for distinct products, ``p-1001.r0`` and the like: a
gateway that batches them must get each one back, its key field the id it asked for.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from demo_upstreams import PRODUCT_IDS

from bench import upstreams
from bench.upstreams import Upstreams, route

_KEYS = {"/products": "id", "/inventory": "product_id", "/prices": "product_id"}
_KEYS["/reviews"] = "product_id"


@pytest.fixture(autouse=True)
def _catalogue() -> None:
    # What serve() sets up, fresh for each test: the answers are built on first request.
    Upstreams.routes = upstreams.build_routes()
    Upstreams.batches = upstreams.build_batch_elements()
    Upstreams.memo, Upstreams.copies = {}, {}


def _get(target: str) -> tuple[int, Any]:
    _, response = route(target.encode())
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


@pytest.mark.parametrize("path", list(_KEYS))
def test_a_copy_is_its_catalogue_product_with_its_own_id(path: str) -> None:
    status, original = _get(f"{path}/p-1001")
    assert status == 200
    status, copy = _get(f"{path}/p-1001.r7")
    assert status == 200
    assert copy == {**original, _KEYS[path]: "p-1001.r7"}
    assert _get(f"{path}/p-1001.r7") == (200, copy)  # kept, and the same
    assert _get(f"{path}/nope.r7")[0] == 404


@pytest.mark.parametrize("path", list(_KEYS))
def test_batch_elements_are_the_single_reads(path: str) -> None:
    ids = ["p-1003", "nope", "p-1001.r0", "p-1006.burst-2", "p-1001.r1", "nope.r0"]
    status, elements = _get(f"{path}?ids={','.join(ids)}")
    assert status == 200
    known = [i for i in ids if not i.startswith("nope")]
    assert [e[_KEYS[path]] for e in elements] == known
    assert elements == [_get(f"{path}/{i}")[1] for i in known]


def test_the_reviews_batch_carries_top() -> None:
    _, [reviews] = _get("/reviews?ids=p-1001.r3")
    assert reviews["top"] and reviews["top"] == _get("/reviews/p-1001")[1]["top"]


def test_too_many_ids_is_a_400() -> None:
    ids = ",".join(f"{pid}.r0" for pid in PRODUCT_IDS[:51])
    assert _get(f"/prices?ids={ids}")[0] == 400
