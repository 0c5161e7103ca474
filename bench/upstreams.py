"""The upstream services for benchmarks: the demo catalogue, answered as fast as possible.

The demo upstreams (aiohttp, fault injection, request log) are built for demos and tests; a
benchmark needs upstreams that are never the bottleneck, so this is a raw asyncio protocol on
uvloop that answers keep-alive HTTP/1.1 ``GET``s from pre-built responses. The catalogue is the
demo's, so every contestant aggregates the same bytes: the product, inventory, pricing and
reviews services' single reads (``/products/{id}``) and batch reads (``/products?ids=a,b``, as
the demo answers them: the known ids' objects in the order asked, each exactly the single read's
body, the reviews' ``top`` included; more than 50 ids a 400), the category service's
``/categories/{slug}`` and the recommendations service's ``/recommendations/{user}``. A batch
read of catalogue ids or a user's recommendations is built on its first request and kept, in a
bounded dict, under its request target.

    python bench/upstreams.py --port 0 [--latency product=20,inventory=30,pricing=15,reviews=40]

prints the port it listens on, then serves until stdin closes (its parent went away) or for an
hour at most. Each answer is delayed by its service's latency (a timer, no sleeping task).

For scenarios that need products nobody asked for yet (or many distinct ones), an id
``<catalogue id>.<anything>`` (``p-1001.burst-7``) is answered as that catalogue product, by the
single and the batch reads alike, with the id asked in its key field (the product's ``id``, the
others' ``product_id``), so that a gateway can match a batch's elements to its ids. Such an
answer is built from the catalogue product's bytes on first request and kept (bounded).

``GET /stats`` answers the requests received so far per service, which a scenario compares
before and after each run (upstream requests per aggregate). A ``POST`` (an OTLP
exporter's spans, in the telemetry scenario) is read and answered 200. With ``--jwks JSON``,
``GET /.well-known/jwks.json`` answers that key set (the edge scenario's identity provider).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import cast
from urllib.parse import unquote, unquote_to_bytes

import msgspec
import uvloop
from demo_upstreams._catalogue import (
    CATALOGUE,
    CATEGORIES,
    Recommendations,
    recommendations_for,
)

PREFIXES = {
    b"products": "product",
    b"inventory": "inventory",
    b"prices": "pricing",
    b"reviews": "reviews",
    b"categories": "category",
    b"recommendations": "recommendations",
}
#: The most ids one batch read may name (the demo upstreams' MAX_BATCH_IDS); more is a 400.
MAX_BATCH_IDS = 50
#: Answers built on first request (batch reads, recommendations) kept at most; the oldest go.
MEMO_SIZE = 4096
#: Copies' (``p-1001.r7``) single-read answers and batch elements kept at most, per kind: the
#: benchmark's rotating sets (a few thousand ids) stay cached; beyond, the whole cache is dropped.
COPIES_SIZE = 65536
RECOMMENDATIONS = b"/recommendations/"


def _response(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def build_routes() -> dict[bytes, tuple[str, bytes]]:
    """Request target -> (service, whole response), for every catalogue entry and category."""
    encode = msgspec.json.encode
    routes: dict[bytes, tuple[str, bytes]] = {b"/healthz": ("", _response(b"200 OK", b"{}"))}
    for entry in CATALOGUE:
        pid = entry.product.id.encode()
        for prefix, value in (
            (b"products", entry.product),
            (b"inventory", entry.inventory),
            (b"prices", entry.price),
            (b"reviews", entry.reviews),
        ):
            routes[b"/" + prefix + b"/" + pid] = (
                PREFIXES[prefix],
                _response(b"200 OK", encode(value)),
            )
    for category in CATEGORIES:
        routes[b"/categories/" + category.slug.encode()] = (
            "category",
            _response(b"200 OK", encode(category)),
        )
    return routes


def build_batch_elements() -> dict[bytes, tuple[str, dict[bytes, bytes]]]:
    """Batch path -> (service, id -> that id's encoded element): the single read's body."""
    encode = msgspec.json.encode
    elements: dict[bytes, tuple[str, dict[bytes, bytes]]] = {
        b"/products": ("product", {}),
        b"/inventory": ("inventory", {}),
        b"/prices": ("pricing", {}),
        b"/reviews": ("reviews", {}),
    }
    for entry in CATALOGUE:
        pid = entry.product.id.encode()
        for path, value in (
            (b"/products", entry.product),
            (b"/inventory", entry.inventory),
            (b"/prices", entry.price),
            (b"/reviews", entry.reviews),
        ):
            elements[path][1][pid] = encode(value)
    return elements


#: The first member of each element: its key, the id it answers (msgspec keeps field order).
_KEY_PREFIXES = (b'{"id":', b'{"product_id":')


def copy_element(element: bytes, base: bytes, copy: bytes) -> bytes:
    """The catalogue product ``base``'s element (or body) as the copy ``copy`` (``p-1001.r7``,
    as asked, percent-decoded) answers it: the same bytes, but the key field says ``copy``
    (an answer with no such key first, a category's, is returned as it is)."""
    quoted = b'"' + base + b'"'
    for prefix in _KEY_PREFIXES:
        if element.startswith(prefix + quoted):
            name = msgspec.json.encode(copy.decode("utf-8", "replace"))
            return prefix + name + element[len(prefix) + len(quoted) :]
    return element  # no product's (a category's): answered as it is


NOT_FOUND = _response(b"404 Not Found", b'{"error":"not found"}')
STATS = b"/stats"


def _bad_request(message: str) -> bytes:
    return _response(b"400 Bad Request", msgspec.json.encode({"error": message}))


def batch_answer(service: str, elements: dict[bytes, bytes], query: bytes) -> tuple[str, bytes]:
    """A batch read's (service, whole response): the known ids' elements, in the order asked;
    a copy's (``p-1001.r7``) is its catalogue product's, its key field the id asked."""
    # As the demo reads it: the query value decoded, then split at its commas.
    raw = next((p[4:] for p in query.split(b"&") if p.startswith(b"ids=")), b"")
    ids = unquote_to_bytes(raw.replace(b"+", b" ")).split(b",")
    if not raw or b"" in ids:
        return service, _bad_request(f"expected ids=a,b,c: 1 to {MAX_BATCH_IDS} product ids")
    if len(ids) > MAX_BATCH_IDS:
        return service, _bad_request(f"too many ids: {len(ids)}; at most {MAX_BATCH_IDS}")
    found = [element for i in ids if (element := elements.get(i) or _copy(elements, i))]
    return service, _response(b"200 OK", b"[" + b",".join(found) + b"]")


def _copy(elements: dict[bytes, bytes], asked: bytes) -> bytes | None:
    """A copy's batch element (built once, kept in ``elements`` itself), or None: unknown."""
    base, dot, _ = asked.partition(b".")
    original = elements.get(base) if dot else None
    if original is None:
        return None
    if len(elements) >= COPIES_SIZE:
        # Bounded: back to the catalogue's own elements (rare; the benchmark asks far fewer).
        for key in [k for k in elements if b"." in k]:
            del elements[key]
    element = elements[asked] = copy_element(original, base, asked)
    return element


def recommendations_answer(user: bytes) -> tuple[str, bytes]:
    """``GET /recommendations/{user}``'s (service, whole response); any user has some."""
    name = unquote(user.decode("latin-1"))
    body = msgspec.json.encode(Recommendations(user=name, product_ids=recommendations_for(name)))
    return "recommendations", _response(b"200 OK", body)


def _content_length(head: bytes) -> int:
    for header in head.split(b"\r\n")[1:]:
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip() or 0)
    return 0


