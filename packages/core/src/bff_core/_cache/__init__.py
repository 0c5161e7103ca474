"""The cache layer: what may be cached, how a part is looked up, and where entries live.

- ``_policy``: a source's declared :class:`~bff_core._declare.CachePolicy` capped by the
  upstream's ``Cache-Control``, and :class:`Entry`, what every store keeps;
- ``_lookups``: :class:`Cache`, between the engine, the store and the upstreams: freshness,
  stale-while-revalidate, stale-if-error, one lookup per key at a time (coalescing), whole
  answers;
- ``_stores``: :class:`MemoryStore` (in-process, and the near cache), :class:`TieredStore`
  (the near cache in front of Redis), :func:`make_store`;
- ``_redis_store``: :class:`RedisStore`, one server or a cluster, reads and writes batched
  into one pipeline per turn of the event loop.
"""

from ._lookups import Answer, Cache
from ._policy import Entry
from ._redis_store import RedisStore
from ._stores import DEFAULT_NEAR_HOLD, CacheStore, MemoryStore, TieredStore, make_store

__all__ = [
    "DEFAULT_NEAR_HOLD",
    "Answer",
    "Cache",
    "CacheStore",
    "Entry",
    "MemoryStore",
    "RedisStore",
    "TieredStore",
    "make_store",
]
