"""Faults scoped to some ids (``"ids": [...]``): only the requests naming one of them draw it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest
from demo_upstreams import Fault, parse_fault_flags
from demo_upstreams.__main__ import main

from tests.processes import run_service

from .conftest import Upstream
from .test_admin import _send


async def test_stored_and_shown_with_its_ids(upstream: Upstream) -> None:
    stored = await upstream.put_fault("pricing", {"status": 503, "ids": ["p-1003", "p-1004"]})
    assert stored == {"status": 503, "ids": ["p-1003", "p-1004"]}
    assert await upstream.faults() == {"pricing": stored}


async def test_single_reads(upstream: Upstream) -> None:
    await upstream.put_fault("pricing", {"status": 503, "ids": ["p-1003"]})
    assert (await upstream.get("/prices/p-1003"))[0] == 503
    assert (await upstream.get("/prices/p-1001"))[0] == 200
    assert (await upstream.get("/prices/nope"))[0] == 404
    # Other services are not affected, whatever they are asked.
    assert (await upstream.get("/products/p-1003"))[0] == 200


async def test_batch_reads_naming_one_of_the_ids(upstream: Upstream) -> None:
    await upstream.put_fault("inventory", {"status": 503, "ids": ["p-1003", "p-1200"]})
    assert (await upstream.get("/inventory?ids=p-1001,p-1200,p-1002"))[0] == 503
    assert (await upstream.get("/inventory?ids=p-1003"))[0] == 503
    status, body = await upstream.get("/inventory?ids=p-1001,p-1002")
    assert status == 200
    assert [i["product_id"] for i in body] == ["p-1001", "p-1002"]
    # A batch naming no id at all (refused as it is) does not draw it either.
    assert (await upstream.get("/inventory?ids="))[0] == 400


async def test_the_product_list_too(upstream: Upstream) -> None:
    await upstream.put_fault("product", {"wrong_shape": True, "ids": ["p-1002"]})
    status, body = await upstream.get("/products?ids=p-1001,p-1002")
    assert status == 200
    assert isinstance(body, dict)
    status, body = await upstream.get("/products?ids=p-1001")
    assert isinstance(body, list)


async def test_count_is_used_up_only_by_matching_requests(upstream: Upstream) -> None:
    await upstream.put_fault("reviews", {"status": 502, "count": 2, "ids": ["p-1005"]})
    for path in ("/reviews/p-1001", "/reviews?ids=p-1001,p-1002", "/reviews/p-1006"):
        assert (await upstream.get(path))[0] == 200
    assert (await upstream.faults())["reviews"]["count"] == 2
    assert (await upstream.get("/reviews?ids=p-1001,p-1005"))[0] == 502
    assert (await upstream.faults())["reviews"]["count"] == 1
    assert (await upstream.get("/reviews/p-1001"))[0] == 200
    assert (await upstream.get("/reviews/p-1005"))[0] == 502
    assert await upstream.faults() == {}
    assert (await upstream.get("/reviews/p-1005"))[0] == 200


async def test_rate_applies_among_the_matching_requests(upstream: Upstream) -> None:
    await upstream.put_fault("pricing", {"status": 503, "rate": 0.5, "ids": ["p-1003"]})
    others = {(await upstream.get("/prices/p-1001"))[0] for _ in range(50)}
    assert others == {200}
    # Two hundred draws: both outcomes missing has a probability of about 1e-60.
    matching = {(await upstream.get("/prices/p-1003"))[0] for _ in range(200)}
    assert matching == {200, 503}


async def test_latency_and_hang_stay_with_the_ids(upstream: Upstream) -> None:
    await upstream.put_fault("product", {"hang": True, "ids": ["p-1004"]})
    assert (await upstream.get("/products/p-1001"))[0] == 200
    with pytest.raises(TimeoutError):
        async with upstream.http.get(
            upstream.url + "/products?ids=p-1001,p-1004", timeout=aiohttp.ClientTimeout(total=0.2)
        ) as response:
            await response.read()


@pytest.mark.parametrize(
    ("service", "hit", "miss"),
    [
        ("category", "/categories/audio", "/categories/photo"),
        ("recommendations", "/recommendations/alice", "/recommendations/bob"),
    ],
)
async def test_slugs_and_users(upstream: Upstream, service: str, hit: str, miss: str) -> None:
    named = hit.rsplit("/", 1)[1]
    await upstream.put_fault(service, {"status": 503, "ids": [named], "count": 1})
    assert (await upstream.get(miss))[0] == 200
    assert (await upstream.get(hit))[0] == 503
    assert await upstream.faults() == {}


async def test_the_list_of_categories_names_no_slug(upstream: Upstream) -> None:
    await upstream.put_fault("category", {"status": 503, "ids": ["audio"]})
    assert (await upstream.get("/categories"))[0] == 200


async def test_ids_match_the_decoded_id(upstream: Upstream) -> None:
    await upstream.put_fault("recommendations", {"status": 503, "ids": ["a/b"]})
    assert (await upstream.get("/recommendations/a%2Fb"))[0] == 503


@pytest.mark.parametrize(
    "ids",
    [[], [""], ["p-1001", ""], [f"p-{n}" for n in range(51)], "p-1001", [1001], {"p-1001": 1}],
    ids=["none", "empty-id", "one-empty", "51", "string", "number", "object"],
)
async def test_invalid_ids_are_400(upstream: Upstream, ids: Any) -> None:
    body = json.dumps({"status": 503, "ids": ids}).encode()
    status, content_type, problem = await _send(upstream, "PUT", "/admin/faults/pricing", body)
    assert (status, content_type) == (400, "application/problem+json")
    assert "$.ids" in problem["detail"]
    assert await upstream.faults() == {}


async def test_null_ids_is_no_scope(upstream: Upstream) -> None:
    status, _, stored = await _send(
        upstream, "PUT", "/admin/faults/pricing", b'{"status": 503, "ids": null}'
    )
    assert (status, stored) == (200, {"status": 503})
    assert (await upstream.get("/prices/p-1001"))[0] == 503


async def test_fifty_ids_are_accepted(upstream: Upstream) -> None:
    ids = [f"p-{n}" for n in range(1001, 1051)]
    assert (await upstream.put_fault("pricing", {"status": 503, "ids": ids}))["ids"] == ids
    assert (await upstream.get("/prices/p-1050"))[0] == 503


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["pricing:status=503,ids=p-1003"], Fault(status=503, ids=("p-1003",))),
        (["pricing:status=503,ids=p-1003+p-1004"], Fault(status=503, ids=("p-1003", "p-1004"))),
        (["pricing:ids = p-1003 + p-1004 ,count=2"], Fault(count=2, ids=("p-1003", "p-1004"))),
        (['pricing:ids="p-1003+p-1004",hang'], Fault(hang=True, ids=("p-1003", "p-1004"))),
        (["pricing:ids=p-1001", "pricing:ids=p-1002"], Fault(ids=("p-1002",))),
    ],
)
def test_ids_flag(flags: list[str], expected: Fault) -> None:
    assert parse_fault_flags(flags) == {"pricing": expected}


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("pricing:ids", "ids needs a value, e.g. ids=p-1003+p-1004"),
        ("pricing:ids=", "$.ids[0]"),
        ("pricing:ids=p-1003++p-1004", "$.ids[1]"),
        ("pricing:ids=p-1003+", "$.ids[1]"),
        ("pricing:ids=" + "+".join(f"p-{n}" for n in range(51)), "length <= 50"),
        # Commas separate keys, so a comma-separated list is not the syntax for ids.
        ("pricing:ids=p-1003,p-1004", "unknown field 'p-1004'"),
    ],
)
def test_bad_ids_flag(flag: str, message: str) -> None:
    with pytest.raises(ValueError, match="--fault") as excinfo:
        parse_fault_flags([flag])
    assert message in str(excinfo.value)


def test_bad_ids_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--fault", "pricing:ids"])
    assert excinfo.value.code == 2
    assert "ids needs a value" in capsys.readouterr().err


def test_help_documents_the_ids_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "ids=p-1003+p-1004" in help_text


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.process
def test_real_program_with_an_ids_flag() -> None:
    args = ["--latency-scale", "0", "--fault", "pricing:status=503,ids=p-1003+p-1004"]
    with run_service("demo_upstreams", args) as service:
        assert _status(service.url + "/prices/p-1003") == 503
        assert _status(service.url + "/prices/p-1001") == 200
        assert _status(service.url + "/prices?ids=p-1001,p-1004") == 503
        assert _status(service.url + "/prices?ids=p-1001,p-1002") == 200
    assert service.process.returncode == 0


async def test_a_scoped_404_leaves_those_ids_out_of_a_batch_and_fails_their_single_reads(
    upstream: Upstream,
) -> None:
    await upstream.put_fault("pricing", {"status": 404, "ids": ["p-1002"]})
    status, body = await upstream.get("/prices?ids=p-1001,p-1002,p-1003")
    assert status == 200
    assert [p["product_id"] for p in body] == ["p-1001", "p-1003"]
    assert (await upstream.get("/prices/p-1002"))[0] == 404
    assert (await upstream.get("/prices/p-1001"))[0] == 200
