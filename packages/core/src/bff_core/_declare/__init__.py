"""What is asked: aggregates, their sources and lists, and the policies they declare.

A leaf of the core: it imports only ``_errors``, msgspec and the standard library, so every
layer that executes a declaration (the engine, the upstream chain, the cache) can import it and
it imports none of them.

- ``_policies``: :class:`CachePolicy`, :class:`BreakerPolicy`, :class:`RetryPolicy`,
  :class:`RetryBudget` (the types only; what acts on them lives in ``_cache`` and ``_upstream``);
- ``_template``: path templates, their placeholders and how values are encoded;
- ``_sources``: :class:`Param`, :class:`Batch`, :class:`Source`, :class:`Items`;
- ``_aggregate``: :class:`Aggregate` and the :class:`Plan` of one request;
- ``_mutation``: :class:`Mutation`, one write (``PUT``/``POST``) and what it answers.
"""

from ._aggregate import Aggregate, Plan
from ._mutation import Idempotency, Mutation
from ._policies import (
    DEFAULT_BREAKER,
    DEFAULT_RETRY_BUDGET,
    FAILURE_KINDS,
    BreakerPolicy,
    CachePolicy,
    FailureKind,
    RetryBudget,
    RetryPolicy,
    breaker_policies,
)
from ._sources import Batch, Items, Param, Source
from ._template import ANONYMOUS, encode_id

__all__ = [
    "ANONYMOUS",
    "DEFAULT_BREAKER",
    "DEFAULT_RETRY_BUDGET",
    "FAILURE_KINDS",
    "Aggregate",
    "Batch",
    "BreakerPolicy",
    "CachePolicy",
    "FailureKind",
    "Idempotency",
    "Items",
    "Mutation",
    "Param",
    "Plan",
    "RetryBudget",
    "RetryPolicy",
    "Source",
    "breaker_policies",
    "encode_id",
]
