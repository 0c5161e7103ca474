"""How each upstream is read: cached, protected by a breaker, retried, hedged, batched.

The same for both BFFs: a service's answers go stale, and a failing service fails, at the
same pace whichever client asked.
"""

from __future__ import annotations

from bff_core import BreakerPolicy, CachePolicy, RetryPolicy

__all__ = [
    "BATCH_SIZE",
    "BREAKERS",
    "CATEGORY_CACHE",
    "PRICE_CACHE",
    "PRODUCT_CACHE",
    "PRODUCT_HEDGE_AFTER",
    "RECOMMENDATIONS_CACHE",
    "RETRY_ONCE",
    "REVIEWS_CACHE",
    "STOCK_CACHE",
]

# How long each part may be served from the cache: fresh, then stale while a refresh runs,
# then stale while its upstream fails. The upstreams' Cache-Control can only shorten these.
PRODUCT_CACHE = CachePolicy(ttl=60, stale_while_revalidate=300, stale_if_error=3600)
STOCK_CACHE = CachePolicy(ttl=5, stale_while_revalidate=30, stale_if_error=300)
# Prices may be personal (a member's discount): the signed-in caller's subject goes to the
# pricing service (x-user-id), and its prices are cached per user; anonymous ones are shared.
PRICE_CACHE = CachePolicy(ttl=30, stale_while_revalidate=60, stale_if_error=600, per_user=True)
REVIEWS_CACHE = CachePolicy(ttl=120, stale_while_revalidate=600, stale_if_error=3600)
CATEGORY_CACHE = CachePolicy(ttl=300, stale_while_revalidate=600, stale_if_error=3600)
# Recommendations are the user's own ({user} in the path): kept per user.
RECOMMENDATIONS_CACHE = CachePolicy(
    ttl=60, stale_while_revalidate=120, stale_if_error=600, per_user=True
)

# When an upstream is failing, stop calling it: when at least 20 requests went to it in the
# last 10 s and half of them ended in a timeout, a connection failure or a 5xx, its breaker
# opens for 10 s (404s are answers, not failures; a request counts once, retried or not). One
# client repeating a failing id cannot get there while the others are answered (decision
# record 0015). Every part is
# retried once after a connection failure or a 5xx, within the deadline and a 10 % budget; a
# product answer later than 100 ms (several times its usual latency) gets a second request.
BREAKERS = BreakerPolicy(
    min_calls=20,
    failure_rate=0.5,
    window=10,
    reset_timeout=10,
    counts={"timeout", "unavailable", "5xx"},
)
RETRY_ONCE = RetryPolicy(attempts=2, on={"unavailable", "5xx"})
PRODUCT_HEDGE_AFTER = 0.1
#: The upstreams read at most 50 ids per batch request; a page of either BFF is at most 48
#: items, so every item source costs one request per page.
BATCH_SIZE = 50
