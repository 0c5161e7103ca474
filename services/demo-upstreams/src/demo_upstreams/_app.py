"""The aiohttp application serving the simulated services and the admin API."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection, Mapping
from functools import lru_cache
from http import HTTPStatus
from typing import Final, NamedTuple, TypeVar
from urllib.parse import parse_qsl

import msgspec
from aiohttp import hdrs, web

from ._catalogue import (
    CATALOGUE,
    CATEGORIES,
    CategorySummary,
    Recommendations,
    recommendations_for,
)
from ._faults import SERVICES, Fault, FaultRegistry
from ._identity import (
    DEMO_USERS,
    JWKS_PATH,
    TOKEN_PATH,
    DemoIdentity,
    TokenRequest,
    UnknownAudience,
    UnknownUser,
)
from ._requestlog import RequestLog
from ._writes import LineChange, OrderDraft, ReviewDraft, WriteStore

__all__ = [
    "BATCH_COST_PER_ID",
    "DEFAULT_CACHE_CONTROL",
    "DEFAULT_LATENCY_MS",
    "MAX_BATCH_IDS",
    "create_app",
]

DEFAULT_LATENCY_MS: Final[Mapping[str, float]] = {
    "product": 20.0,
    "inventory": 30.0,
    "pricing": 15.0,
    "reviews": 40.0,
    "category": 10.0,
    "recommendations": 25.0,
    "cart": 15.0,
    "orders": 50.0,
}
"""Each service's typical answer time at ``latency_scale=1``."""

MAX_BATCH_IDS: Final = 50
"""The most ids one batch read (``GET /products?ids=...`` etc.) may name; more is a 400."""

BATCH_COST_PER_ID: Final = 0.01
"""What each id adds to a batch read's time, as a share of the service's latency.

A batch costs one round trip plus a little per id (0.2 ms per id for the product service at its
default 20 ms), so fifty ids take 1.5 single reads: cheaper than fifty reads, never free. As a
share, it follows ``latency_scale`` and the per-service latencies, and is zero when they are.
"""

DEFAULT_CACHE_CONTROL: Final[Mapping[str, str]] = {
    "product": "max-age=60, stale-while-revalidate=300, stale-if-error=3600",
    "inventory": "max-age=5, stale-while-revalidate=30, stale-if-error=300",
    "pricing": "max-age=30, stale-while-revalidate=60, stale-if-error=600",
    "reviews": "max-age=120, stale-while-revalidate=600, stale-if-error=3600",
    "category": "max-age=300, stale-while-revalidate=600, stale-if-error=3600",
    "recommendations": "max-age=60, stale-while-revalidate=120, stale-if-error=600",
    # A cart and an order change with every write: nobody may keep a copy.
    "cart": "no-store",
    "orders": "no-store",
}
"""Each service's ``Cache-Control`` on its 200 answers (RFC 9111, RFC 5861 ``stale-*``).

Error answers (4xx, 5xx) carry ``no-store``; a fault's ``cache_control`` replaces the value.
"""

#: The header in which callers say how many milliseconds they will wait (bff-core sends it).
DEADLINE_HEADER: Final = "x-request-timeout-ms"

_JITTER: Final = 0.1
# How often a hung handler checks whether its client left or the server is stopping: aiohttp
# does not cancel handlers when the client disconnects, so there is nothing to await instead.
_HANG_POLL_S: Final = 0.05

# First path segment -> service, for requests no route matched (kept in the request log so a
# test can see e.g. an id that was not percent-encoded and split into two segments).
_PREFIXES: Final[Mapping[str, str]] = {
    "products": "product",
    "inventory": "inventory",
    "prices": "pricing",
    "reviews": "reviews",
    "categories": "category",
    "recommendations": "recommendations",
    "carts": "cart",
    "orders": "orders",
}

_JSON: Final = "application/json"
_PROBLEM_JSON: Final = "application/problem+json"
_encode = msgspec.json.Encoder().encode


