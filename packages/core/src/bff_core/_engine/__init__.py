"""How one request runs: the gateway, its runs, their outcomes, lists and streams.

- ``_gateway``: :class:`Gateway`, which owns the long-lived pieces (the upstream chains, the
  cache, peers) and starts runs;
- ``_wiring``: what a run is given of the gateway (never the gateway itself);
- ``_run``: one run of an aggregate, its parts as tasks under one deadline;
- ``_outcomes``: what an answer or a failure means for a part;
- ``_lists``: a list part's items, in as few requests as it takes;
- ``_stream``: :class:`AggregateStream`, a run told part by part;
- ``_start_order``: slowest first among the parts that start together;
- ``_peers``: what instances tell each other (breaker transitions, invalidations);
- ``_writes``: one write (a :class:`Mutation`) carried out, and its :class:`WriteResult`.
"""

from ._gateway import Gateway
from ._stream import AggregateStream
from ._writes import WriteResult, decode_body

__all__ = ["AggregateStream", "Gateway", "WriteResult", "decode_body"]
