"""Simulated upstream services of the BFF gateway, with run-time fault injection.

One aiohttp server answers all the upstream APIs (product, inventory, pricing, reviews, and for
list screens category and recommendations, see the contract), plus an admin API under
``/admin/`` to inject faults and inspect the requests received. Start it with
``demo-upstreams`` (or ``python -m demo_upstreams``), or embed :func:`create_app`.
"""

from ._app import DEFAULT_CACHE_CONTROL, DEFAULT_LATENCY_MS, MAX_BATCH_IDS, create_app
from ._catalogue import CATEGORY_SLUGS, PRODUCT_IDS
from ._faults import SERVICES, Fault, parse_fault_flags

__all__ = [
    "CATEGORY_SLUGS",
    "DEFAULT_CACHE_CONTROL",
    "DEFAULT_LATENCY_MS",
    "MAX_BATCH_IDS",
    "PRODUCT_IDS",
    "SERVICES",
    "Fault",
    "create_app",
    "parse_fault_flags",
]