def _remember(target: bytes, found: tuple[str, bytes]) -> tuple[str, bytes]:
    """Keep an answer built on its first request; the oldest goes when the memo is full."""
    memo = Upstreams.memo
    if len(memo) >= MEMO_SIZE:
        del memo[next(iter(memo))]  # dicts keep insertion order
    memo[target] = found
    return found


CARTS = b"/carts/"
#: Every cart the benchmark reads holds one line of this product (a write scenario's cart).
CART_PRODUCT = b"p-1001"


def cart_answer(user: bytes, product: bytes = CART_PRODUCT) -> tuple[str, bytes]:
    """A cart of one line: what ``GET /carts/{user}`` and a line set by ``PUT`` answer."""
    name, pid = unquote(user.decode("latin-1")), unquote(product.decode("latin-1"))
    body = msgspec.json.encode({"user": name, "items": [{"product_id": pid, "quantity": 1}]})
    return "cart", _response(b"200 OK", body)


def route(target: bytes) -> tuple[str, bytes]:
    """(service, whole response) of a request target; a copy (``p-1001.r7``) is answered as
    its catalogue product, with its own id."""
    upstreams = Upstreams
    found = (
        upstreams.routes.get(target) or upstreams.memo.get(target) or upstreams.copies.get(target)
    )
    if found is not None:
        return found
    path, question, query = target.partition(b"?")
    batch = Upstreams.batches.get(path)
    if batch is not None:
        answer = batch_answer(*batch, query)
        # A batch of distinct copies is seldom asked twice: only the catalogue's are kept.
        return answer if b"." in query else _remember(target, answer)
    if target.startswith(CARTS) and not question:
        user = target[len(CARTS) :]
        if user and b"/" not in user:
            return _remember(target, cart_answer(user))
    if target.startswith(RECOMMENDATIONS) and not question:
        user = target[len(RECOMMENDATIONS) :]
        if user and b"/" not in user:
            return _remember(target, recommendations_answer(user))
    base, dot, _ = target.partition(b".")
    if dot and not question:
        found = Upstreams.routes.get(base)
        if found is None:
            return "", NOT_FOUND
        return _copy_read(target, base, *found)
    return "", NOT_FOUND


