"""Simulated upstream services of the BFF gateway, with run-time fault injection.

One aiohttp server answers all the upstream APIs (product, inventory, pricing, reviews, for
list screens category and recommendations, and for the write path cart, orders and the review
write, see the contract), a demo identity provider under ``/identity/``, plus an admin API under
``/admin/`` to inject faults and inspect the requests received and the orders placed. Start it with
``demo-upstreams`` (or ``python -m demo_upstreams``), or embed :func:`create_app`.
"""

from ._app import DEFAULT_CACHE_CONTROL, DEFAULT_LATENCY_MS, MAX_BATCH_IDS, create_app
from ._catalogue import CATEGORY_SLUGS, PRODUCT_IDS
from ._faults import SERVICES, Fault, parse_fault_flags
from ._identity import DEMO_AUDIENCES, DEMO_ISSUER, DEMO_USERS, JWKS_PATH, TOKEN_PATH, DemoIdentity

__all__ = [
    "CATEGORY_SLUGS",
    "DEFAULT_CACHE_CONTROL",
    "DEFAULT_LATENCY_MS",
    "DEMO_AUDIENCES",
    "DEMO_ISSUER",
    "DEMO_USERS",
    "JWKS_PATH",
    "MAX_BATCH_IDS",
    "PRODUCT_IDS",
    "SERVICES",
    "TOKEN_PATH",
    "DemoIdentity",
    "Fault",
    "create_app",
    "parse_fault_flags",
]
