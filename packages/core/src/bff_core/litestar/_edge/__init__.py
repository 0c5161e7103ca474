"""The edge: one ASGI layer around every route, running one filter per concern, each in a file
of its own with a request side and a response side (Envoy's HTTP filter chain).

============== ============================================================================
filter         concern
============== ============================================================================
request id     ``_request_id``: the client's sane ``X-Request-ID`` or a new one, everywhere
hygiene        ``_hygiene``: too long a query, too many header bytes, an unexpected body
CORS           ``_cors``: preflights answered, ``Vary: Origin``, the allowed origins' headers
nosniff        ``_nosniff``: ``X-Content-Type-Options: nosniff`` on every answer
compression    ``_compression``: zstd, br or gzip as ``Accept-Encoding`` prefers
telemetry      ``_telemetry``: the server span, the request's duration in the metrics
access log     ``_access_log``: one line per request, with every part's outcome
guard          ``_guard``: bearer tokens verified, the clients' rate limits
============== ============================================================================

``_chain`` assembles the filters once from the settings and runs them; ``_filter`` says what a
filter and its sides are; ``_exchange`` is the one object a request's filters and its route
share (the request id, the identity, what the access log tells).
"""

from ._chain import Edge, edge_filters, edge_middleware
from ._compression import Compression, weighted
from ._cors import CorsPolicy
from ._exchange import EXCHANGE, Exchange, WriteNote, exchange_of, header
from ._filter import Filter, Reply, problem_reply, send_reply
from ._guard import AGGREGATE_OPT, MUTATION_OPT, OPERATIONAL_OPT
from ._request_id import REQUEST_ID_HEADER, request_id

__all__ = [
    "AGGREGATE_OPT",
    "EXCHANGE",
    "MUTATION_OPT",
    "OPERATIONAL_OPT",
    "REQUEST_ID_HEADER",
    "Compression",
    "CorsPolicy",
    "Edge",
    "Exchange",
    "Filter",
    "Reply",
    "WriteNote",
    "edge_filters",
    "edge_middleware",
    "exchange_of",
    "header",
    "problem_reply",
    "request_id",
    "send_reply",
    "weighted",
]
