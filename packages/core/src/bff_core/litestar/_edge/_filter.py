"""What a filter of the edge is, and what it may answer by itself.

A filter is one concern of the edge (Envoy's HTTP filters are the model) with up to five
sides, each a plain method the chain calls; a filter defines only the sides it has, and the
chain calls a side only on the filters that define it:

- ``on_request(exchange)``: sees the request before any answer, never waits. It may answer by
  itself (a :class:`Reply`: a refusal, a preflight). Every filter's request side runs, even
  after an earlier one answered, so that the answer carries every filter's headers; the first
  reply given is the one sent, with ``exchange.headers`` and without the response sides.
- ``on_admit(exchange)``: may wait (a token's keys, Redis), after every request side and only
  when none of them answered; its reply is answered like the route's answer would be (it passes
  the response sides).
- ``on_response(exchange, answered, headers)``: sees the start of the route's answer: the
  headers the route ``answered`` (the status is ``exchange.status``) and the ``headers`` that
  will be sent (the route's, then ``exchange.headers``), which it may add to. Returns ``True``
  to hold the start until the body has been seen by its ``on_body``.
- ``on_body(exchange, start, message)``: the first body message of an answer it held; returns
  the message to send after ``start`` (which it may still change).
- ``on_done(exchange)``: the request is over (answered, or failed); ``exchange.status`` and
  ``exchange.elapsed`` are final.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Send

from ..._report import PROBLEM_JSON, Problem
from ._exchange import Exchange

__all__ = ["NOSNIFF", "SIDES", "Filter", "Reply", "problem_reply", "send_reply"]

#: Every answer: browsers must not guess another type than the one declared.
NOSNIFF = (b"x-content-type-options", b"nosniff")

#: The sides a filter may define, in the order the chain meets them.
SIDES = ("on_request", "on_admit", "on_response", "on_body", "on_done")


class Filter:
    """The base of the edge's filters. Its sides do nothing and the chain never calls them:
    a subclass defines the sides it has (see the module's docstring for what each is)."""

    __slots__ = ()

    def on_request(self, exchange: Exchange) -> Reply | None:
        return None

    async def on_admit(self, exchange: Exchange) -> Reply | None:
        return None

    def on_response(
        self,
        exchange: Exchange,
        answered: Sequence[tuple[bytes, bytes]],
        headers: list[tuple[bytes, bytes]],
    ) -> bool:
        return False

    def on_body(
        self, exchange: Exchange, start: HTTPResponseStartEvent, message: HTTPResponseBodyEvent
    ) -> HTTPResponseBodyEvent:
        return message

    def on_done(self, exchange: Exchange) -> None:
        return None

    def defines(self, side: str) -> bool:
        """Whether this filter has ``side`` (one of :data:`SIDES`), not the base's."""
        return getattr(type(self), side) is not getattr(Filter, side)


_PROBLEM_TYPE = PROBLEM_JSON.encode()
_problem_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer a filter gives by itself: the headers before the ones the edge adds
    (``exchange.headers``), the ones after, and the whole body."""

    status: int
    head: tuple[tuple[bytes, bytes], ...]
    tail: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""


def problem_reply(problem: Problem, headers: Iterable[tuple[bytes, bytes]] = ()) -> Reply:
    """``problem`` as application/problem+json, never to be kept by a cache."""
    body = _problem_encoder.encode(problem)
    return Reply(
        problem.status,
        ((b"content-type", _PROBLEM_TYPE), (b"cache-control", b"no-store"), NOSNIFF, *headers),
        ((b"content-length", str(len(body)).encode()),),
        body,
    )


async def send_reply(reply: Reply, send: Send, added: Iterable[tuple[bytes, bytes]] = ()) -> int:
    """Send ``reply`` with the ``added`` headers between its head and its tail; its status."""
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": reply.status,
        "headers": [*reply.head, *added, *reply.tail],
    }
    await send(start)
    body: HTTPResponseBodyEvent = {
        "type": "http.response.body",
        "body": reply.body,
        "more_body": False,
    }
    await send(body)
    return reply.status
