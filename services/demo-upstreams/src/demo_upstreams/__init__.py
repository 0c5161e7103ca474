"""Simulated product, inventory, pricing and reviews services with run-time fault injection.

One aiohttp server answers all four upstream APIs of the BFF gateway (see the contract), plus
an admin API under ``/admin/`` to inject faults and inspect the requests received. Start it with
``demo-upstreams`` (or ``python -m demo_upstreams``), or embed :func:`create_app`.
"""

from ._app import DEFAULT_CACHE_CONTROL, DEFAULT_LATENCY_MS, create_app
from ._catalogue import PRODUCT_IDS
from ._faults import SERVICES, Fault, parse_fault_flags

__all__ = [
    "DEFAULT_CACHE_CONTROL",
    "DEFAULT_LATENCY_MS",
    "PRODUCT_IDS",
    "SERVICES",
    "Fault",
    "create_app",
    "parse_fault_flags",
]
