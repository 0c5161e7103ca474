"""One upstream request, between the engine (or the cache) and the transport: a chain of
single-concern layers assembled once per source (see ``_upstreams.py``).

- ``_upstreams``: :class:`Upstreams`, the services and each source's chain;
- ``_retry``, ``_hedge``, ``_breaker``, ``_send``: the layers, each one concern with one
  method (``_layer.Layer``);
- ``_batch``: a batched source's reads gathered across runs into batch requests;
- ``_service``: what the layers of one service share: its retry budget and counters.
"""

from ._batch import MalformedBatch, Submit, split_batch
from ._breaker import BreakerState, TransitionHook
from ._send import DEADLINE_HEADER
from ._upstreams import Upstreams, UpstreamStatus

__all__ = [
    "DEADLINE_HEADER",
    "BreakerState",
    "MalformedBatch",
    "Submit",
    "TransitionHook",
    "UpstreamStatus",
    "Upstreams",
    "split_batch",
]
