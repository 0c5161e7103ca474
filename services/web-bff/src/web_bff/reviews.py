"""The web SPA's review form: the signed-in user's review of a product.

The author is the caller; every instance drops what it cached of the product, so the next
product page, wherever it is answered, counts the review.
"""

from __future__ import annotations

import bff_upstreams as upstreams
from bff_core.litestar import mutation_route
from bff_upstreams import Review

__all__ = ["WRITE_REVIEW", "write_review"]

WRITE_REVIEW = upstreams.write_review("web_write_review", returns=Review)

write_review = mutation_route(
    "/api/products/{id:str}/reviews",
    WRITE_REVIEW,
    summary="Write the signed-in user's review of a product (Idempotency-Key required)",
)
