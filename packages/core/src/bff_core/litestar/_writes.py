"""Write routes: a :class:`~bff_core.Mutation` behind ``PUT``/``POST``, with its key.

What the edge does for a write, in order: JSON only (415), at most ``max_body_bytes`` (413,
Litestar's own limit), the verified caller (the guard answers 401 before the route runs), the
``Idempotency-Key`` (400 when required and missing or malformed), the key's record claimed
(a replay, or 409/422/504), then :meth:`Gateway.mutate`, and the answer kept in the record as
``docs/decisions/0017-writes-and-idempotency.md`` says (kept, kept as unknown, or released).

Each write is seen like a read: a span (``write {mutation}``, child of the request's, the
parent of its upstream request), ``bff_writes_total`` and ``bff_write_duration_seconds``, and
its mutation, key and outcome in the access log line.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any, TypeVar, get_type_hints

import msgspec
from litestar import Request, Response, route
from litestar.handlers import HTTPRouteHandler

from .._declare import Mutation
from .._engine import Gateway, WriteResult
from .._errors import (
    AggregationFailed,
    DeclarationError,
    InvalidParameter,
    RequestError,
    WriteFailed,
)
from .._guards import IDEMPOTENCY_HEADER, REPLAYED_HEADER, Claimed, Refused, Replay
from .._report import PROBLEM_JSON, Problem, problem_for
from .._telemetry import PartTrace
from ._edge import EXCHANGE, MUTATION_OPT, REQUEST_ID_HEADER, Exchange, WriteNote
from ._openapi import WRITE_PROBLEM_RESPONSES, write_body_dependencies, write_operation

__all__ = ["DEFAULT_MAX_BODY_BYTES", "mutation_route"]

T = TypeVar("T")

#: The contract's limit on a write's body.
DEFAULT_MAX_BODY_BYTES = 64 * 1024

_JSON = "application/json"
_encode = msgspec.json.Encoder().encode
_NO_STORE = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def mutation_route(
    path: str,
    mutation: Mutation,
    view: Callable[[WriteResult], Any] | None = None,
    *,
    summary: str,
    description: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> HTTPRouteHandler:
    """``mutation.method path``: carry out ``mutation`` for the verified caller.

    The route's path parameters are the mutation's parameters (same names). ``view`` makes
    the answer from the :class:`WriteResult` (required with ``then``: the aggregate read after
    the write is answered through the screen's view); without one the upstream's decoded
    answer is answered as it is. The status is the upstream's (``201`` for a created order),
    ``200`` with ``then``. Its OpenAPI operation shows the answer's type (the view's return
    annotation, or ``returns``), the request body's type, the ``Idempotency-Key`` header, the
    bearer scheme and the problem answers.
    """
    if mutation.then is not None and view is None:
        raise DeclarationError(
            f"mutation route {path}: mutation {mutation.name!r} answers with then="
            f"{mutation.then.name!r}, so it needs a view (the screen's answer)"
        )

    async def handler(request: Request[Any, Any, Any]) -> Response[bytes]:
        gateway: Gateway = request.app.state.gateway
        exchange: Exchange = request.scope["state"][EXCHANGE]
        watch = _Watch(gateway, mutation)
        exchange.write = watch.note
        try:
            return await write(request, gateway, exchange, watch)
        finally:
            watch.end()

    async def write(
        request: Request[Any, Any, Any], gateway: Gateway, exchange: Exchange, watch: _Watch
    ) -> Response[bytes]:
        note = watch.note
        instance = request.url.path
        note.outcome = "invalid"  # until the body is read: too large is refused here
        raw = await request.body()
        if raw.strip() or mutation.body is not None:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != _JSON:
                return _problem(415, "unsupported-media-type", "the body must be JSON", instance)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        identity = exchange.identity
        if identity is None:  # the guard refuses first; kept for a route outside the edge
            return _problem(401, "unauthenticated", "a write needs a bearer token", instance)
        headers = {REQUEST_ID_HEADER: exchange.request_id}
        params = dict(request.path_params)
        claim: Claimed | None = None
        if key is not None or mutation.needs_key:
            if key is None:
                error = InvalidParameter(
                    f"an {IDEMPOTENCY_HEADER} header is required", parameter=IDEMPOTENCY_HEADER
                )
                return _error(error, instance)
            try:
                found = await gateway.idempotency.claim(
                    user=identity.subject,
                    route=mutation.name,
                    key=key,
                    body=raw,
                    running_for=mutation.timeout or gateway.timeout,
                )
            except RequestError as error:
                return _error(error, instance)
            except Exception:
                note.outcome = "failed"
                return _problem(
                    503, "idempotency-unavailable",
                    "idempotency keys cannot be checked now; nothing was sent", instance,
                )  # fmt: skip
            if isinstance(found, Replay):
                note.idempotency = note.outcome = "replayed"
                return Response(
                    found.body,
                    status_code=found.status,
                    media_type=found.content_type,
                    headers={**_NO_STORE, REPLAYED_HEADER: "true"},
                )
            if isinstance(found, Refused):
                note.idempotency, note.outcome = _REFUSED[found.why]
                return _refused(found, instance)
            note.idempotency = "new"
            claim = found
        # Anything unforeseen from here on (cancelled, a bug) counts as failed.
        note.outcome = "failed"
        watch.carried_out = True
        try:
            result = await gateway.mutate(
                mutation, params, raw, identity=identity, idempotency_key=key, headers=headers
            )
        except RequestError as error:
            note.outcome = "invalid"
            watch.carried_out = False  # refused before anything was sent
            if claim is not None:
                await claim.release()
            return _error(error, instance)
        except WriteFailed as failed:
            note.outcome = _FAILED.get(failed.reason, "failed")
            note.upstream_status = failed.upstream_status
            answer = _failed(failed, instance)
            if claim is not None:
                if failed.reason == "outcome_unknown":
                    await claim.unknown(failed.status, PROBLEM_JSON, bytes(answer.content))
                elif failed.reason in ("rejected", "bad_answer", "upstream_status"):
                    # The upstream got it and answered: that answer is the key's.
                    await claim.done(failed.status, PROBLEM_JSON, bytes(answer.content))
                else:
                    await claim.release()  # nothing left: the key may be used again
            return answer
        except AggregationFailed as failed:
            # The write took effect; the screen read after it did not come.
            note.outcome = "sent"
            answer = _problem_response(problem_for(failed, instance=instance))
            if claim is not None:
                await claim.done(failed.status, PROBLEM_JSON, bytes(answer.content))
            return answer
        # Anything else (cancelled, a bug) may have come after the request left: the record
        # stays running, answers 409 until its deadline has long passed, then the unknown
        # outcome (decision record 0017). Releasing it could place a second order.
        note.outcome = "sent"
        note.upstream_status = result.status
        body = _encode(view(result) if view is not None else result.value)
        status = 200 if mutation.then is not None else result.status
        if claim is not None:
            await claim.done(status, _JSON, body)
        return Response(body, status_code=status, media_type=_JSON, headers=_NO_STORE)

    handler.__name__ = handler.__qualname__ = f"mutation_{mutation.name}"
    # The document shows the answer's type; the route sends the bytes it encoded itself.
    answer: Any = get_type_hints(view).get("return", Any) if view is not None else mutation.returns
    handler.__annotations__ = {"request": Request, "return": Response[answer]}
    return route(
        path,
        http_method=[mutation.method],
        opt={MUTATION_OPT: mutation},
        summary=summary,
        description=description,
        request_max_body_size=max_body_bytes,
        responses=WRITE_PROBLEM_RESPONSES,
        operation_class=write_operation(mutation, max_body_bytes=max_body_bytes),
        dependencies=write_body_dependencies(mutation),
        status_code=200 if mutation.then is not None or mutation.method == "PUT" else 201,
    )(handler)


#: A key's refusal: what the access log's ``idempotency`` says, and the write's outcome.
_REFUSED = {
    "running": ("conflict", "conflict"),
    "mismatch": ("mismatch", "mismatch"),
    "abandoned": ("abandoned", "unknown"),
}
#: A failed write's outcome by its reason (any other: ``failed``).
_FAILED = {"outcome_unknown": "unknown", "rejected": "rejected"}


class _Watch:
    """A write's telemetry: its span (current while it runs, so that the upstream request
    carries its context), then its count and duration in the metrics, and its note for the
    access log."""

    __slots__ = ("_gateway", "_started", "_tokens", "_trace", "carried_out", "note")

    def __init__(self, gateway: Gateway, mutation: Mutation) -> None:
        self._gateway = gateway
        self.note = WriteNote(mutation.name)
        #: whether the write was carried out (not a key's replay or refusal, nor refused before)
        self.carried_out = False
        self._started = perf_counter()
        tracing = gateway.tracing
        self._trace: PartTrace | None = None
        self._tokens: Any = None
        if tracing is not None:
            self._trace, self._tokens = tracing.start_write(
                mutation.name, mutation.method, mutation.service
            )

    def end(self) -> None:
        note = self.note
        metrics = self._gateway.metrics
        if metrics is not None:
            elapsed = perf_counter() - self._started if self.carried_out else None
            metrics.observe_write(note.mutation, note.outcome, elapsed)
        if self._trace is not None:
            tracing = self._gateway.tracing
            assert tracing is not None
            tracing.end_write(
                self._trace,
                self._tokens,
                outcome=note.outcome,
                idempotency=note.idempotency,
                upstream_status=note.upstream_status,
            )


def _problem(status: int, slug: str, detail: str, instance: str) -> Response[bytes]:
    from http import HTTPStatus

    title = HTTPStatus(status).phrase
    return _problem_response(
        Problem(
            type=f"urn:bff:problem:{slug}",
            title=title,
            status=status,
            detail=detail,
            instance=instance,
        )
    )


def _problem_response(problem: Problem) -> Response[bytes]:
    return Response(
        _encode(problem), status_code=problem.status, media_type=PROBLEM_JSON, headers=_NO_STORE
    )


def _error(error: RequestError, instance: str) -> Response[bytes]:
    return _problem_response(problem_for(error, instance=instance))


def _refused(refused: Refused, instance: str) -> Response[bytes]:
    if refused.why == "mismatch":
        return _problem(
            422, "idempotency-key-reused",
            f"this {IDEMPOTENCY_HEADER} was used with another body", instance,
        )  # fmt: skip
    if refused.why == "running":
        return _problem(
            409, "idempotency-key-in-use",
            f"the first request with this {IDEMPOTENCY_HEADER} is still running", instance,
        )  # fmt: skip
    return _problem(
        504, "outcome-unknown",
        "the outcome is unknown: the first request with this key was sent and did not end; "
        "it may have taken effect",
        instance,
    )  # fmt: skip


def _failed(failed: WriteFailed, instance: str) -> Response[bytes]:
    return _problem(failed.status, failed.reason.replace("_", "-"), failed.detail, instance)
