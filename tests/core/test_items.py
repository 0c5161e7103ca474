"""List parts against a real scripted HTTP server: batching, bounded concurrency, per-item
failures and deadlines, per-item caching and coalescing, and the declaration checks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
from bff_core import (
    Aggregate,
    AggregationFailed,
    Batch,
    CachePolicy,
    DeclarationError,
    Gateway,
    InvalidParameter,
    Items,
    ItemsResult,
    Param,
    Source,
    part_errors,
    stale_parts,
)
from bff_core._cache import MemoryStore

from .scripted_upstream import Reply, ScriptedUpstream, batch_reply, scripted_upstream


class Product(msgspec.Struct):
    id: str
    name: str
    category: str = "lamps"


class Price(msgspec.Struct):
    product_id: str
    amount: int


class Listing(msgspec.Struct):
    name: str
    product_ids: list[str]


PRODUCTS = {f"p{i}": {"id": f"p{i}", "name": f"Product {i}"} for i in range(100)}
PRICES = {f"p{i}": {"product_id": f"p{i}", "amount": 100 + i} for i in range(100)}
CACHE = CachePolicy(ttl=60, stale_while_revalidate=60, stale_if_error=600)


def item_sources(
    *, size: int = 10, price_cache: CachePolicy | None = None, concurrency: int = 8
) -> list[Source]:
    return [
        Source(
            "product",
            service="svc",
            path="/products/{item}",
            returns=Product,
            critical=True,
            cache=CACHE,
            batch=Batch("/products?ids={ids}", size=size, key="id"),
            concurrency=concurrency,
        ),
        Source(
            "pricing",
            service="svc",
            path="/prices/{item}",
            returns=Price,
            cache=price_cache,
            batch=Batch("/prices?ids={ids}", size=size, key="product_id"),
            concurrency=concurrency,
        ),
    ]


def category_grid(**options: Any) -> Aggregate:
    return Aggregate(
        "grid",
        params=[
            Param("slug"),
            Param("limit", required=False, default="24", minimum=1, maximum=48),
            Param("offset", required=False, default="0", minimum=0, maximum=10_000),
        ],
        sources=[
            Source(
                "category", service="svc", path="/categories/{slug}", returns=Listing, critical=True
            ),
            Items(
                "items",
                ids="category.product_ids",
                limit="limit",
                offset="offset",
                sources=item_sources(**options),
                critical=True,
            ),
        ],
    )


def script_category(upstream: ScriptedUpstream, ids: list[str], *, slug: str = "lamps") -> None:
    upstream.script(f"/categories/{slug}", Reply(json={"name": "Lamps", "product_ids": ids}))


def requests_to(upstream: ScriptedUpstream, prefix: str) -> list[str]:
    return [r.raw_path for r in upstream.received if r.raw_path.startswith(prefix)]


def ids_asked(raw_path: str) -> list[str]:
    return (
        raw_path.partition("ids=")[2].split("%2C")
        if "%2C" in raw_path
        else raw_path.partition("ids=")[2].split(",")
    )


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    async with scripted_upstream() as server:
        server.script("/products", batch_reply(PRODUCTS))
        server.script("/prices", batch_reply(PRICES))
        yield server


@pytest.fixture
async def gateway(upstream: ScriptedUpstream) -> AsyncIterator[Gateway]:
    async with Gateway(services={"svc": upstream.url}, timeout=2.0) as gw:
        yield gw


@pytest.fixture
async def cached(upstream: ScriptedUpstream) -> AsyncIterator[Gateway]:
    async with Gateway(services={"svc": upstream.url}, timeout=2.0, cache=MemoryStore()) as gw:
        yield gw


def items_of(result: Any) -> ItemsResult:
    value = result.value("items")
    assert isinstance(value, ItemsResult)
    return value


async def test_a_grid_reads_every_item_source_in_chunks_of_the_batch_size(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    ids = [f"p{i}" for i in range(30)]
    script_category(upstream, ids)
    result = await gateway.run(category_grid(size=10), {"slug": "lamps"})
    items = items_of(result)
    assert [item.id for item in items] == ids[:24]  # the default limit, in the list's order
    assert items.total == 30
    assert items[0].value("product").name == "Product 0"
    assert items[23].value("pricing").amount == 123
    assert all(item.failed == [] for item in items)
    # 1 + 2 x ceil(24 / 10) requests: the category, then three chunks per item source.
    product_chunks = requests_to(upstream, "/products")
    assert len(upstream.received) == 1 + 2 * 3
    assert sorted(len(ids_asked(path)) for path in product_chunks) == [4, 10, 10]
    assert part_errors(result) == []


class Line(msgspec.Struct):
    product_id: str
    quantity: int


class Basket(msgspec.Struct):
    lines: list[Line]


async def test_ids_may_be_a_field_of_each_element_of_a_list(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    lines = [{"product_id": "p3", "quantity": 2}, {"product_id": "p1", "quantity": 1}]
    upstream.script("/baskets/b", Reply(json={"lines": lines}))
    basket = Aggregate(
        "basket",
        params=[],
        sources=[
            Source("basket", service="svc", path="/baskets/b", returns=Basket, critical=True),
            Items("items", ids="basket.lines.product_id", sources=item_sources()),
        ],
    )
    items = items_of(await gateway.run(basket, {}))
    assert [item.id for item in items] == ["p3", "p1"]
    assert items[0].value("product").name == "Product 3"
    with pytest.raises(DeclarationError, match="Line has no field 'sku'"):
        Aggregate(
            "basket",
            params=[],
            sources=[
                Source("basket", service="svc", path="/baskets/b", returns=Basket),
                Items("items", ids="basket.lines.sku", sources=item_sources()),
            ],
        )


async def test_chunks_go_out_concurrently(upstream: ScriptedUpstream, gateway: Gateway) -> None:
    script_category(upstream, [f"p{i}" for i in range(40)])
    upstream.script("/products", batch_reply(PRODUCTS, delay=0.2))
    upstream.script("/prices", batch_reply(PRICES, delay=0.2))
    began = time.perf_counter()
    result = await gateway.run(category_grid(size=10), {"slug": "lamps", "limit": "40"})
    elapsed = time.perf_counter() - began
    assert len(items_of(result)) == 40
    # Eight chunks of 200 ms: concurrent, so well under their sum (1.6 s).
    assert elapsed < 0.6
    assert upstream.most_in_flight == 8


async def test_paging_and_its_bounds(upstream: ScriptedUpstream, gateway: Gateway) -> None:
    script_category(upstream, [f"p{i}" for i in range(30)])
    grid = category_grid()
    result = await gateway.run(grid, {"slug": "lamps", "limit": "5", "offset": "27"})
    assert [item.id for item in items_of(result)] == ["p27", "p28", "p29"]
    beyond = await gateway.run(grid, {"slug": "lamps", "offset": "300"})
    assert list(items_of(beyond)) == []
    for bad in ("0", "49", "-1", "ten", "1.5", " 3"):
        with pytest.raises(InvalidParameter, match="whole number from 1 to 48"):
            await gateway.run(grid, {"slug": "lamps", "limit": bad})


async def test_per_item_requests_are_bounded_by_the_declared_concurrency(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    for key, value in PRODUCTS.items():
        upstream.script(f"/products/{key}", Reply(json=value, delay=0.05))
    aggregate = Aggregate(
        "wishlist",
        params=[Param("ids", max_length=1000)],
        sources=[
            Items(
                "items",
                ids="ids",
                sources=[
                    Source(
                        "product",
                        service="svc",
                        path="/products/{item}",
                        returns=Product,
                        concurrency=3,
                    )
                ],
            )
        ],
    )
    ids = [f"p{i}" for i in range(12)]
    result = await gateway.run(aggregate, {"ids": ",".join(ids)})
    assert [item.id for item in items_of(result)] == ids
    assert len(upstream.received) == 12
    assert upstream.most_in_flight == 3


async def test_unknown_items_are_left_out_and_a_missing_part_is_that_items_failure(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    script_category(upstream, ["p1", "gone", "p2", "p3"])
    prices = {k: v for k, v in PRICES.items() if k != "p2"}
    upstream.script("/prices", batch_reply(prices))
    result = await gateway.run(category_grid(), {"slug": "lamps"})
    items = items_of(result)
    assert [item.id for item in items] == ["p1", "p2", "p3"]  # no product: not on the list
    assert items[1].value("pricing") is None
    assert items[1].failures == {"pricing": "upstream_status"}
    assert items[1].value("product").name == "Product 2"
    errors = msgspec.to_builtins(part_errors(result))
    assert errors == [
        {
            "source": "items.pricing",
            "reason": "upstream_status",
            "status": 404,
            "items": ["p2"],
            "item_count": 1,
        }
    ]


async def test_a_failed_chunk_marks_its_items_only(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    ids = [f"p{i}" for i in range(6)]
    script_category(upstream, ids)
    upstream.script(
        "/prices",
        batch_reply(PRICES, fail=lambda asked: Reply(status=503) if "p2" in asked else None),
    )
    result = await gateway.run(category_grid(size=2), {"slug": "lamps"})
    items = items_of(result)
    assert [item.id for item in items] == ids
    assert [item.failed for item in items] == [[], [], ["pricing"], ["pricing"], [], []]
    assert [item.value("product") is not None for item in items] == [True] * 6
    assert msgspec.to_builtins(part_errors(result)) == [
        {
            "source": "items.pricing",
            "reason": "upstream_status",
            "status": 503,
            "items": ["p2", "p3"],
            "item_count": 2,
        }
    ]
    assert result["items"].fresh_for == 0  # an answer with a failure is not kept whole


async def test_errors_list_at_most_twenty_items_but_count_them_all(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    script_category(upstream, [f"p{i}" for i in range(30)])
    upstream.script("/prices", Reply(status=500))
    result = await gateway.run(category_grid(size=50), {"slug": "lamps", "limit": "30"})
    (error,) = part_errors(result)
    assert error.source == "items.pricing" and error.reason == "upstream_status"
    assert error.items == [f"p{i}" for i in range(20)]
    assert error.item_count == 30


async def test_the_deadline_ends_the_list_and_keeps_what_arrived(
    upstream: ScriptedUpstream,
) -> None:
    ids = [f"p{i}" for i in range(4)]
    script_category(upstream, ids)
    upstream.script(
        "/prices",
        batch_reply(PRICES, fail=lambda asked: Reply(hang=True) if "p2" in asked else None),
    )
    # aiohttp: a request it abandons is closed at once (pyreqwest ends it at the deadline).
    async with Gateway(
        services={"svc": upstream.url}, timeout=0.3, http_client="aiohttp"
    ) as gateway:
        began = time.perf_counter()
        result = await gateway.run(category_grid(size=2), {"slug": "lamps"})
        elapsed = time.perf_counter() - began
    assert 0.29 < elapsed < 0.6
    items = items_of(result)
    assert [item.failures for item in items] == [
        {},
        {},
        {"pricing": "timeout"},
        {"pricing": "timeout"},
    ]
    assert items[0].value("pricing").amount == 100
    assert [error.items for error in part_errors(result)] == [["p2", "p3"]]
    await asyncio.sleep(0.05)
    assert any(path.startswith("/prices") for path in upstream.abandoned)  # cancelled


async def test_a_critical_list_fails_when_no_item_can_be_shown(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    script_category(upstream, ["p1", "p2"])
    upstream.script("/products", Reply(status=503))
    with pytest.raises(AggregationFailed) as failed:
        await gateway.run(category_grid(), {"slug": "lamps"})
    assert failed.value.status == 502
    assert failed.value.critical.name == "items"
    # Unknown items are no failure: an empty list is an answer.
    script_category(upstream, ["nope"])
    upstream.script("/products", batch_reply(PRODUCTS))
    result = await gateway.run(category_grid(), {"slug": "lamps"})
    assert list(items_of(result)) == [] and part_errors(result) == []


async def test_the_list_source_keeps_the_critical_rules(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    with pytest.raises(AggregationFailed) as failed:
        await gateway.run(category_grid(), {"slug": "unknown"})  # not scripted: a 404
    assert failed.value.status == 404
    assert len(upstream.received) == 1  # no item was read


async def test_a_malformed_batch_answer_is_an_invalid_response_of_its_items(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    script_category(upstream, ["p1", "p2"])
    upstream.script("/prices", Reply(json={"not": "an array"}))
    result = await gateway.run(category_grid(), {"slug": "lamps"})
    assert [item.failures for item in items_of(result)] == [
        {"pricing": "invalid_response"},
        {"pricing": "invalid_response"},
    ]


async def test_ids_are_encoded_one_by_one(upstream: ScriptedUpstream, gateway: Gateway) -> None:
    odd = {"a,b": {"id": "a,b", "name": "Comma"}, "../x": {"id": "../x", "name": "Dots"}}
    upstream.script("/products", batch_reply(odd))
    upstream.script("/prices", batch_reply({}))
    script_category(upstream, list(odd))
    result = await gateway.run(category_grid(), {"slug": "lamps"})
    assert [item.id for item in items_of(result)] == ["a,b", "../x"]
    (chunk,) = requests_to(upstream, "/products")
    assert chunk == "/products?ids=a%2Cb,..%2Fx"


async def test_cached_items_cost_nothing_and_single_reads_share_their_entries(
    upstream: ScriptedUpstream, cached: Gateway
) -> None:
    product_page = Aggregate(
        "page",
        params=[Param("id")],
        sources=[
            Source("product", service="svc", path="/products/{id}", returns=Product, cache=CACHE)
        ],
    )
    for key in ("p1", "p2"):
        upstream.script(f"/products/{key}", Reply(json=PRODUCTS[key]))
        await cached.run(product_page, {"id": key})
    script_category(upstream, ["p0", "p1", "p2", "p3"])
    upstream.received.clear()
    result = await cached.run(category_grid(price_cache=CACHE), {"slug": "lamps"})
    assert len(items_of(result)) == 4
    # The product pages held p1 and p2: only p0 and p3 went to the product service.
    (chunk,) = requests_to(upstream, "/products")
    assert ids_asked(chunk) == ["p0", "p3"]
    # And the other way round: the grid's entries serve a product page.
    upstream.received.clear()
    await cached.run(product_page, {"id": "p3"})
    assert upstream.received == []
    # A second grid: everything cached, only the category is asked (it declares no cache).
    again = await cached.run(category_grid(price_cache=CACHE), {"slug": "lamps"})
    assert [r.raw_path for r in upstream.received] == ["/categories/lamps"]
    assert again["items"].fresh_for > 50
    assert {item.value("product").name for item in items_of(again)} == {
        "Product 0", "Product 1", "Product 2", "Product 3",
    }  # fmt: skip


async def test_concurrent_grids_coalesce_into_one_read_per_item(
    upstream: ScriptedUpstream, cached: Gateway
) -> None:
    script_category(upstream, [f"p{i}" for i in range(10)])
    upstream.script("/products", batch_reply(PRODUCTS, delay=0.1))
    grid = category_grid(price_cache=CACHE)
    results = await asyncio.gather(*(cached.run(grid, {"slug": "lamps"}) for _ in range(5)))
    assert all(len(items_of(r)) == 10 for r in results)
    assert len(requests_to(upstream, "/products")) == 1
    assert len(requests_to(upstream, "/prices")) == 1


async def test_a_failed_chunk_falls_back_on_stale_items(
    upstream: ScriptedUpstream,
) -> None:
    short = CachePolicy(ttl=0.05, stale_while_revalidate=0.01, stale_if_error=60)
    async with Gateway(services={"svc": upstream.url}, cache=MemoryStore()) as gateway:
        script_category(upstream, ["p1", "p2"])
        await gateway.run(category_grid(price_cache=short), {"slug": "lamps"})
        await asyncio.sleep(0.1)
        upstream.script("/prices", Reply(status=503))
        result = await gateway.run(category_grid(price_cache=short), {"slug": "lamps"})
    items = items_of(result)
    assert [item.value("pricing").amount for item in items] == [101, 102]
    assert part_errors(result) == []
    (stale,) = stale_parts(result)
    assert stale.source == "items.pricing" and stale.age >= 0.1


async def test_item_parts_are_kept_per_user_when_given_the_identity(
    upstream: ScriptedUpstream, cached: Gateway
) -> None:
    from bff_core._guards._identity import Identity

    aggregate = Aggregate(
        "home",
        params=[],
        sources=[
            Source(
                "picks",
                service="svc",
                path="/recommendations/{user}",
                returns=Listing,
                critical=True,
                cache=CachePolicy(ttl=60, per_user=True),
            ),
            Items(
                "items",
                ids="picks.product_ids",
                sources=[
                    Source(
                        "pricing",
                        service="svc",
                        path="/prices/{item}",
                        returns=Price,
                        subject_header="x-user-id",
                        cache=CachePolicy(ttl=60, per_user=True),
                        batch=Batch("/prices?ids={ids}", size=10, key="product_id"),
                    )
                ],
            ),
        ],
    )
    for user in ("anonymous", "u%2F1"):
        upstream.script(
            f"/recommendations/{user}", Reply(json={"name": user, "product_ids": ["p1"]})
        )
    alice = Identity(subject="u/1", token="t", expires_at=time.time() + 60, claims={})
    await cached.run(aggregate, {}, identity=alice)
    await cached.run(aggregate, {})
    await cached.run(aggregate, {}, identity=alice)
    await cached.run(aggregate, {})
    # One read per user and per part: the users' entries are their own.
    assert [r.raw_path for r in upstream.received if r.raw_path.startswith("/rec")] == [
        "/recommendations/u%2F1",
        "/recommendations/anonymous",
    ]
    prices = [r for r in upstream.received if r.raw_path.startswith("/prices")]
    assert [r.headers.get("x-user-id") for r in prices] == ["u/1", None]


async def test_no_redis_key_nor_tag_names_the_user_in_clear(
    upstream: ScriptedUpstream, redis_url: str, redis_namespace: str
) -> None:
    # Issue 23: a {user} path put the subject into the part's key and a "user=<subject>" tag
    # into Redis; per-user entries stay per user, under names that do not say whose.
    from bff_core._cache import RedisStore
    from bff_core._guards import Identity
    from bff_core._redis import connect, parse_redis_url

    aggregate = Aggregate(
        "home",
        params=[],
        sources=[
            Source(
                "picks",
                service="svc",
                path="/recommendations/{user}",
                returns=Listing,
                critical=True,
                cache=CachePolicy(ttl=60, per_user=True),
            ),
            Items(
                "items",
                ids="picks.product_ids",
                sources=[
                    Source(
                        "pricing",
                        service="svc",
                        path="/prices/{item}",
                        returns=Price,
                        subject_header="x-user-id",
                        cache=CachePolicy(ttl=60, per_user=True),
                        batch=Batch("/prices?ids={ids}", size=10, key="product_id"),
                    )
                ],
            ),
        ],
    )
    subjects = ("ada.lovelace@example.com", "grace.hopper@example.com")
    for subject in subjects:
        upstream.script(
            f"/recommendations/{quote(subject, safe='')}",
            Reply(json={"name": "picks", "product_ids": ["p1"]}),
        )
    store = RedisStore(redis_url, namespace=redis_namespace)
    async with Gateway(services={"svc": upstream.url}, timeout=2.0, cache=store) as gateway:
        for _ in range(2):
            for subject in subjects:
                identity = Identity(
                    subject=subject, token="t", expires_at=time.time() + 60, claims={}
                )
                await gateway.run(aggregate, {}, identity=identity)
            await asyncio.sleep(0.2)  # the entries are written in the background
    # Each user's parts were read once: their entries are their own.
    reads = [r.raw_path for r in upstream.received if r.raw_path.startswith("/rec")]
    assert len(reads) == 2
    assert len([r for r in upstream.received if r.raw_path.startswith("/prices")]) == 2
    client = connect(parse_redis_url(redis_url), timeout=2.0, socket_timeout=2.0)
    try:
        names = [k async for k in client.scan_iter(match=f"{redis_namespace}:*", count=1000)]
        members = []
        for name in names:
            if await client.type(name) in (b"set", "set"):
                members += list(await client.smembers(name))
        for name in names:
            await client.unlink(name)
    finally:
        await client.aclose()
    assert len(names) >= 4  # an entry and its record per user and part, at least
    seen = " ".join(str(x) for x in [*names, *members])
    for subject in subjects:
        for written in (subject, quote(subject, safe=""), subject.split("@")[0]):
            assert written not in seen


async def test_a_failed_background_refresh_is_logged_without_the_users_id(
    upstream: ScriptedUpstream, cached: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    from bff_core._guards import Identity

    aggregate = Aggregate(
        "mine",
        params=[],
        sources=[
            Source(
                "picks",
                service="svc",
                path="/recommendations/{user}",
                returns=Listing,
                critical=True,
                cache=CachePolicy(ttl=0.05, stale_while_revalidate=60, per_user=True),
            )
        ],
    )
    subject = "ada.lovelace@example.com"
    path = f"/recommendations/{quote(subject, safe='')}"
    upstream.script(path, Reply(json={"name": "picks", "product_ids": ["p1"]}))
    ada = Identity(subject=subject, token="t", expires_at=time.time() + 60, claims={})
    await cached.run(aggregate, {}, identity=ada)
    await asyncio.sleep(0.1)  # stale now: the next request refreshes it in the background
    upstream.script(path, Reply(drop=True))
    caplog.set_level(logging.INFO, logger="bff_core.cache")
    await cached.run(aggregate, {}, identity=ada)
    await asyncio.sleep(0.3)
    [logged] = [r.getMessage() for r in caplog.records if "background refresh" in r.getMessage()]
    assert "picks" in logged
    assert subject not in logged and quote(subject, safe="") not in logged


async def test_a_failed_part_for_one_user_describes_its_failure_without_the_users_id(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    # A part's outcome is what traces carry (the span's status) and logs may show: its
    # transport error named the URL, which names the user for a {user} path.
    from bff_core._guards import Identity

    aggregate = Aggregate(
        "mine",
        params=[],
        sources=[
            Source("category", service="svc", path="/categories/lamps", returns=Listing),
            Source("picks", service="svc", path="/recommendations/{user}", returns=Listing),
        ],
    )
    subject = "ada.lovelace@example.com"
    upstream.script("/categories/lamps", Reply(json={"name": "lamps", "product_ids": []}))
    upstream.script(f"/recommendations/{quote(subject, safe='')}", Reply(drop=True))
    ada = Identity(subject=subject, token="t", expires_at=time.time() + 60, claims={})
    result = await gateway.run(aggregate, {}, identity=ada)
    picks = next(o for o in result.values() if o.name == "picks")
    assert picks.reason == "unavailable"
    assert "/recommendations/" not in picks.describe()
    assert subject not in picks.describe() and quote(subject, safe="") not in picks.describe()


# --- declarations -------------------------------------------------------------------------


def test_misdeclared_lists_fail_when_built() -> None:
    good = item_sources()

    def grid(*sources: Source | Items, params: list[Param] | None = None) -> Aggregate:
        return Aggregate(
            "g",
            params=params or [Param("slug"), Param("n", required=False, default="5")],
            sources=[
                Source("category", service="svc", path="/c/{slug}", returns=Listing),
                *sources,
            ],
        )

    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: Batch("/prices?ids=all", size=10, key="id"), r"needs exactly one \{ids\}"),
        (lambda: Batch("/prices/{ids}", size=10, key="id"), r"in its query"),
        (lambda: Batch("/prices?ids={ids}", size=0, key="id"), "size must be"),
        (lambda: Batch("/prices?ids={ids}", size=10, key="a-b"), "not a field name"),
        (lambda: Items("items", ids="category.product_ids", sources=[]), "no item sources"),
        (
            lambda: Items(
                "items",
                ids="category.product_ids",
                sources=[Source("p", service="svc", path="/p", returns=Product)],
            ),
            r"needs \{item\} exactly once",
        ),
        (
            lambda: grid(Items("items", ids="category.name", sources=good)),
            "category.name' is a str, not a list",
        ),
        (
            lambda: grid(Items("items", ids="category.nope", sources=good)),
            "Listing has no field 'nope'",
        ),
        (lambda: grid(Items("items", ids="other.ids", sources=good)), "no source 'other'"),
        (lambda: grid(Items("items", ids="slugs", sources=good)), "'slugs' is not a parameter"),
        (
            lambda: grid(Items("items", ids="category.product_ids", limit="n", sources=good)),
            "limit 'n' must name a whole-number parameter",
        ),
        (
            lambda: grid(
                Source(
                    "lone",
                    service="svc",
                    path="/p/{slug}",
                    returns=Product,
                    batch=Batch("/p?ids={ids}", size=5, key="id", same_as_item=False),
                )
            ),
            "the batch must answer what the path does",
        ),
        (
            lambda: grid(
                Items("items", ids="category.product_ids", sources=good),
                Source("after", service="svc", path="/a/{items.x}", returns=Product),
            ),
            "'items' is a list part",
        ),
        (lambda: Param("limit", minimum=1), "needs both minimum and maximum"),
        (lambda: Param("limit", required=False, default="0", minimum=1, maximum=5), "default"),
        (lambda: Param("user"), "reserved"),
    ]
    for build, message in cases:
        with pytest.raises(DeclarationError, match=message):
            build()


def test_a_list_left_out_of_the_default_parts_runs_only_when_asked_for() -> None:
    aggregate = Aggregate(
        "page",
        params=[Param("id")],
        sources=[
            Source("product", service="svc", path="/products/{id}", returns=Product, critical=True),
            Source(
                "category",
                service="svc",
                path="/categories/{product.category}",
                returns=Listing,
                default=False,
            ),
            Items(
                "related",
                ids="category.product_ids",
                exclude="id",
                limit=4,
                sources=item_sources(),
                default=False,
            ),
        ],
    )
    assert aggregate.default_parts == {"product"}
    assert [s.name for s in aggregate.plan(None).sources] == ["product"]
    assert [s.name for s in aggregate.plan("related").sources] == ["product", "category", "related"]
    assert aggregate.plan("product,related").reported == {"product", "related"}


async def test_a_related_list_depends_on_the_product_and_leaves_it_out(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    aggregate = Aggregate(
        "page",
        params=[Param("id")],
        sources=[
            Source("product", service="svc", path="/products/{id}", returns=Product, critical=True),
            Source(
                "category",
                service="svc",
                path="/categories/{product.category}",
                returns=Listing,
                default=False,
            ),
            Items(
                "related",
                ids="category.product_ids",
                exclude="id",
                limit=3,
                sources=item_sources(),
                default=False,
            ),
        ],
    )
    upstream.script("/products/p1", Reply(json=PRODUCTS["p1"]))
    script_category(upstream, ["p0", "p1", "p2", "p3", "p4"])
    result = await gateway.run(aggregate, {"id": "p1"}, fields="product,related")
    assert list(result) == ["product", "related"]
    assert [item.id for item in result.value("related")] == ["p0", "p2", "p3"]
    plain = await gateway.run(aggregate, {"id": "p1"})
    assert list(plain) == ["product"]


class Amount(msgspec.Struct):
    """A price as a view wants it: no product_id, the batch's key."""

    amount: int


async def test_a_value_without_the_batch_key_gets_nothing_added(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    aggregate = Aggregate(
        "amounts",
        params=[Param("ids", max_length=1000)],
        sources=[
            Items(
                "items",
                ids="ids",
                sources=[
                    Source(
                        "pricing",
                        service="svc",
                        path="/prices/{item}",
                        returns=Amount,
                        batch=Batch("/prices?ids={ids}", size=10, key="product_id"),
                    ),
                    Source(
                        "raw",
                        service="svc",
                        path="/prices/{item}",
                        returns=dict[str, Any],
                        batch=Batch("/prices?ids={ids}", size=10, key="product_id"),
                    ),
                ],
            )
        ],
    )
    result = await gateway.run(aggregate, {"ids": "p1,p2,nope"})
    items = items_of(result)
    assert [type(item.value("pricing")) for item in items] == [Amount, Amount, type(None)]
    assert msgspec.json.encode(items[1].value("pricing")) == b'{"amount":102}'
    assert items[0].value("raw") == {"product_id": "p1", "amount": 101}
    assert items[2].failures == {"pricing": "upstream_status", "raw": "upstream_status"}
