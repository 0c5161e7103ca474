"""The lean hand-made alternative: an aiohttp server calling the upstreams with aiohttp.

What a team that knows aiohttp writes for the product aggregate, plainly and correctly: one
pooled ClientSession, the four calls under ``asyncio.gather`` with a deadline, failures reported
per part, the product critical, the id percent-encoded, uvloop. And for the category grid
(``/api/aggregated/category?slug=&limit=&offset=``, web-bff's answer): the category, then the
page's ids in one batch request per item source, the four concurrently, within one deadline;
a tile without its product is left out, a tile whose other part failed says so.

    python bench/baselines/aiohttp_gateway.py --port 8201   (upstream URLs from the environment)
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any
from urllib.parse import quote

import aiohttp
import uvloop
from aiohttp import web

TIMEOUT_S = float(os.environ.get("BFF_TIMEOUT_MS", "1000")) / 1000
TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT_S)
PARTS = {
    "product": (os.environ.get("PRODUCT_SERVICE_URL", "http://127.0.0.1:9000"), "/products/"),
    "inventory": (os.environ.get("INVENTORY_SERVICE_URL", "http://127.0.0.1:9000"), "/inventory/"),
    "pricing": (os.environ.get("PRICING_SERVICE_URL", "http://127.0.0.1:9000"), "/prices/"),
    "reviews": (os.environ.get("REVIEWS_SERVICE_URL", "http://127.0.0.1:9000"), "/reviews/"),
}
CATEGORY_URL = os.environ.get("CATEGORY_SERVICE_URL", "http://127.0.0.1:9000")
#: A tile's parts: each read for the whole page at once from its batch endpoint, whose answer
#: is an array of objects keyed by the given field (the upstreams take up to 50 ids; a page is
#: at most 48, so one request per part and page).
TILE_PARTS = {
    "product": (PARTS["product"][0], "/products?ids=", "id"),
    "inventory": (PARTS["inventory"][0], "/inventory?ids=", "product_id"),
    "pricing": (PARTS["pricing"][0], "/prices?ids=", "product_id"),
    "rating": (PARTS["reviews"][0], "/reviews?ids=", "product_id"),
}
PAGE_SIZE, MAX_PAGE_SIZE, MAX_OFFSET = 24, 48, 10_000
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def fetch(
    session: aiohttp.ClientSession, url: str, within: aiohttp.ClientTimeout = TIMEOUT
) -> tuple[Any, dict[str, Any] | None]:
    try:
        async with session.get(url, timeout=within) as response:
            if response.status != 200:
                return None, {"reason": "upstream_status", "status": response.status}
            return await response.json(), None
    except TimeoutError:
        return None, {"reason": "timeout"}
    except aiohttp.ContentTypeError:
        return None, {"reason": "invalid_response"}
    except ValueError:
        return None, {"reason": "invalid_response"}
    except aiohttp.ClientError:
        return None, {"reason": "unavailable"}


async def product(request: web.Request) -> web.Response:
    product_id = request.query.get("id", "")
    if (
        not product_id
        or len(product_id) > 128
        or any(ord(c) < 32 or ord(c) == 127 for c in product_id)
    ):
        return web.json_response({"title": "Invalid id", "status": 400}, status=400)
    segment = quote(product_id, safe="")
    session = request.app[SESSION]
    results = await asyncio.gather(
        *(fetch(session, f"{base}{path}{segment}") for base, path in PARTS.values())
    )
    body: dict[str, Any] = {}
    errors = []
    for name, (value, error) in zip(PARTS, results, strict=True):
        body[name] = value
        if error is not None:
            errors.append({"source": name, **error})
    if body["product"] is None:
        status = (
            404
            if errors[0].get("status") == 404
            else 504
            if errors[0]["reason"] == "timeout"
            else 502
        )
        return web.json_response({"status": status, "errors": errors}, status=status)
    if errors:
        body["errors"] = errors
    return web.json_response(body)


def failed_status(error: dict[str, Any]) -> int:
    """The status of an answer whose critical part failed so."""
    if error.get("status") == 404:
        return 404
    return 504 if error["reason"] == "timeout" else 502


def page_bound(request: web.Request, name: str, default: int, low: int, high: int) -> int | None:
    """A whole-number query parameter from ``low`` to ``high``; None when it is not one."""
    text = request.query.get(name, str(default))
    return int(text) if text.isdigit() and low <= int(text) <= high else None


def tile(product: dict[str, Any], parts: dict[str, Any]) -> dict[str, Any]:
    """A product as the grid shows it; a part that failed is null, and named in ``failed``."""
    price, stock, rating = parts["pricing"], parts["inventory"], parts["rating"]
    body: dict[str, Any] = {
        "id": product["id"],
        "name": product["name"],
        "image": product["images"][0] if product["images"] else None,
        "price": None
        if price is None
        else {k: price[k] for k in ("currency", "amount", "discount_pct")},
        "stock": None if stock is None else {k: stock[k] for k in ("in_stock", "quantity")},
        "rating": None if rating is None else {k: rating[k] for k in ("average", "count")},
    }
    failed = [name for name in ("inventory", "pricing", "rating") if parts[name] is None]
    if failed:
        body["failed"] = failed
    return body


async def category(request: web.Request) -> web.Response:
    slug = request.query.get("slug", "")
    limit = page_bound(request, "limit", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    offset = page_bound(request, "offset", 0, 0, MAX_OFFSET)
    if not slug or len(slug) > 64 or limit is None or offset is None:
        return web.json_response({"title": "Invalid parameter", "status": 400}, status=400)
    session = request.app[SESSION]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    found, error = await fetch(session, f"{CATEGORY_URL}/categories/{quote(slug, safe='')}")
    if error is not None:
        status = failed_status(error)
        errors = [{"source": "category", **error}]
        return web.json_response({"status": status, "errors": errors}, status=status)
    all_ids: list[str] = found["product_ids"]
    ids = all_ids[offset : offset + limit]
    body: dict[str, Any] = {"slug": found["slug"], "name": found["name"], "total": len(all_ids)}
    if not ids:
        body["items"] = []
        return web.json_response(body)
    # The four batch requests at once, in what is left of the deadline.
    left = aiohttp.ClientTimeout(total=max(deadline - loop.time(), 0.001))
    joined = ",".join(quote(i, safe="") for i in ids)
    results = await asyncio.gather(
        *(fetch(session, f"{base}{path}{joined}", left) for base, path, _ in TILE_PARTS.values())
    )
    errors = []
    by_id: dict[str, dict[str, Any]] = {}  # part -> product id -> its object
    for (name, (_, _, key)), (value, error) in zip(TILE_PARTS.items(), results, strict=True):
        if error is None:
            by_id[name] = {element[key]: element for element in value}
        elif name == "product":  # no tile without its product: the grid failed
            status = failed_status(error)
            errors = [{"source": "items", **error}]
            return web.json_response({"status": status, "errors": errors}, status=status)
        else:
            errors.append({"source": f"items.{name}", **error, "items": ids[:20]})
            errors[-1]["item_count"] = len(ids)
    left_out: dict[str, list[str]] = {}  # part -> ids its (good) answer did not have
    items = []
    for product_id in ids:
        product = by_id["product"].get(product_id)
        if product is None:
            continue  # a product the catalogue does not know (any more): no tile
        parts = {name: by_id.get(name, {}).get(product_id) for name in TILE_PARTS}
        for name in by_id:
            if parts[name] is None:
                left_out.setdefault(name, []).append(product_id)
        items.append(tile(product, parts))
    body["items"] = items
    for name, missing in left_out.items():
        error = {"reason": "upstream_status", "status": 404}
        errors.append({"source": f"items.{name}", **error, "items": missing[:20]})
        errors[-1]["item_count"] = len(missing)
    if errors:
        body["errors"] = errors
    return web.json_response(body)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def client_session(app: web.Application) -> Any:
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app[SESSION].close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8201)
    args = parser.parse_args()
    app = web.Application()
    app.cleanup_ctx.append(client_session)
    app.router.add_get("/api/aggregated/product", product)
    app.router.add_get("/api/aggregated/category", category)
    app.router.add_get("/healthz", healthz)
    uvloop.install()
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
