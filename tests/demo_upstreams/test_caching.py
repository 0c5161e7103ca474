"""Cache-Control on the services' answers, and the ``cache_control`` fault that overrides it."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import aiohttp
import pytest
from demo_upstreams import DEFAULT_CACHE_CONTROL, Fault, create_app, parse_fault_flags
from demo_upstreams.__main__ import main
from yarl import URL

from tests.processes import run_service

from .conftest import ServerFactory, Upstream

_PRODUCT = "max-age=60, stale-while-revalidate=300, stale-if-error=3600"
_INVENTORY = "max-age=5, stale-while-revalidate=30, stale-if-error=300"
_PRICING = "max-age=30, stale-while-revalidate=60, stale-if-error=600"
_REVIEWS = "max-age=120, stale-while-revalidate=600, stale-if-error=3600"
_CATEGORY = "max-age=300, stale-while-revalidate=600, stale-if-error=3600"
_RECOMMENDATIONS = "max-age=60, stale-while-revalidate=120, stale-if-error=600"

_PATHS = {
    "product": "/products/p-1001",
    "inventory": "/inventory/p-1001",
    "pricing": "/prices/p-1001",
    "reviews": "/reviews/p-1001",
    "category": "/categories/audio",
    "recommendations": "/recommendations/alice",
}


async def _fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, str | None, bytes]:
    """GET ``url`` (sent as written); status, the Cache-Control header(s) and the body."""
    async with http.get(URL(url, encoded=True)) as response:
        values = response.headers.getall("Cache-Control", [])
        assert len(values) <= 1, values
        return response.status, values[0] if values else None, await response.read()


async def _get(upstream: Upstream, path: str) -> tuple[int, str | None, bytes]:
    return await _fetch(upstream.http, upstream.url + path)


async def _put(upstream: Upstream, service: str, body: Any) -> tuple[int, str, Any]:
    async with upstream.http.put(
        f"{upstream.url}/admin/faults/{service}", data=json.dumps(body).encode()
    ) as response:
        return response.status, response.content_type, await response.json(content_type=None)


def test_defaults_constant() -> None:
    assert DEFAULT_CACHE_CONTROL == {
        "product": _PRODUCT,
        "inventory": _INVENTORY,
        "pricing": _PRICING,
        "reviews": _REVIEWS,
        "category": _CATEGORY,
        "recommendations": _RECOMMENDATIONS,
        # A cart and an order change with every write.
        "cart": "no-store",
        "orders": "no-store",
    }


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/products/p-1001", _PRODUCT),
        ("/products?ids=p-1001,p-1002", _PRODUCT),
        ("/products?ids=nope", _PRODUCT),  # an empty list is still a 200 answer
        ("/inventory/p-1004", _INVENTORY),
        ("/prices/p-1001", _PRICING),
        ("/reviews/p-1006", _REVIEWS),
        ("/prices?ids=p-1001,nope", _PRICING),
        ("/inventory?ids=p-1004", _INVENTORY),
        ("/reviews?ids=p-1006", _REVIEWS),
        ("/categories", _CATEGORY),
        ("/categories/kitchen", _CATEGORY),
        ("/recommendations/anonymous", _RECOMMENDATIONS),
    ],
)
async def test_default_cache_control_on_200(upstream: Upstream, path: str, expected: str) -> None:
    status, cache_control, body = await _get(upstream, path)
    assert status == 200
    assert cache_control == expected
    json.loads(body)


@pytest.mark.parametrize(
    ("path", "expected_status"),
    [
        ("/products/nope", 404),
        ("/inventory/nope", 404),
        ("/prices/nope", 404),
        ("/reviews/nope", 404),
        ("/products/a/b", 404),  # no route matched
        ("/products", 400),  # no ids
        ("/prices?ids=", 400),
        ("/reviews?ids=a,,b", 400),
        ("/categories/nope", 404),
        ("/categories/a/b", 404),
        ("/recommendations", 404),
    ],
)
async def test_errors_are_no_store(upstream: Upstream, path: str, expected_status: int) -> None:
    status, cache_control, _ = await _get(upstream, path)
    assert (status, cache_control) == (expected_status, "no-store")


async def test_health_and_admin_have_no_cache_control(upstream: Upstream) -> None:
    for path in ("/healthz", "/admin/faults", "/admin/requests"):
        status, cache_control, _ = await _get(upstream, path)
        assert (status, cache_control) == (200, None)


@pytest.mark.parametrize("service", list(_PATHS))
async def test_injected_error_is_no_store(upstream: Upstream, service: str) -> None:
    await upstream.put_fault(service, {"status": 503})
    status, cache_control, _ = await _get(upstream, _PATHS[service])
    assert (status, cache_control) == (503, "no-store")


async def test_injected_error_with_a_faulty_body_is_no_store(upstream: Upstream) -> None:
    await upstream.put_fault("product", {"status": 500, "malformed": True})
    for path in ("/products/p-1001", "/products?ids=p-1001"):
        assert (await _get(upstream, path))[:2] == (500, "no-store")


async def test_faulty_200_bodies_keep_the_service_header(upstream: Upstream) -> None:
    # A 200 with a broken body looks cacheable: exactly what a gateway must not trust blindly.
    await upstream.put_fault("pricing", {"malformed": True})
    assert (await _get(upstream, "/prices/p-1001"))[:2] == (200, _PRICING)
    await upstream.put_fault("pricing", {"wrong_shape": True, "cache_control": "max-age=9"})
    assert (await _get(upstream, "/prices/p-1001"))[:2] == (200, "max-age=9")


@pytest.mark.parametrize(
    "value", ["max-age=1, stale-while-revalidate=5", "no-store", "private, max-age=60"]
)
async def test_override_serves_the_normal_body(upstream: Upstream, value: str) -> None:
    _, _, normal = await _get(upstream, "/reviews/p-1001")
    stored = await upstream.put_fault("reviews", {"cache_control": value})
    assert stored == {"cache_control": value}
    assert await upstream.faults() == {"reviews": {"cache_control": value}}
    assert await _get(upstream, "/reviews/p-1001") == (200, value, normal)
    # Other services keep their defaults.
    assert (await _get(upstream, "/prices/p-1001"))[:2] == (200, _PRICING)


async def test_override_on_the_product_list(upstream: Upstream) -> None:
    await upstream.put_fault("product", {"cache_control": "max-age=2"})
    for path in ("/products/p-1001", "/products?ids=p-1001,p-1002"):
        assert (await _get(upstream, path))[:2] == (200, "max-age=2")


async def test_override_does_not_apply_to_errors(upstream: Upstream) -> None:
    await upstream.put_fault("inventory", {"cache_control": "max-age=600"})
    assert (await _get(upstream, "/inventory/nope"))[:2] == (404, "no-store")
    await upstream.put_fault("inventory", {"cache_control": "max-age=600", "status": 502})
    assert (await _get(upstream, "/inventory/p-1001"))[:2] == (502, "no-store")


async def test_override_respects_count(upstream: Upstream) -> None:
    await upstream.put_fault("pricing", {"cache_control": "no-store", "count": 2})
    headers = [(await _get(upstream, "/prices/p-1001"))[1] for _ in range(3)]
    assert headers == ["no-store", "no-store", _PRICING]
    assert await upstream.faults() == {}


async def test_override_respects_rate(upstream: Upstream) -> None:
    await upstream.put_fault("pricing", {"cache_control": "no-store", "rate": 0})
    assert {(await _get(upstream, "/prices/p-1001"))[1] for _ in range(20)} == {_PRICING}
    await upstream.put_fault("pricing", {"cache_control": "no-store", "rate": 0.5})
    # Two hundred draws: both outcomes missing has a probability of about 1e-60.
    seen = {(await _get(upstream, "/prices/p-1001"))[1] for _ in range(200)}
    assert seen == {_PRICING, "no-store"}


async def test_clearing_the_fault_restores_the_default(upstream: Upstream) -> None:
    await upstream.put_fault("reviews", {"cache_control": "no-store"})
    await upstream.reset()
    assert (await _get(upstream, "/reviews/p-1001"))[:2] == (200, _REVIEWS)


async def test_longest_value_is_accepted(upstream: Upstream) -> None:
    value = "max-age=1, " + "x" * 189
    assert len(value) == 200
    status, _, stored = await _put(upstream, "reviews", {"cache_control": value})
    assert (status, stored) == (200, {"cache_control": value})
    assert (await _get(upstream, "/reviews/p-1001"))[1] == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        " max-age=1",
        "max-age=1 ",
        "no-store\n",
        "no-store\r\nX-Injected: 1",
        "max-age=1,\tprivate",
        "caf\u00e9",
        "x" * 201,
        5,
        ["no-store"],
    ],
)
async def test_invalid_cache_control_is_400_problem(upstream: Upstream, value: Any) -> None:
    status, content_type, problem = await _put(upstream, "reviews", {"cache_control": value})
    assert (status, content_type) == (400, "application/problem+json")
    assert problem["status"] == 400
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert "cache_control" in problem["detail"]
    assert await upstream.faults() == {}


def test_create_app_rejects_a_bad_cache_control() -> None:
    with pytest.raises(ValueError, match="cache_control"):
        create_app(faults={"reviews": Fault(cache_control="no-store\n")})


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["reviews:cache_control=no-store"], Fault(cache_control="no-store")),
        (["reviews:cache_control=max-age=1"], Fault(cache_control="max-age=1")),
        (
            ['reviews:cache_control="max-age=1, stale-while-revalidate=5",rate=0.5'],
            Fault(cache_control="max-age=1, stale-while-revalidate=5", rate=0.5),
        ),
        (
            ['reviews:count=2, cache_control = "private, max-age=60"'],
            Fault(cache_control="private, max-age=60", count=2),
        ),
        (
            ['reviews:cache_control="no-cache=""set-cookie"", max-age=5"'],
            Fault(cache_control='no-cache="set-cookie", max-age=5'),
        ),
        (
            ["reviews:status=503", "reviews:cache_control=no-cache"],
            Fault(status=503, cache_control="no-cache"),
        ),
    ],
)
def test_cache_control_flag(flags: list[str], expected: Fault) -> None:
    assert parse_fault_flags(flags) == {"reviews": expected}


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("reviews:cache_control", "cache_control needs a value"),
        ("reviews:cache_control=", "cache_control"),
        ('reviews:cache_control=""', "cache_control"),
        ('reviews:cache_control="max-age=1, private', "unterminated double quote"),
        ("reviews:cache_control=" + "x" * 201, "cache_control"),
        # Unquoted, the comma starts a new key.
        ("reviews:cache_control=max-age=1, private", "unknown field 'private'"),
    ],
)
def test_bad_cache_control_flag(flag: str, message: str) -> None:
    with pytest.raises(ValueError, match="--fault") as excinfo:
        parse_fault_flags([flag])
    assert message in str(excinfo.value)


def test_bad_cache_control_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--fault", "reviews:cache_control"])
    assert excinfo.value.code == 2
    assert "cache_control needs a value" in capsys.readouterr().err


async def test_flag_faults_served(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    faults = parse_fault_flags(
        ["reviews:cache_control=no-store", 'pricing:cache_control="max-age=1, stale-if-error=9"']
    )
    async with server_factory(latency_scale=0, faults=faults) as url:
        assert (await _fetch(http, url + "/reviews/p-1001"))[:2] == (200, "no-store")
        assert (await _fetch(http, url + "/prices/p-1001"))[:2] == (
            200,
            "max-age=1, stale-if-error=9",
        )
        assert (await _fetch(http, url + "/inventory/p-1001"))[:2] == (200, _INVENTORY)


@pytest.mark.process
def test_real_program_with_a_cache_control_flag() -> None:
    args = ["--latency-scale", "0", "--fault", 'product:cache_control="private, max-age=60"']
    with run_service("demo_upstreams", args) as service:
        with urllib.request.urlopen(service.url + "/products/p-1001", timeout=2) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "private, max-age=60"
        with urllib.request.urlopen(service.url + "/reviews/p-1001", timeout=2) as response:
            assert response.headers["Cache-Control"] == _REVIEWS
    assert service.process.returncode == 0  # stopped cleanly (tests.processes.stop_process: SIGINT)
