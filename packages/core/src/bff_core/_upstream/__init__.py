"""One upstream request, between the engine (or the cache) and the transport.

Every upstream request goes through :meth:`Upstreams.fetch`: the deadline header, the
service's circuit breaker, the source's retries (within the service's retry budget) and
hedge, then the transport.
"""

from ._upstreams import DEADLINE_HEADER, BreakerState, TransitionHook, Upstreams, UpstreamStatus

__all__ = ["DEADLINE_HEADER", "BreakerState", "TransitionHook", "UpstreamStatus", "Upstreams"]
