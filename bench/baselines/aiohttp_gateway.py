"""The lean hand-made alternative: an aiohttp server calling the upstreams with aiohttp.

What a team that knows aiohttp writes for the product aggregate, plainly and correctly: one
pooled ClientSession, the four calls under ``asyncio.gather`` with a deadline, failures reported
per part, the product critical, the id percent-encoded, uvloop.

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

TIMEOUT = aiohttp.ClientTimeout(total=float(os.environ.get("BFF_TIMEOUT_MS", "1000")) / 1000)
PARTS = {
    "product": (os.environ.get("PRODUCT_SERVICE_URL", "http://127.0.0.1:9000"), "/products/"),
    "inventory": (os.environ.get("INVENTORY_SERVICE_URL", "http://127.0.0.1:9000"), "/inventory/"),
    "pricing": (os.environ.get("PRICING_SERVICE_URL", "http://127.0.0.1:9000"), "/prices/"),
    "reviews": (os.environ.get("REVIEWS_SERVICE_URL", "http://127.0.0.1:9000"), "/reviews/"),
}
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[Any, dict[str, Any] | None]:
    try:
        async with session.get(url, timeout=TIMEOUT) as response:
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
    app.router.add_get("/healthz", healthz)
    uvloop.install()
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