class _Refusal(NamedTuple):
    """An error answer a service gives instead of its body (unknown id, bad batch)."""

    status: int
    message: str


_MISSING_IDS: Final = _Refusal(
    400,
    f"missing query parameter 'ids' (1 to {MAX_BATCH_IDS} comma-separated product ids)",
)
_EMPTY_IDS: Final = _Refusal(
    400,
    f"query parameter 'ids' is empty; expected 1 to {MAX_BATCH_IDS} comma-separated product ids",
)


def _batch_ids(raw: str | None) -> tuple[list[str], _Refusal | None]:
    """The ids a batch read names, and why it is refused, if it is.

    The ids are returned even when the request is refused, so that a fault scoped to one of
    them applies to it, as a fault applies to a single read of an unknown id.
    """
    if raw is None:
        return [], _MISSING_IDS
    if not raw:
        return [], _EMPTY_IDS
    ids = raw.split(",")
    if len(ids) > MAX_BATCH_IDS:
        return ids, _Refusal(400, f"too many ids: {len(ids)}; at most {MAX_BATCH_IDS} per request")
    if "" in ids:
        return ids, _Refusal(
            400, f"query parameter 'ids' has an empty id at position {ids.index('') + 1}"
        )
    return ids, None


def _json_headers(cache_control: str) -> Mapping[str, str]:
    return {hdrs.CONTENT_TYPE: _JSON, hdrs.CACHE_CONTROL: cache_control}


# Built once; aiohttp copies the headers it is given, so sharing these mappings is safe.
_NO_STORE: Final = _json_headers("no-store")


@lru_cache(maxsize=16)
def _override_headers(cache_control: str) -> Mapping[str, str]:
    """The headers of a 200 answer whose fault sets ``cache_control``."""
    return _json_headers(cache_control)


def _json(body: bytes, status: int = 200) -> web.Response:
    """A JSON answer without caching headers (health check, admin API)."""
    return web.Response(body=body, status=status, content_type=_JSON)


def _error(status: int, message: str) -> web.Response:
    """A service's error answer: never to be stored by a cache."""
    return web.Response(body=_encode({"error": message}), status=status, headers=_NO_STORE)


_PROBLEM_HEADERS: Final = {hdrs.CONTENT_TYPE: _PROBLEM_JSON, hdrs.CACHE_CONTROL: "no-store"}


