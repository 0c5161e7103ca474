"""What a team writes by hand: FastAPI, one shared httpx.AsyncClient, ``asyncio.gather``.

The product aggregate done plainly and correctly: the four calls concurrently under the
deadline, failures reported per part, the product critical, the id percent-encoded. Served by
uvicorn, as FastAPI's documentation shows.

    python bench/baselines/fastapi_httpx.py --port 8202   (upstream URLs from the environment)
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

TIMEOUT = float(os.environ.get("BFF_TIMEOUT_MS", "1000")) / 1000
PARTS = {
    "product": (os.environ.get("PRODUCT_SERVICE_URL", "http://127.0.0.1:9000"), "/products/"),
    "inventory": (os.environ.get("INVENTORY_SERVICE_URL", "http://127.0.0.1:9000"), "/inventory/"),
    "pricing": (os.environ.get("PRICING_SERVICE_URL", "http://127.0.0.1:9000"), "/prices/"),
    "reviews": (os.environ.get("REVIEWS_SERVICE_URL", "http://127.0.0.1:9000"), "/reviews/"),
}
client: httpx.AsyncClient


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global client
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:
        yield


app = FastAPI(lifespan=lifespan)


async def fetch(url: str) -> tuple[Any, dict[str, Any] | None]:
    try:
        response = await client.get(url)
    except httpx.TimeoutException:
        return None, {"reason": "timeout"}
    except httpx.HTTPError:
        return None, {"reason": "unavailable"}
    if response.status_code != 200:
        return None, {"reason": "upstream_status", "status": response.status_code}
    try:
        return response.json(), None
    except ValueError:
        return None, {"reason": "invalid_response"}


@app.get("/api/aggregated/product")
async def product(id: str = Query(min_length=1, max_length=128)) -> Any:
    if any(ord(c) < 32 or ord(c) == 127 for c in id):
        return JSONResponse({"title": "Invalid id", "status": 400}, status_code=400)
    segment = quote(id, safe="")
    results = await asyncio.gather(
        *(fetch(f"{base}{path}{segment}") for base, path in PARTS.values())
    )
    body: dict[str, Any] = {}
    errors = []
    for name, (value, error) in zip(PARTS, results, strict=True):
        body[name] = value
        if error is not None:
            errors.append({"source": name, **error})
    if body["product"] is None:
        first = errors[0]
        status = 404 if first.get("status") == 404 else 504 if first["reason"] == "timeout" else 502
        return JSONResponse({"status": status, "errors": errors}, status_code=status)
    if errors:
        body["errors"] = errors
    return body


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8202)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
