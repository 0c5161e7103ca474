"""The list screens end to end: both BFFs' category and home screens and the web product page's
related products, real BFFs (served from the test process, over real HTTP) against the real demo
upstreams and their request log."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tests.identity_provider import ISSUER, MOBILE_AUDIENCE, WEB_AUDIENCE, run_identity_provider
from tests.processes import Served, ServedApp

from .conftest import Upstreams, serve_bff, stored_entries

CATEGORY = "/api/aggregated/category"
HOME = "/api/aggregated/home"
PRODUCT = "/api/aggregated/product"
TOKEN = "test-admin-token-0123456789-abcdefgh"
#: the services a tile reads, and the service each one's requests are logged under
TILE_SERVICES = ("product", "inventory", "pricing", "reviews")
BATCH_SIZE = 50


@contextmanager
def cached(upstreams: Upstreams, module: str = "web_bff", **env: str) -> Iterator[ServedApp]:
    """A BFF of its own with the cache on (a namespace of its own) and an admin token."""
    settings = {
        "BFF_CACHE": "on",
        "BFF_ADMIN_TOKEN": TOKEN,
        "BFF_CACHE_NAMESPACE": f"lists-{uuid.uuid4().hex[:8]}",
        **env,
    }
    with serve_bff(upstreams.url, module, **settings) as service:
        yield service


def log(upstreams: Upstreams) -> dict[str, Any]:
    found: dict[str, Any] = upstreams.client.get(f"{upstreams.url}/admin/requests").json()
    return found


def requested_ids(upstreams: Upstreams, service: str) -> list[list[str]]:
    """The ids of each batch request ``service`` received, in order."""
    batches = []
    for request in log(upstreams)[service]["requests"]:
        query = request["query"]
        if query.startswith("ids="):
            batches.append([unquote(one) for one in query.removeprefix("ids=").split(",")])
    return batches


def category_ids(upstreams: Upstreams, slug: str) -> list[str]:
    ids: list[str] = upstreams.get(f"/categories/{slug}")["product_ids"]
    upstreams.clear()
    return ids


def test_a_grid_with_cold_caches_costs_one_batch_request_per_item_source(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    ids = category_ids(upstreams, "audio")
    with cached(upstreams) as bff:
        response = http.get(f"{bff.url}{CATEGORY}", params={"slug": "audio"})
        assert response.status_code == 200, response.text
        page = response.json()
        counts = {s: n["count"] for s, n in log(upstreams).items()}
    assert page["slug"] == "audio" and page["name"] == "Audio"
    assert page["total"] == len(ids) >= 30
    assert [tile["id"] for tile in page["items"]] == ids[:24]
    for tile in page["items"]:
        assert set(tile) == {"id", "name", "image", "price", "stock", "rating"}
        assert tile["image"].startswith("https://")
        assert set(tile["price"]) == {"currency", "amount", "discount_pct"}
        assert set(tile["stock"]) == {"in_stock", "quantity"}
        assert set(tile["rating"]) == {"average", "count"}
    assert "errors" not in page
    # The issue's bound: 1 + 3 x ceil(24 / batch size) + 1; here exactly one request per source.
    total = sum(counts.values())
    assert total <= 1 + 3 * math.ceil(24 / BATCH_SIZE) + 1
    assert counts == {
        "product": 1, "inventory": 1, "pricing": 1, "reviews": 1, "category": 1,
        "recommendations": 0, "cart": 0, "orders": 0,
    }  # fmt: skip


def test_a_grid_reads_only_what_the_product_pages_did_not_cache(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    ids = category_ids(upstreams, "kitchen")
    seen = ids[:3]
    with cached(upstreams) as bff:
        for product_id in seen:
            assert http.get(f"{bff.url}{PRODUCT}", params={"id": product_id}).status_code == 200
        upstreams.clear()
        page = http.get(f"{bff.url}{CATEGORY}", params={"slug": "kitchen"}).json()
        assert [tile["id"] for tile in page["items"]] == ids[:24]
        # The product pages' entries serve the tiles: only the other 21 were read.
        for service in ("product", "inventory", "pricing"):
            (batch,) = requested_ids(upstreams, service)
            assert batch == ids[3:24], service
        # The rating is a summary of its own: every tile's was read once.
        assert requested_ids(upstreams, "reviews") == [ids[:24]]
        # And the other way round: a product page of a tile costs only its full reviews.
        upstreams.clear()
        assert http.get(f"{bff.url}{PRODUCT}", params={"id": ids[10]}).status_code == 200
        counts = upstreams.counts()
        assert counts == {"product": 0, "inventory": 0, "pricing": 0, "reviews": 1}
        # A repeat is the whole answer, cached: no upstream at all.
        upstreams.clear()
        again = http.get(f"{bff.url}{CATEGORY}", params={"slug": "kitchen"})
        assert again.json() == page
        assert sum(n["count"] for n in log(upstreams).values()) == 0


def test_an_item_whose_price_failed_keeps_the_rest_and_says_so(
    upstreams: Upstreams, http: httpx.Client, bff: Served
) -> None:
    ids = category_ids(upstreams, "outdoor")
    upstreams.inject("pricing", status=503)
    response = http.get(f"{bff.url}{CATEGORY}", params={"slug": "outdoor", "limit": "5"})
    assert response.status_code == 200, response.text
    page = response.json()
    assert [tile["id"] for tile in page["items"]] == ids[:5]
    for tile in page["items"]:
        assert tile["price"] is None
        assert tile["failed"] == ["pricing"]
        assert tile["name"] and tile["rating"] is not None
    (error,) = page["errors"]
    assert error == {
        "source": "items.pricing",
        "reason": "upstream_status",
        "status": 503,
        "items": ids[:5],
        "item_count": 5,
    }


def test_an_unknown_category_is_a_404_and_a_bad_page_a_400(http: httpx.Client, bff: Served) -> None:
    unknown = http.get(f"{bff.url}{CATEGORY}", params={"slug": "no-such-category"})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["errors"] == [
        {"source": "category", "reason": "upstream_status", "status": 404}
    ]
    for query, parameter in (
        ({"slug": "audio", "limit": "49"}, "limit"),
        ({"slug": "audio", "limit": "0"}, "limit"),
        ({"slug": "audio", "offset": "-1"}, "offset"),
        ({"slug": "audio", "limit": "many"}, "limit"),
        ({}, "slug"),
    ):
        bad = http.get(f"{bff.url}{CATEGORY}", params=query)
        assert bad.status_code == 400, (query, bad.text)
        assert bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["parameter"] == parameter


def test_paging_walks_the_whole_category(
    upstreams: Upstreams, http: httpx.Client, web_bff: Served
) -> None:
    ids = category_ids(upstreams, "home")
    seen: list[str] = []
    for offset in range(0, len(ids) + 10, 10):
        page = http.get(
            f"{web_bff.url}{CATEGORY}", params={"slug": "home", "limit": 10, "offset": offset}
        ).json()
        seen += [tile["id"] for tile in page["items"]]
    assert seen == ids


def test_the_phone_gets_a_smaller_page_of_smaller_tiles(
    upstreams: Upstreams, http: httpx.Client, web_bff: Served, mobile_bff: Served
) -> None:
    ids = category_ids(upstreams, "audio")
    web = http.get(f"{web_bff.url}{CATEGORY}", params={"slug": "audio", "limit": 12})
    phone = http.get(f"{mobile_bff.url}{CATEGORY}", params={"slug": "audio"})
    assert phone.status_code == 200, phone.text
    screen = phone.json()
    assert [tile["id"] for tile in screen["items"]] == ids[:12]  # its default page
    tile = screen["items"][0]
    assert set(tile) == {"id", "name", "image", "price", "in_stock", "rating"}
    assert isinstance(tile["in_stock"], bool) and isinstance(tile["rating"], float)
    # The same twelve products, smaller: no slug, no stock count, the rating without its count.
    assert len(phone.content) < 0.85 * len(web.content)
    assert (
        http.get(f"{mobile_bff.url}{CATEGORY}", params={"slug": "audio", "limit": 25}).status_code
        == 400
    )


def test_anonymous_callers_get_the_best_sellers_at_home(
    upstreams: Upstreams, http: httpx.Client, bff: Served
) -> None:
    best = upstreams.get("/recommendations/anonymous")["product_ids"]
    upstreams.clear()
    home = http.get(f"{bff.url}{HOME}", params={"limit": 6})
    assert home.status_code == 200, home.text
    assert home.json()["picks"] == "best_sellers"
    assert [tile["id"] for tile in home.json()["items"]] == best[:6]
    assert [r["path"] for r in upstreams.requests("recommendations")] == [
        "/recommendations/anonymous"
    ]


@pytest.mark.parametrize(
    ("module", "audience"), [("web_bff", WEB_AUDIENCE), ("mobile_bff", MOBILE_AUDIENCE)]
)
def test_a_signed_in_user_gets_their_own_recommendations_cached_for_them_alone(
    upstreams: Upstreams, http: httpx.Client, module: str, audience: str
) -> None:
    with run_identity_provider() as provider:
        provider.add_key("RS256", "rsa-1")
        identity = {
            "BFF_JWT_JWKS_URL": provider.url,
            "BFF_JWT_ISSUER": ISSUER,
            "BFF_JWT_AUDIENCE": audience,
        }
        tokens = {
            user: provider.mint("rsa-1", subject=user, audience=audience) for user in ("ann", "bob")
        }
        picks = {user: upstreams.get(f"/recommendations/{user}")["product_ids"] for user in tokens}
        assert picks["ann"] != picks["bob"]
        with cached(upstreams, module, **identity) as bff:
            upstreams.clear()
            answers = {}
            for _ in range(2):
                for user, token in tokens.items():
                    response = http.get(
                        f"{bff.url}{HOME}",
                        params={"limit": 4},
                        headers={"authorization": f"Bearer {token}"},
                    )
                    assert response.status_code == 200, response.text
                    assert response.headers["cache-control"] == "private, no-cache"
                    answers[user] = response.json()
            anonymous = http.get(f"{bff.url}{HOME}", params={"limit": 4}).json()
            recommendations = [r["path"] for r in upstreams.requests("recommendations")]
            prices = upstreams.requests("pricing")
    for user in tokens:
        assert answers[user]["picks"] == "personal"
        assert [tile["id"] for tile in answers[user]["items"]] == picks[user][:4]
    assert anonymous["picks"] == "best_sellers"
    # One read per user (the repeats were cached for that user), and the prices asked for
    # each user with their subject.
    assert sorted(recommendations) == sorted(
        ["/recommendations/anonymous", "/recommendations/ann", "/recommendations/bob"]
    )
    assert sorted(r["headers"].get("x-user-id", "-") for r in prices) == ["-", "ann", "bob"]


def test_the_product_page_shows_related_products_only_when_asked(
    upstreams: Upstreams, http: httpx.Client, web_bff: Served
) -> None:
    product = upstreams.get("/products/p-1003")
    siblings = [i for i in category_ids(upstreams, product["category"]) if i != "p-1003"]
    plain = http.get(f"{web_bff.url}{PRODUCT}", params={"id": "p-1003"}).json()
    assert set(plain) == {"product", "inventory", "pricing", "reviews"}
    assert upstreams.counts() == dict.fromkeys(TILE_SERVICES, 1)
    upstreams.clear()
    asked = http.get(
        f"{web_bff.url}{PRODUCT}", params={"id": "p-1003", "fields": "product,category,related"}
    )
    assert asked.status_code == 200, asked.text
    page = asked.json()
    assert set(page) == {"product", "category", "related"}
    assert page["category"] == {"slug": product["category"], "name": "Kitchen"}
    assert [tile["id"] for tile in page["related"]] == siblings[:8]
    # The chain: the product, then its category, then one batch per tile source.
    assert {s: n["count"] for s, n in log(upstreams).items() if n["count"]} == {
        "product": 2, "category": 1, "inventory": 1, "pricing": 1, "reviews": 1,
    }  # fmt: skip


def test_invalidating_a_product_drops_the_grids_that_show_it(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    ids = category_ids(upstreams, "sports")
    with cached(upstreams) as bff:
        http.get(f"{bff.url}{CATEGORY}", params={"slug": "sports"}).raise_for_status()
        upstreams.clear()
        dropped = http.post(
            f"{bff.url}/admin/cache/invalidate",
            params={"id": ids[5]},
            headers={"authorization": f"Bearer {TOKEN}"},
        )
        assert dropped.status_code == 200, dropped.text
        assert dropped.json()["invalidated"] >= 5  # the grid, and the product's four tile parts
        http.get(f"{bff.url}{CATEGORY}", params={"slug": "sports"}).raise_for_status()
        assert requested_ids(upstreams, "product") == [[ids[5]]]


def test_item_sources_are_read_concurrently(
    upstreams: Upstreams, http: httpx.Client, web_bff: Served
) -> None:
    for service in TILE_SERVICES:
        upstreams.inject(service, latency_ms=200)
    began = time.perf_counter()
    response = http.get(f"{web_bff.url}{CATEGORY}", params={"slug": "photo"})
    elapsed = time.perf_counter() - began
    assert response.status_code == 200 and "errors" not in response.json()
    # Four 200 ms batch reads after the category: concurrent, so well under their sum.
    assert elapsed < 0.6


def test_two_instances_share_every_tile_through_redis(
    upstreams: Upstreams, http: httpx.Client, shared_url: str
) -> None:
    namespace = f"lists-{uuid.uuid4().hex[:8]}"
    ids = category_ids(upstreams, "computing")
    env = {"REDIS_URL": shared_url, "BFF_CACHE_NAMESPACE": namespace}
    with cached(upstreams, **env) as first, cached(upstreams, "web_bff", **env) as second:
        page = http.get(f"{first.url}{CATEGORY}", params={"slug": "computing", "limit": 10})
        assert [tile["id"] for tile in page.json()["items"]] == ids[:10]
        first_counts = {s: n["count"] for s, n in log(upstreams).items()}
        assert sum(first_counts.values()) == 5
        # Written off the answer's path: the category, 10 x 4 tile parts, the whole answer.
        deadline = time.monotonic() + 5
        while stored_entries(shared_url, namespace) < 42:
            assert time.monotonic() < deadline, stored_entries(shared_url, namespace)
            time.sleep(0.05)
        # The second instance reads every tile from Redis: no upstream request at all, for
        # another page size too (another whole answer, made of the same tiles).
        upstreams.clear()
        other = http.get(f"{second.url}{CATEGORY}", params={"slug": "computing", "limit": 7})
        assert other.status_code == 200 and "errors" not in other.json()
        assert sum(n["count"] for n in log(upstreams).values()) == 0
        assert [tile["id"] for tile in other.json()["items"]] == ids[:7]
