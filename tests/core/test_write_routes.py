"""Write routes through the whole edge (Litestar, the guard, CORS), against a real upstream
and a real JWKS endpoint on loopback: the contract's answers for bodies, keys and outcomes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from bff_core import Gateway, WriteResult
from bff_core._guards import (
    Idempotency,
    KeySet,
    RateLimits,
    RedisRecords,
    TokenVerifier,
    parse_limits,
)
from bff_core.litestar import GatewayPlugin, mutation_route
from bff_core.litestar._edge import CorsPolicy
from litestar import Litestar

from tests.identity_provider import ISSUER, WEB_AUDIENCE, IdentityProvider, run_identity_provider

from .test_writes import CART_LINE, ORDER, REVIEW, Shop, shop  # noqa: F401 (a fixture)

ORIGIN = "https://shop.example"


def cart_view(result: WriteResult) -> dict[str, Any]:
    assert result.aggregate is not None
    items: list[dict[str, Any]] = result.aggregate["cart"].value["items"]
    return {"lines": items, "count": len(items)}


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    with run_identity_provider() as running:
        running.add_key("ES256", "ec-1")
        yield running


def _app(
    upstream: Shop,
    provider: IdentityProvider,
    idempotency: Idempotency | None = None,
    limits: RateLimits | None = None,
) -> Litestar:
    verifier = TokenVerifier(
        KeySet(provider.url, refresh_every=3600), issuer=ISSUER, audience=WEB_AUDIENCE
    )
    gateway = Gateway(
        services={"shop": upstream.base_url},
        timeout=0.5,
        http_client="aiohttp",
        idempotency=idempotency,
    )
    return Litestar(
        [
            mutation_route(
                "/api/cart/items/{product_id:str}", CART_LINE, cart_view, summary="Set a line"
            ),
            mutation_route("/api/orders", ORDER, summary="Place an order"),
            mutation_route("/api/products/{id:str}/reviews", REVIEW, summary="Write a review"),
        ],
        plugins=[
            GatewayPlugin(
                gateway,
                verifier=verifier,
                cors=CorsPolicy.from_setting(ORIGIN),
                rate_limits=limits,
            )
        ],
        logging_config=None,
    )


@asynccontextmanager
async def _serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A real server in this loop, where the upstream runs too (a test client would run the
    application in a thread of its own and block this loop while it waits)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn has no event for it
        await asyncio.sleep(0.01)
    host, port = sock.getsockname()[:2]
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=5) as client:
            yield client
    finally:
        server.should_exit = True
        await serving
        sock.close()


@pytest_asyncio.fixture(loop_scope="session")
async def client(
    shop: Shop,  # noqa: F811
    provider: IdentityProvider,
) -> AsyncIterator[httpx.AsyncClient]:
    async with _serve(_app(shop, provider)) as running:
        yield running


def _auth(provider: IdentityProvider, subject: str = "ada") -> dict[str, str]:
    return {"authorization": "Bearer " + provider.mint("ec-1", subject=subject)}


async def test_a_cart_line_answers_the_cart_screen(
    client: httpx.AsyncClient, provider: IdentityProvider
) -> None:
    response = await client.put(
        "/api/cart/items/p-1", json={"quantity": 3}, headers=_auth(provider, "cart-user")
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"lines": [{"product_id": "p-1", "quantity": 3}], "count": 1}


async def test_no_token_is_a_401(client: httpx.AsyncClient, shop: Shop) -> None:  # noqa: F811
    sent = len(shop.writes)
    response = await client.post("/api/orders", json={}, headers={"idempotency-key": "k"})
    assert response.status_code == 401
    assert len(shop.writes) == sent


async def test_bodies_json_only_bounded_and_validated(
    client: httpx.AsyncClient, provider: IdentityProvider
) -> None:
    headers = {**_auth(provider), "idempotency-key": "body-1"}
    as_text = await client.post(
        "/api/products/p-1/reviews",
        content=b"stars=5",
        headers={**headers, "content-type": "text/plain"},
    )
    assert as_text.status_code == 415
    huge = await client.post(
        "/api/products/p-1/reviews",
        content=b'{"stars": 5, "text": "' + b"x" * 70_000 + b'"}',
        headers={**headers, "content-type": "application/json"},
    )
    assert huge.status_code == 413
    invalid = await client.post(
        "/api/products/p-1/reviews", json={"stars": 9, "text": "secret words"}, headers=headers
    )
    assert invalid.status_code == 422
    problem = invalid.json()
    assert problem["fields"] == ["$.stars"]
    assert "secret" not in invalid.text
    # JSON has one kind of number: 4.0 is the integer the document says (JSON Schema's
    # reading), 4.5 is not
    whole = await client.post(
        "/api/products/p-1/reviews",
        content=b'{"stars": 4.0, "text": "fine"}',
        headers={**headers, "content-type": "application/json", "idempotency-key": "body-2"},
    )
    assert whole.status_code == 201, whole.text
    assert whole.json()["stars"] == 4
    half = await client.post(
        "/api/products/p-1/reviews",
        content=b'{"stars": 4.5, "text": "fine"}',
        headers={**headers, "content-type": "application/json", "idempotency-key": "body-3"},
    )
    assert half.status_code == 422
    assert half.json()["fields"] == ["$.stars"]


async def test_a_post_needs_a_key(client: httpx.AsyncClient, provider: IdentityProvider) -> None:
    response = await client.post("/api/orders", json={}, headers=_auth(provider))
    assert response.status_code == 400
    assert response.json()["parameter"] == "Idempotency-Key"


async def test_a_key_is_carried_out_once_and_replayed(
    client: httpx.AsyncClient,
    provider: IdentityProvider,
    shop: Shop,  # noqa: F811
) -> None:
    headers = {**_auth(provider, "orderer"), "idempotency-key": "order-1"}
    sent = len(shop.writes)
    answers = await asyncio.gather(
        *(client.post("/api/orders", json={}, headers=headers) for _ in range(10))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    assert len(shop.writes) == sent + 1
    created = next(a for a in answers if a.status_code == 201).json()

    replay = await client.post("/api/orders", json={}, headers=headers)
    assert replay.status_code == 201
    assert replay.json() == created
    assert replay.headers["idempotent-replayed"] == "true"
    other = await client.post("/api/orders", json={"x": 1}, headers=headers)
    assert other.status_code == 422  # another body with the key: never carried out
    assert other.json()["type"] == "urn:bff:problem:idempotency-key-reused"
    assert len(shop.writes) == sent + 1


async def test_an_unknown_outcome_is_a_504_and_stays_unknown(
    client: httpx.AsyncClient,
    provider: IdentityProvider,
    shop: Shop,  # noqa: F811
) -> None:
    headers = {**_auth(provider, "hung"), "idempotency-key": "order-hung"}
    sent = len(shop.writes)
    shop.faults["/orders"] = ["hang"]
    first = await client.post("/api/orders", json={}, headers=headers)
    assert first.status_code == 504
    assert "outcome is unknown" in first.json()["detail"]
    again = await client.post("/api/orders", json={}, headers=headers)
    assert again.status_code == 504
    assert again.headers["idempotent-replayed"] == "true"
    assert len(shop.writes) == sent + 1


async def test_a_preflight_allows_writes_with_their_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        "/api/orders",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, idempotency-key, authorization",
        },
    )
    assert response.status_code == 204
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "idempotency-key" in response.headers["access-control-allow-headers"]


async def test_two_instances_on_one_redis_place_one_order_per_key_also_after_a_restart(
    shop: Shop,  # noqa: F811
    provider: IdentityProvider,
    redis_url: str,
    redis_namespace: str,
) -> None:
    def instance() -> Litestar:
        shared = Idempotency(RedisRecords(redis_url), namespace=redis_namespace)
        return _app(shop, provider, shared)

    headers = {**_auth(provider, "fleet"), "idempotency-key": "fleet-order"}
    sent = len(shop.writes)
    async with _serve(instance()) as one, _serve(instance()) as two:
        answers = await asyncio.gather(
            *((one, two)[i % 2].post("/api/orders", json={}, headers=headers) for i in range(20))
        )
    assert {a.status_code for a in answers} <= {201, 409}
    created = [a.json() for a in answers if a.status_code == 201]
    assert len(created) >= 1 and all(c == created[0] for c in created)
    assert len(shop.writes) == sent + 1

    async with _serve(instance()) as restarted:
        replay = await restarted.post("/api/orders", json={}, headers=headers)
    assert (replay.status_code, replay.json()) == (201, created[0])
    assert replay.headers["idempotent-replayed"] == "true"
    assert len(shop.writes) == sent + 1


async def test_writes_are_counted_with_their_own_lower_limit(
    shop: Shop,  # noqa: F811
    provider: IdentityProvider,
) -> None:
    limits = RateLimits(
        parse_limits("100/minute"), per_aggregate={"review": parse_limits("1/minute")}
    )
    async with _serve(_app(shop, provider, limits=limits)) as client:
        headers = _auth(provider, "limited")
        review = {"stars": 4, "text": "ok"}
        first = await client.post(
            "/api/products/p-7/reviews", json=review, headers={**headers, "idempotency-key": "a"}
        )
        second = await client.post(
            "/api/products/p-7/reviews", json=review, headers={**headers, "idempotency-key": "b"}
        )
    assert first.status_code == 201
    assert second.status_code == 429


async def test_the_document_shows_each_writes_answer_problems_and_token(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    order = paths["/api/orders"]["post"]
    assert order["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Order"
    }
    assert {"400", "401", "409", "413", "415", "422", "502", "503", "504"} <= set(
        order["responses"]
    )
    assert order["security"] == [{"bearer": []}]
    line = paths["/api/cart/items/{product_id}"]["put"]
    assert "200" in line["responses"]


async def test_the_document_shows_each_writes_body_key_and_ids(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    paths, schemas = document["paths"], document["components"]["schemas"]

    def key(operation: dict[str, Any]) -> dict[str, Any]:
        (found,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert found["in"] == "header"
        assert found["schema"] == {
            "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"
        }  # fmt: skip
        assert isinstance(found, dict)
        return found

    review = paths["/api/products/{id}/reviews"]["post"]
    assert key(review)["required"] is True
    body = review["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReviewIn"
    }
    # forbid_unknown_fields: a closed object, as the route refuses any other field
    assert schemas["ReviewIn"]["additionalProperties"] is False
    assert schemas["ReviewIn"]["properties"]["stars"] == {
        "type": "integer", "minimum": 1, "maximum": 5
    }  # fmt: skip
    (identifier,) = [p for p in review["parameters"] if p["in"] == "path"]
    assert identifier["schema"]["maxLength"] == 128
    assert identifier["required"] is True

    line = paths["/api/cart/items/{product_id}"]["put"]
    assert key(line)["required"] is False  # a PUT is idempotent by nature
    assert line["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Quantity"
    }

    order = paths["/api/orders"]["post"]
    assert key(order)["required"] is True
    assert order["requestBody"]["required"] is False  # none, or {}
    assert order["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "object", "maxProperties": 0
    }  # fmt: skip
