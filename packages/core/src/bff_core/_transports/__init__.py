"""The transports: how an upstream ``GET`` is sent, behind one seam.

- ``_base``: the :class:`Transport` protocol and :class:`UpstreamResponse`; it knows no adapter;
- ``_pyreqwest`` (the default, fastest), ``_aiohttp`` (cancellable), ``_httpx`` (optional,
  ``bff-core[httpx]``): the adapters, each importing only ``_base``;
- :func:`make_transport`, here: the one place that knows every built-in adapter by name.
"""

from typing import TYPE_CHECKING, Any

from ._aiohttp import AiohttpTransport
from ._base import (
    DEFAULT_MAX_BODY_BYTES,
    HTTP_CLIENTS,
    HttpClient,
    Transport,
    UpstreamResponse,
    WriteMethod,
    WritingTransport,
)

if TYPE_CHECKING:
    from ._httpx import HttpxTransport
    from ._pyreqwest import PyreqwestTransport

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "HTTP_CLIENTS",
    "AiohttpTransport",
    "HttpClient",
    "HttpxTransport",
    "PyreqwestTransport",
    "Transport",
    "UpstreamResponse",
    "WriteMethod",
    "WritingTransport",
    "make_transport",
]


def __getattr__(name: str) -> Any:
    # The httpx and pyreqwest adapters are imported on first use: bff_core imports without
    # httpx (bff-core[httpx]), and without loading pyreqwest's Rust runtime until it is used.
    if name == "HttpxTransport":
        from ._httpx import HttpxTransport

        return HttpxTransport
    if name == "PyreqwestTransport":
        from ._pyreqwest import PyreqwestTransport

        return PyreqwestTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_transport(http_client: HttpClient) -> Transport:
    """A new transport of the kind ``http_client`` names."""
    if http_client == "aiohttp":
        return AiohttpTransport()
    if http_client != "pyreqwest":
        raise ValueError(f"http_client must be one of {', '.join(HTTP_CLIENTS)}")
    from ._pyreqwest import PyreqwestTransport

    # aiohttp for the rare URL pyreqwest cannot send byte for byte (dot segments).
    return PyreqwestTransport(fallback=AiohttpTransport())
