"""OpenTelemetry traces: a server span per request, a child span per part and per write, and the
context in every upstream request (retries and hedges too).

Configured by the standard ``OTEL_*`` variables and off unless an OTLP endpoint is named
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); then nothing of
OpenTelemetry is even imported, and the hot path pays one ``is None`` per hook. The sampler
(``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``: default parent-based always-on), the
batching (``OTEL_BSP_*``), the service name (``OTEL_SERVICE_NAME``, default the BFF's) and the
resource (``OTEL_RESOURCE_ATTRIBUTES``) are the SDK's own handling of those variables. Spans
are exported with OTLP over HTTP/protobuf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError
from ._labels import method_label

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from .._outcome import PartOutcome

__all__ = ["PartTrace", "Tracing"]

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")

#: The part whose task this is: its upstream requests name its span as their parent.
CURRENT_PART: ContextVar[PartTrace | None] = ContextVar("bff_current_part", default=None)
#: In a request the sampler left out: the ``traceparent`` its upstream requests carry (the
#: caller's trace, not sampled), so that no part span need be made at all.
UNSAMPLED: ContextVar[str | None] = ContextVar("bff_unsampled_traceparent", default=None)


class PartTrace:
    """One part's (or one write's) span, and how many requests it sent (first try, retries,
    hedge)."""

    __slots__ = ("attempts", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.attempts = 0


class Tracing:
    """The tracer of one gateway, with its own provider (not the process-wide one: several
    gateways may live in one process, as in the tests)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import context, propagate, trace

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("bff_core")
        self._context = context
        self._propagate = propagate
        self._trace = trace
        self._server = trace.SpanKind.SERVER
        self._internal = trace.SpanKind.INTERNAL
        self._error = trace.StatusCode.ERROR

    @classmethod
    def from_env(cls, service_name: str, environ: Mapping[str, str]) -> Tracing | None:
        """Tracing as the ``OTEL_*`` variables say, or ``None`` when they name no endpoint."""
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        exporter = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
        if exporter == "none":
            return None
        if not any(environ.get(name) for name in _ENDPOINTS):
            return None
        if exporter != "otlp":
            raise ConfigurationError(
                "OTEL_TRACES_EXPORTER", f"{exporter!r}: only 'otlp' (or 'none') is supported"
            )
        protocol = next((environ[n] for n in _PROTOCOLS if environ.get(n)), "http/protobuf")
        if protocol.strip() != "http/protobuf":
            raise ConfigurationError(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                f"{protocol!r}: only 'http/protobuf' is supported (OTLP over HTTP)",
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        name = environ.get("OTEL_SERVICE_NAME") or service_name
        try:
            provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        except Exception as exc:  # a sampler name the SDK does not know, and the like
            raise ConfigurationError("OTEL_TRACES_SAMPLER", str(exc)) from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    # -- the server span ----------------------------------------------------------------------

    def start_request(
        self, method: str, route: str, headers: Iterable[tuple[bytes, bytes]], path: str
    ) -> tuple[Span | None, Token[Any]]:
        """The server span of one request, continuing the caller's ``traceparent``; ``None``
        when the sampler leaves the request out."""
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in headers
            if key in (b"traceparent", b"tracestate", b"baggage")
        }
        parent = self._propagate.extract(carrier) if carrier else None
        # A method a client made up is not a span name (tracing backends index names):
        # OpenTelemetry's HTTP conventions name it ``_OTHER`` and keep the original aside.
        known = method_label(method) != "OTHER"
        attributes = {"http.request.method": method if known else "_OTHER", "http.route": route}
        if not known:
            attributes["http.request.method_original"] = method
        attributes["url.path"] = path
        span = self.tracer.start_span(
            f"{method if known else 'HTTP'} {route}",
            context=parent,
            kind=self._server,
            attributes=attributes,
        )
        if not span.is_recording():
            # Left out by the sampler: no spans below it, only the context passed on.
            context = span.get_span_context()
            return None, UNSAMPLED.set(
                f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
            )
        token = self._context.attach(self._trace.set_span_in_context(span))
        return span, token

    def end_request(self, span: Span | None, token: Token[Any], status: int) -> None:
        if span is None:
            UNSAMPLED.reset(token)
            return
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(self._error)
        span.end()
        self._context.detach(token)

    # -- the write spans ----------------------------------------------------------------------

    def start_write(self, mutation: str, method: str, service: str) -> tuple[PartTrace | None, Any]:
        """A write's span, child of the request's, current until :meth:`end_write`: the
        upstream request it sends carries its context. ``None`` in a request the sampler left
        out. Its attributes name the mutation, never the key or the body."""
        if UNSAMPLED.get() is not None:
            return None, None
        span = self.tracer.start_span(
            f"write {mutation}",
            kind=self._internal,
            attributes={
                "bff.mutation": mutation,
                "bff.service": service,
                "http.request.method": method,
            },
        )
        write = PartTrace(span)
        token = self._context.attach(self._trace.set_span_in_context(span))
        return write, (token, CURRENT_PART.set(write))

    def end_write(
        self,
        write: PartTrace,
        tokens: Any,
        *,
        outcome: str,
        idempotency: str | None,
        upstream_status: int | None,
    ) -> None:
        """End a write's span (``outcome``: one of ``WRITE_OUTCOMES``) and make the request's
        span current again."""
        self.restore(tokens)
        span = write.span
        span.set_attribute("bff.outcome", outcome)
        span.set_attribute("bff.attempts", write.attempts)
        if idempotency is not None:
            span.set_attribute("bff.idempotency", idempotency)
        if upstream_status is not None:
            span.set_attribute("http.response.status_code", upstream_status)
        if outcome in ("failed", "unknown"):
            span.set_status(self._error, outcome)
        span.end()

    # -- the part spans -----------------------------------------------------------------------

    def start_part(self, aggregate: str, source: str, service: str) -> tuple[PartTrace | None, Any]:
        """A part's span, child of the current one; returns it and a token to restore the
        context once its task exists (the task keeps the part as its current context).
        ``None`` in a request the sampler left out."""
        if UNSAMPLED.get() is not None:
            return None, None
        span = self.tracer.start_span(
            f"part {source}",
            kind=self._internal,
            attributes={"bff.aggregate": aggregate, "bff.source": source, "bff.service": service},
        )
        part = PartTrace(span)
        token = self._context.attach(self._trace.set_span_in_context(span))
        return part, (token, CURRENT_PART.set(part))

    def restore(self, tokens: Any) -> None:
        if tokens is None:
            return
        token, part_token = tokens
        CURRENT_PART.reset(part_token)
        self._context.detach(token)

    def end_part(self, part: PartTrace, outcome: PartOutcome) -> None:
        span = part.span
        span.set_attribute("bff.outcome", outcome.reason or "ok")
        span.set_attribute("bff.attempts", part.attempts)
        if outcome.cache is not None:
            span.set_attribute("bff.cache", outcome.cache)
        if outcome.upstream_status is not None:
            span.set_attribute("http.response.status_code", outcome.upstream_status)
        if outcome.reason is not None:
            span.set_status(self._error, outcome.describe())
        span.end()

    # -- batch requests (``_upstream/_batch.py``) ------------------------------------------------

    def current_part(self) -> PartTrace | None:
        """The part whose task this is, if its request is sampled."""
        return CURRENT_PART.get()

    def enter_batch(self, source: str, service: str, parts: Sequence[PartTrace], ids: int) -> None:
        """In a batch request's own (fresh) context: its span, linked to every part it serves,
        made the current part, so its requests carry it. No span when no part is sampled."""
        if not parts:
            return
        span = self.tracer.start_span(
            f"batch {source}",
            kind=self._internal,
            links=[self._trace.Link(part.span.get_span_context()) for part in parts],
            attributes={
                "bff.source": source,
                "bff.service": service,
                "bff.batch.ids": ids,
                "bff.batch.parts": len(parts),
            },
        )
        CURRENT_PART.set(PartTrace(span))

    def unsampled_parent(self) -> str | None:
        """The ``traceparent`` of a request the sampler left out, if this is one."""
        return UNSAMPLED.get()

    def enter_single(self, parts: Sequence[PartTrace], unsampled: str | None) -> None:
        """In a batch task that sends one part's single read: that part is the current one
        (its request carries the part's span, as if the part had sent it), or the caller's
        unsampled trace context is passed on as the part would have."""
        if len(parts) == 1:
            CURRENT_PART.set(parts[0])
        elif not parts and unsampled is not None:
            UNSAMPLED.set(unsampled)

    def end_batch(self, outcome: str) -> None:
        """End the current batch request's span (in its context): ``ok``, ``isolated`` (it
        failed and was split) or the error that ended it."""
        part = CURRENT_PART.get()
        if part is None:
            return
        part.span.set_attribute("bff.outcome", outcome)
        part.span.set_attribute("bff.attempts", part.attempts)
        if outcome not in ("ok", "isolated"):
            part.span.set_status(self._error, outcome)
        part.span.end()

    # -- upstream requests --------------------------------------------------------------------

    def outgoing(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers`` and the current part's ``traceparent``; counts the attempt."""
        part = CURRENT_PART.get()
        if part is None:
            unsampled = UNSAMPLED.get()
            if unsampled is None:
                return headers
            return {**headers, "traceparent": unsampled}
        part.attempts += 1
        carrier = dict(headers)
        self._propagate.inject(carrier, context=self._trace.set_span_in_context(part.span))
        return carrier

    def shutdown(self) -> None:
        """Send what is still batched, then stop."""
        self.provider.shutdown()