def _problem(status: int, slug: str, title: str, detail: str) -> web.Response:
    body = {
        "type": f"urn:demo-upstreams:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    return web.Response(body=_encode(body), status=status, headers=_PROBLEM_HEADERS)


_Body = TypeVar("_Body")


def _decode_body(raw: bytes, kind: type[_Body], example: str) -> _Body | web.Response:
    """A write's JSON body as ``kind``, or the problem answer saying what is wrong with it.

    The problem names the field at fault (msgspec's ``$.stars``) but never echoes the body.
    """
    if not raw.strip():
        return _problem(
            400, "invalid-body", "Invalid body", f"the body is empty; expected e.g. {example}"
        )
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        return _problem(422, "invalid-body", "Invalid body", f"{exc}; expected e.g. {example}")
    except msgspec.DecodeError:
        detail = f"the body is not JSON; expected e.g. {example}"
        return _problem(400, "malformed-json", "Malformed JSON", detail)


def _written(body: bytes, status: int = 200) -> web.Response:
    """A write's answer: what is stored now, never to be cached."""
    return web.Response(body=body, status=status, headers=_NO_STORE)


@lru_cache(maxsize=1024)
def _recommendations_body(user: str) -> bytes:
    # Any user may ask, so this is computed on demand; a demo's few users are served from here.
    return _encode(Recommendations(user=user, product_ids=recommendations_for(user)))


@lru_cache(maxsize=4)
def _huge_body(size: int) -> bytes:
    # Exactly `size` bytes of valid JSON; below the smallest padded object, pad with whitespace.
    head, tail = b'{"padding":"', b'"}'
    if size < len(head) + len(tail):
        return b"{}" + b" " * (size - 2)
    return head + b"x" * (size - len(head) - len(tail)) + tail


class _Upstreams:
    """State and handlers of one application instance."""

    def __init__(
        self,
        *,
        latency_s: Mapping[str, float],
        faults: FaultRegistry,
        log: RequestLog,
        identity: DemoIdentity | None,
    ) -> None:
        self.faults = faults
        self.log = log
        self._identity = identity
        self.writes = WriteStore()
        self._catalogue_reviews = {e.product.id: e.reviews for e in CATALOGUE}
        self.stopping = asyncio.Event()
        self._latency_s = dict(latency_s)
        self._ok_headers = {s: _json_headers(DEFAULT_CACHE_CONTROL[s]) for s in SERVICES}
        # Encoded once: the hot path only looks bytes up.
        self._products = {e.product.id: _encode(e.product) for e in CATALOGUE}
        self._inventory = {e.product.id: _encode(e.inventory) for e in CATALOGUE}
        self._prices = {e.product.id: _encode(e.price) for e in CATALOGUE}
        self._reviews = {e.product.id: _encode(e.reviews) for e in CATALOGUE}
        self._categories = {c.slug: _encode(c) for c in CATEGORIES}
        self._category_list = _encode(
            [
                CategorySummary(slug=c.slug, name=c.name, count=len(c.product_ids))
                for c in CATEGORIES
            ]
        )

    # --- the simulated services -------------------------------------------------------------

    async def product(self, request: web.Request) -> web.StreamResponse:
        return await self._read(request, "product", self._products, "product")

    async def inventory(self, request: web.Request) -> web.StreamResponse:
        return await self._read(request, "inventory", self._inventory, "inventory for product")

    async def price(self, request: web.Request) -> web.StreamResponse:
        return await self._read(request, "pricing", self._prices, "price for product")

    async def reviews(self, request: web.Request) -> web.StreamResponse:
        return await self._read(request, "reviews", self._reviews, "reviews for product")

    async def category(self, request: web.Request) -> web.StreamResponse:
        return await self._read(request, "category", self._categories, "category", key="slug")

    async def product_list(self, request: web.Request) -> web.StreamResponse:
        return await self._batch(request, "product", self._products)

    async def inventory_list(self, request: web.Request) -> web.StreamResponse:
        return await self._batch(request, "inventory", self._inventory)

    async def price_list(self, request: web.Request) -> web.StreamResponse:
        return await self._batch(request, "pricing", self._prices)

    async def review_list(self, request: web.Request) -> web.StreamResponse:
        # Each element is the single read's body, ``top`` included (CONTRACT: a gateway may
        # serve a product page's reviews part from a batch).
        return await self._batch(request, "reviews", self._reviews)

    async def category_list(self, request: web.Request) -> web.StreamResponse:
        return await self._respond(request, "category", self._category_list, (), array=True)

    async def recommendations(self, request: web.Request) -> web.StreamResponse:
        # Every user has recommendations (anonymous ones too), so there is no 404 here.
        user = request.match_info["user"]
        body = _recommendations_body(user)
        return await self._respond(request, "recommendations", body, (user,), array=False)

    # --- the write path: cart, orders, review writes -------------------------------------------

    async def cart(self, request: web.Request) -> web.StreamResponse:
        # Every user has a cart (an empty one until a line is set), so there is no 404 here.
        user = request.match_info["user"]
        body = _encode(self.writes.cart(user))
        return await self._respond(request, "cart", body, (user,), array=False)

    async def put_cart_line(self, request: web.Request) -> web.StreamResponse:
        user, product_id = request.match_info["user"], request.match_info["product_id"]
        change = _decode_body(await request.read(), LineChange, '{"quantity": 2}')

        def perform() -> web.Response:
            if product_id not in self._products:
                return _error(404, f"no product with id {product_id!r}")
            if isinstance(change, web.Response):
                return change
            return _written(_encode(self.writes.set_line(user, product_id, change.quantity)))

        return await self._write(request, "cart", (user, product_id), perform)

    async def place_order(self, request: web.Request) -> web.StreamResponse:
        draft = _decode_body(await request.read(), OrderDraft, '{"user": "alice"}')
        # The user is what a fault's ids scope an order to; a bad body names nobody.
        named = () if isinstance(draft, web.Response) else (draft.user,)

        def perform() -> web.Response:
            if isinstance(draft, web.Response):
                return draft
            # Deliberately blind to every header (an Idempotency-Key too): each call that gets
            # here places a new order, so a test can count what a BFF really sent.
            order = self.writes.place_order(draft.user)
            if order is None:
                return _problem(
                    409,
                    "empty-cart",
                    "Empty cart",
                    f"the cart of user {draft.user!r} is empty: there is nothing to order",
                )
            return _written(_encode(order), 201)

        return await self._write(request, "orders", named, perform)

    async def order(self, request: web.Request) -> web.StreamResponse:
        order_id = request.match_info["id"]
        found = self.writes.order(order_id)
        if found is None:
            answer: bytes | _Refusal = _Refusal(404, f"no order with id {order_id!r}")
            named: tuple[str, ...] = (order_id,)
        else:
            answer, named = _encode(found), (order_id, found.user)
        return await self._respond(request, "orders", answer, named, array=False)

    async def write_review(self, request: web.Request) -> web.StreamResponse:
        product_id = request.match_info["id"]
        draft = _decode_body(
            await request.read(),
            ReviewDraft,
            '{"author": "alice", "stars": 5, "text": "Does what it says."}',
        )

        def perform() -> web.Response:
            base = self._catalogue_reviews.get(product_id)
            if base is None:
                return _error(404, f"no product with id {product_id!r}")
            if isinstance(draft, web.Response):
                return draft
            stored, updated = self.writes.add_review(base, draft)
            # The reads (single and batch) serve these bytes: from now on they count the review.
            self._reviews[product_id] = _encode(updated)
            return _written(_encode(stored), 201)

        return await self._write(request, "reviews", (product_id,), perform)

    async def _write(
        self,
        request: web.Request,
        service: str,
        named: Collection[str],
        perform: Callable[[], web.Response],
    ) -> web.StreamResponse:
        """Serve one write of ``service``: ``perform`` carries it out and builds the answer.

        Like :meth:`_respond`, it is logged, draws the service's fault and takes the service's
        time first; a caller whose deadline passes meanwhile gets a 504 and nothing is written.
        A fault strikes before ``perform`` (nothing written), or after it when the fault says
        ``after_write`` (written, but the caller gets the fault's answer, or none).
        """
        self.log.record(service, request)
        fault = self.faults.draw(service, named)
        late = await self._work(request, service, fault)
        if late is not None:
            return late
        if fault is not None and not fault.after_write:
            faulty = await self._misbehave(request, service, fault, None, _NO_STORE, array=False)
            if faulty is not None:
                return faulty
        answer = perform()
        if fault is not None and fault.after_write:
            body = answer.body if isinstance(answer.body, bytes) else None
            faulty = await self._misbehave(
                request, service, fault, body, _NO_STORE, array=False, ok_status=answer.status
            )
            if faulty is not None:
                return faulty
        return answer

    # --- the demo identity provider ----------------------------------------------------------

    @property
    def identity(self) -> DemoIdentity:
        # Made (its key generated) on first use: most runs never sign anyone in, and the
        # crypto costs start-up time. Its kid still changes with every process.
        if self._identity is None:
            self._identity = DemoIdentity()
        return self._identity

    async def jwks(self, request: web.Request) -> web.StreamResponse:
        headers = {
            hdrs.CONTENT_TYPE: "application/jwk-set+json",
            hdrs.CACHE_CONTROL: "max-age=300",
            **_OPEN_CORS,
        }
        return web.Response(body=self.identity.jwks, headers=headers)

    async def token(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        # By its content, not its Content-Type: `curl -d '{"user": ...}'` labels JSON a form.
        if raw.strip() and not raw.lstrip().startswith(b"{"):
            fields = dict(parse_qsl(raw.decode("utf-8", "replace")))
            asked: TokenRequest | web.Response
            try:
                asked = msgspec.convert(fields, TokenRequest)
            except msgspec.ValidationError as exc:
                asked = _problem(400, "invalid-body", "Invalid token request", str(exc))
        else:
            asked = _decode_body(raw, TokenRequest, '{"user": "alice", "audience": "web-bff"}')
        if isinstance(asked, web.Response):
            answer = asked
        else:
            try:
                token = self.identity.mint(asked)
            except UnknownUser as exc:
                answer = _problem(400, "unknown-user", "Unknown demo user", str(exc))
            except UnknownAudience as exc:
                answer = _problem(400, "unknown-audience", "Unknown audience", str(exc))
            else:
                body = {
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": self.identity.lifetime_s,
                    "user": asked.user,
                    "name": DEMO_USERS[asked.user],
                }
                answer = _written(_encode(body))
        answer.headers.update(_OPEN_CORS)
        return answer

    async def demo_users(self, request: web.Request) -> web.StreamResponse:
        users = [{"user": user, "name": name} for user, name in DEMO_USERS.items()]
        return web.Response(body=_encode(users), headers={**_NO_STORE, **_OPEN_CORS})

    async def identity_preflight(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204, headers=_OPEN_CORS_PREFLIGHT)

    async def _read(
        self,
        request: web.Request,
        service: str,
        bodies: Mapping[str, bytes],
        noun: str,
        *,
        key: str = "id",
    ) -> web.StreamResponse:
        """A single read: the body stored under the path's ``{key}``, or a 404."""
        # match_info is already percent-decoded, and an encoded "/" stays inside the segment.
        ident = request.match_info[key]
        body = bodies.get(ident)
        answer = body if body is not None else _Refusal(404, f"no {noun} with {key} {ident!r}")
        return await self._respond(request, service, answer, (ident,), array=False)

    async def _batch(
        self, request: web.Request, service: str, bodies: Mapping[str, bytes]
    ) -> web.StreamResponse:
        """A batch read, ``?ids=a,b,c``: the bodies of those known, in the order asked."""
        ids, refusal = _batch_ids(request.query.get("ids"))
        if refusal is not None:
            return await self._respond(request, service, refusal, ids, array=True)

        def answer_without(left_out: Collection[str]) -> bytes:
            found = (b for i in ids if i not in left_out and (b := bodies.get(i)) is not None)
            return b"[" + b",".join(found) + b"]"

        return await self._respond(
            request,
            service,
            answer_without(()),
            ids,
            array=True,
            per_id=len(ids),
            without=answer_without,
        )

    async def _respond(
        self,
        request: web.Request,
        service: str,
        answer: bytes | _Refusal,
        named: Collection[str],
        *,
        array: bool,
        per_id: int = 0,
        without: Callable[[Collection[str]], bytes] | None = None,
    ) -> web.StreamResponse:
        """Serve one request of ``service`` whose normal answer is ``answer``.

        Every service request goes through here: it is logged, draws the service's fault (with
        the ids it ``named``), takes the service's time (plus ``per_id`` ids' worth of batch
        work), and then misbehaves as the fault says or answers normally. A batch read
        (``without`` builds its answer leaving ids out) that draws a 404 scoped to ids answers
        the others and leaves those out, as for ids it does not know.
        """
        self.log.record(service, request)
        fault = self.faults.draw(service, named)
        late = await self._work(request, service, fault, per_id)
        if late is not None:
            return late
        headers = self._ok_headers[service]
        if fault is not None and fault.status == 404 and fault.ids and without is not None:
            return web.Response(body=without(fault.ids), headers=headers)
        if fault is not None:
            if fault.cache_control is not None:
                headers = _override_headers(fault.cache_control)
            body = None if isinstance(answer, _Refusal) else answer
            faulty = await self._misbehave(request, service, fault, body, headers, array=array)
            if faulty is not None:
                return faulty
        if isinstance(answer, _Refusal):
            return _error(answer.status, answer.message)
        return web.Response(body=answer, headers=headers)

    async def _work(
        self, request: web.Request, service: str, fault: Fault | None, per_id: int = 0
    ) -> web.StreamResponse | None:
        """Take the service's time to answer; a response when there is no point answering.

        A batch read of ``per_id`` ids takes longer by :data:`BATCH_COST_PER_ID` of the
        latency per id. Like a deadline-aware service, it stops working when the caller's
        deadline (``x-request-timeout-ms``) passes first, and answers 504 then. A client that
        left meanwhile gets nothing. Both are counted in the request log.
        """
        delay = self._latency_s[service]
        if delay:
            delay *= 1 + BATCH_COST_PER_ID * per_id
            delay *= random.uniform(1 - _JITTER, 1 + _JITTER)
        if fault is not None:
            delay += fault.latency_ms / 1000
        if delay <= 0:
            return None
        budget = _deadline(request)
        gives_up = budget is not None and budget < delay
        if not await _work_for(request, budget if budget is not None and gives_up else delay):
            self.log.abandoned(service)
            return _drop(request)
        if gives_up:
            assert budget is not None
            self.log.gave_up(service)
            return _error(
                504, f"gave up after {budget * 1000:.0f} ms: the caller's deadline passed"
            )
        return None

    async def _misbehave(
        self,
        request: web.Request,
        service: str,
        fault: Fault,
        body: bytes | None,
        ok_headers: Mapping[str, str],
        *,
        array: bool,
        ok_status: int = 200,
    ) -> web.StreamResponse | None:
        """The faulty answer, or None when the fault only delays the normal one.

        ``ok_headers`` and ``ok_status`` are those of the normal answer (200, or a write's
        201); an injected error status gets ``no-store`` instead, whatever its body.
        """
        if fault.hang:
            return await self._hang(request, service)
        if fault.drop:
            return _drop(request)
        if fault.status is None:
            status, headers = ok_status, ok_headers
        else:
            status, headers = fault.status, _NO_STORE
        if fault.malformed:
            whole = body or b'{"error": "this body was cut short on purpose"}'
            # A strict prefix of one JSON object or array is never valid JSON.
            return web.Response(body=whole[: len(whole) // 2], status=status, headers=headers)
        if fault.wrong_shape:
            shape = b'{"unexpected": "shape"}' if array else b'["unexpected", "shape"]'
            return web.Response(body=shape, status=status, headers=headers)
        if fault.huge_bytes is not None:
            return web.Response(body=_huge_body(fault.huge_bytes), status=status, headers=headers)
        if fault.status is not None:
            return _error(status, f"injected fault: {status} {_phrase(status)}".rstrip())
        return None

    async def _hang(self, request: web.Request, service: str) -> web.StreamResponse:
        # A hung service ignores deadlines: it is stuck, not slow.
        while not self.stopping.is_set():
            if _client_gone(request):
                self.log.abandoned(service)
                break
            await asyncio.sleep(_HANG_POLL_S)
        # Whether the client left or the server is stopping, this request gets no answer.
        return _drop(request)

    # --- everything else --------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return _json(b'{"status":"ok"}')

    async def fallback(self, request: web.Request) -> web.StreamResponse:
        parts = request.raw_path.partition("?")[0].split("/", 2)
        service = _PREFIXES.get(parts[1]) if len(parts) > 1 else None
        if service is not None:
            self.log.record(service, request)
        return _error(404, f"no such endpoint: {request.method} {request.raw_path}")

    async def get_faults(self, request: web.Request) -> web.StreamResponse:
        return _json(_encode(self.faults.snapshot()))

    async def put_fault(self, request: web.Request) -> web.StreamResponse:
        service = request.match_info["service"]
        if service not in SERVICES:
            return _unknown_service(service)
        raw = await request.read()
        if not raw.strip():
            return _problem(
                400,
                "invalid-fault",
                "Invalid fault",
                'the body is empty; expected a JSON object such as {"status": 503}',
            )
        try:
            fault = msgspec.json.decode(raw, type=Fault)
        except msgspec.ValidationError as exc:
            return _problem(400, "invalid-fault", "Invalid fault", str(exc))
        except msgspec.DecodeError as exc:
            return _problem(400, "malformed-json", "Malformed JSON", f"body is not JSON: {exc}")
        return _json(_encode(self.faults.set(service, fault)))

    async def delete_fault(self, request: web.Request) -> web.StreamResponse:
        service = request.match_info["service"]
        if service not in SERVICES:
            return _unknown_service(service)
        self.faults.clear(service)
        return web.Response(status=204)

    async def delete_faults(self, request: web.Request) -> web.StreamResponse:
        self.faults.clear()
        return web.Response(status=204)

    async def get_orders(self, request: web.Request) -> web.StreamResponse:
        orders = self.writes.orders(request.query.get("user"))
        return _json(_encode({"count": len(orders), "orders": orders}))

    async def get_requests(self, request: web.Request) -> web.StreamResponse:
        return _json(_encode(self.log.snapshot()))

    async def delete_requests(self, request: web.Request) -> web.StreamResponse:
        self.log.reset()
        return web.Response(status=204)


# The identity endpoints are called from a browser page on another origin (the SPA's sign-in);
# they mint tokens for anyone who asks anyway, so any origin may call them.
_OPEN_CORS: Final = {"Access-Control-Allow-Origin": "*"}
_OPEN_CORS_PREFLIGHT: Final = {
    **_OPEN_CORS,
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}


def _drop(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    if transport is not None:
        # abort(), not close(): drop the socket at once, with no graceful flush.
        transport.abort()
    # aiohttp fails to write this to the dead transport and treats it as a client disconnect.
    return web.Response(status=204)


async def _work_for(request: web.Request, seconds: float) -> bool:
    """Sleep ``seconds``, like a service at work; False as soon as the client has left.

    Checked every 50 ms (aiohttp does not cancel a handler whose client left), so a gateway
    cancelling a request is seen at once, not when the answer would have been ready.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        await asyncio.sleep(min(left, _HANG_POLL_S))
        if _client_gone(request):
            return False
    return True


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _deadline(request: web.Request) -> float | None:
    """Seconds the caller will still wait, from its ``x-request-timeout-ms``, if it sent one."""
    value = request.headers.get(DEADLINE_HEADER)
    # isascii too: str.isdigit() accepts digits int() refuses ("²") or reads oddly ("٣").
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    return int(value) / 1000


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # e.g. 599: valid to send, but has no standard name
        return ""


def _unknown_service(service: str) -> web.Response:
    return _problem(
        404,
        "unknown-service",
        "Unknown service",
        f"no service named {service!r}; expected one of {', '.join(SERVICES)}",
    )


_STATE: Final = web.AppKey("demo_upstreams", _Upstreams)


def create_app(
    *,
    latency_scale: float = 1.0,
    faults: Mapping[str, Fault] | None = None,
    latency_ms: Mapping[str, float] | None = None,
    request_log_size: int = 100,
    identity: DemoIdentity | None = None,
) -> web.Application:
    """Build the demo upstreams application (product, inventory, pricing, reviews, category,
    recommendations, cart, orders, the demo identity provider, admin).

    :param latency_scale: multiplies each service's default latency (product 20 ms, inventory
        30 ms, pricing 15 ms, reviews 40 ms, category 10 ms, recommendations 25 ms, each with
        cart 15 ms, orders 50 ms, each with ±10 % jitter); ``0`` answers at once.
    :param faults: faults active from the start, keyed by service name (see ``SERVICES``);
        change them later via ``/admin/faults``.
    :param latency_ms: per-service base latency in milliseconds, replacing the default for
        that service; these explicit values are not multiplied by ``latency_scale``.
    :param request_log_size: how many recent requests ``GET /admin/requests`` keeps per
        service; ``0`` keeps only the counts (cheapest, for benchmarks).
    :param identity: the demo identity provider (its signing key); when not given, a new one
        (a new key) made on the first request to ``/identity/``.
    :raises ValueError: on an unknown service name, a negative latency or scale, or a fault
        whose values are out of range.
    """
    if latency_scale < 0:
        raise ValueError(f"latency_scale must be >= 0, got {latency_scale}")
    if request_log_size < 0:
        raise ValueError(f"request_log_size must be >= 0, got {request_log_size}")
    latency_s = {
        service: DEFAULT_LATENCY_MS[service] * latency_scale / 1000 for service in SERVICES
    }
    for service, ms in (latency_ms or {}).items():
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r} (expected one of {', '.join(SERVICES)})")
        if ms < 0:
            raise ValueError(f"latency of {service} must be >= 0 ms, got {ms}")
        latency_s[service] = ms / 1000

    state = _Upstreams(
        latency_s=latency_s,
        faults=FaultRegistry(faults),
        log=RequestLog(keep=request_log_size),
        identity=identity,
    )
    app = web.Application()
    app[_STATE] = state

    async def release_hung_handlers(app: web.Application) -> None:
        # Runs before aiohttp waits for in-flight handlers, so hung ones cannot stall shutdown.
        app[_STATE].stopping.set()

    app.on_shutdown.append(release_hung_handlers)

    add = app.router.add_route
    add("GET", "/products", state.product_list)
    add("GET", "/products/{id}", state.product)
    add("GET", "/inventory", state.inventory_list)
    add("GET", "/inventory/{id}", state.inventory)
    add("GET", "/prices", state.price_list)
    add("GET", "/prices/{id}", state.price)
    add("GET", "/reviews", state.review_list)
    add("GET", "/reviews/{id}", state.reviews)
    add("GET", "/categories", state.category_list)
    add("GET", "/categories/{slug}", state.category)
    add("GET", "/recommendations/{user}", state.recommendations)
    add("GET", "/carts/{user}", state.cart)
    add("PUT", "/carts/{user}/items/{product_id}", state.put_cart_line)
    add("POST", "/orders", state.place_order)
    add("GET", "/orders/{id}", state.order)
    add("POST", "/reviews/{id}", state.write_review)
    add("GET", JWKS_PATH, state.jwks)
    add("POST", TOKEN_PATH, state.token)
    add("GET", "/identity/users", state.demo_users)
    add("OPTIONS", "/identity/{tail:.*}", state.identity_preflight)
    add("GET", "/healthz", state.healthz)
    add("GET", "/admin/faults", state.get_faults)
    add("DELETE", "/admin/faults", state.delete_faults)
    add("PUT", "/admin/faults/{service}", state.put_fault)
    add("DELETE", "/admin/faults/{service}", state.delete_fault)
    add("GET", "/admin/orders", state.get_orders)
    add("GET", "/admin/requests", state.get_requests)
    add("DELETE", "/admin/requests", state.delete_requests)
    add("*", "/{tail:.*}", state.fallback)
    return app