def _copy_read(target: bytes, base: bytes, service: str, original: bytes) -> tuple[str, bytes]:
    """A copy's single read (``/products/p-1001.r7``): the catalogue product's body with the
    id asked in its key field, built once and kept (bounded)."""
    copies = Upstreams.copies
    if len(copies) >= COPIES_SIZE:
        copies.clear()
    body = original.partition(b"\r\n\r\n")[2]
    pid = base.rpartition(b"/")[2]
    asked = unquote_to_bytes(target.rpartition(b"/")[2])
    found = copies[target] = (
        service,
        _response(b"200 OK", copy_element(body, pid, asked)),
    )
    return found


class Upstreams(asyncio.Protocol):
    routes: dict[bytes, tuple[str, bytes]] = {}
    #: batch path -> (service, id -> element)
    batches: dict[bytes, tuple[str, dict[bytes, bytes]]] = {}
    #: answers built on first request, by request target (at most MEMO_SIZE)
    memo: dict[bytes, tuple[str, bytes]] = {}
    #: copies' single reads (``/products/p-1001.r7``), by request target (bounded)
    copies: dict[bytes, tuple[str, bytes]] = {}
    latency: dict[str, float] = {}
    #: requests received per service
    received: dict[str, int] = dict.fromkeys([*PREFIXES.values(), "cart"], 0)

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._pending = b""
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._pending + data if self._pending else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            line = buffer[: buffer.find(b"\r\n")]
            if line.startswith(b"PUT " + CARTS):
                # A cart line set (the write scenario): the body read, the cart answered.
                length = _content_length(buffer[:end])
                if len(buffer) < end + 4 + length:
                    break
                buffer = buffer[end + 4 + length :]
                user, _, product = line.split(b" ")[1][len(CARTS) :].partition(b"/items/")
                self.received["cart"] += 1
                self._write(cart_answer(user, product)[1])
                continue
            if line.startswith(b"POST "):
                # An OTLP exporter's spans (the telemetry scenario's tracing variants):
                # read the body, answer 200, keep nothing.
                length = _content_length(buffer[:end])
                if len(buffer) < end + 4 + length:
                    break
                buffer = buffer[end + 4 + length :]
                self._write(_response(b"200 OK", b""))
                continue
            buffer = buffer[end + 4 :]
            parts = line.split(b" ")
            target = parts[1] if len(parts) == 3 else b""
            if target == STATS:
                stats = msgspec.json.encode(self.received)
                self._write(_response(b"200 OK", stats))
                continue
            service, response = route(target)
            if service:
                self.received[service] += 1
            delay = self.latency.get(service, 0.0)
            if delay:
                # Answers on one keep-alive connection are not pipelined by the gateways, so a
                # timer per request keeps them in order.
                self._loop.call_later(delay, self._write, response)
            else:
                self._write(response)
        self._pending = buffer

    def _write(self, response: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


class _UntilClosed(asyncio.Protocol):
    def __init__(self, closed: asyncio.Event) -> None:
        self._closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed.set()


JWKS_PATH = b"/.well-known/jwks.json"


async def serve(host: str, port: int, latency_ms: dict[str, float], jwks: str = "") -> None:
    Upstreams.routes = build_routes()
    Upstreams.batches = build_batch_elements()
    if jwks:
        Upstreams.routes[JWKS_PATH] = ("", _response(b"200 OK", jwks.encode()))
    Upstreams.latency = {service: ms / 1000 for service, ms in latency_ms.items()}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstreams, host, port, backlog=2048)
    print(server.sockets[0].getsockname()[1], flush=True)
    parent_gone = asyncio.Event()
    await loop.connect_read_pipe(lambda: _UntilClosed(parent_gone), sys.stdin)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(parent_gone.wait(), timeout=3600)
    server.close()


def parse_latency(text: str) -> dict[str, float]:
    latency: dict[str, float] = {}
    for item in filter(None, text.split(",")):
        service, _, ms = item.partition("=")
        if service not in PREFIXES.values():
            raise argparse.ArgumentTypeError(f"unknown service {service!r}")
        latency[service] = float(ms)
    return latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=parse_latency, default={}, help="service=ms,...")
    parser.add_argument("--jwks", default="", help="a JWKS document to serve, as JSON")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.latency, args.jwks))


if __name__ == "__main__":
    main()
