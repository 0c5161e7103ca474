"""A transport on pyreqwest: Rust's reqwest/hyper client behind a Python API.

The default transport (``docs/decisions/0002-hot-path.md``): the highest throughput per core.
HTTP parsing, pooling and decompression run in Rust on a Tokio runtime, so the Python side
mostly pays for building the request and handing the body over
(``docs/decisions/0001-http-client.md`` has the measurements).

Trade-offs:

- pyreqwest is young (0.x, essentially one maintainer); its API may change between minor
  versions.
- URLs are parsed by the WHATWG ``url`` crate, which resolves ``.`` and ``..`` path segments
  *including percent-encoded ones* (``%2E%2E``, ``.%2e``, ...). ``%2F`` is kept, but a segment
  the engine encoded as ``%2E%2E`` so that the upstream gets the literal name would be sent to
  the parent path instead. There is no raw-target escape hatch, so ``get`` hands such URLs to
  its ``fallback`` transport (the default gateway's is aiohttp, which sends them verbatim), or
  without one refuses them with :class:`~bff_core.UpstreamUnavailable` rather than call a
  different resource.
- Cancellation does not reach the network. pyreqwest runs each request as a Tokio task and,
  in 0.15, when the awaiting asyncio task is cancelled it raises ``CancelledError`` at once
  but detaches that Tokio task instead of aborting it; a cancelled body read likewise leaves
  the body being read in the background. The abandoned request keeps its connection until it
  completes, which against a hung upstream is never (``Client.close()`` does not stop it
  either). The transport therefore builds its client with a *backstop* total timeout
  (``backstop_timeout``, default 30 s, longer than any sensible engine deadline): an abandoned
  request is dropped, and its connection closed, at the latest then. The engine does better:
  it passes every request the time left until its deadline (``time_left``), which becomes the
  request's own timeout, so an abandoned request ends in Rust at most 50 ms after the
  aggregation's deadline. What remains: when a run ends *before* its deadline (a critical
  part failed first, the client went away), its other requests go on until that deadline.
- Redirects are not followed and no cookies are kept. With a caller's client, its own
  configuration applies (redirects included; give it a timeout for the reason above). When a
  pyreqwest timeout fires while the caller is still waiting, ``get`` raises the builtin
  :class:`TimeoutError`, which the engine reports as ``timeout``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from urllib.parse import urlsplit

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import (
    ClientClosedError,
    ConnectError,
    ConnectTimeoutError,
    PoolTimeoutError,
    PyreqwestError,
    RequestTimeoutError,
)
from pyreqwest.http import HeaderMap, Url
from pyreqwest.response import Response

from .._errors import OutcomeUnknown, RequestNotSent, ResponseTooLarge, UpstreamUnavailable
from ._base import (
    DEFAULT_MAX_BODY_BYTES,
    Transport,
    UpstreamResponse,
    WriteMethod,
    WritingTransport,
    json_headers,
)

__all__ = ["PyreqwestTransport"]

#: Idle keep-alive connections kept per upstream host by the client the transport creates.
DEFAULT_POOL_SIZE = 512

#: Seconds after which the client this transport creates gives up on any request; it only
#: matters for requests whose caller was cancelled (see the module documentation).
DEFAULT_BACKSTOP_TIMEOUT = 30.0

#: How long past the engine's deadline a request may go on before pyreqwest itself ends it.
_SLACK = 0.05

#: A ``.`` or ``..`` path segment, literal or percent-encoded: the ``url`` crate resolves them.
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)


class PyreqwestTransport:
    """A :class:`~bff_core.Transport` on a :class:`pyreqwest.client.Client`.

    Args:
        client: a client to send requests through. The caller keeps ownership (``aclose``
            does not close it) and its configuration applies. Without one the transport
            builds its own on first use: keep-alive, no timeouts, no redirects, no cookies.
        max_body_bytes: longer bodies (after decompression) raise
            :class:`~bff_core.ResponseTooLarge`.
        pool_size: idle keep-alive connections kept per upstream host by the client the
            transport creates; not allowed together with ``client``.
        backstop_timeout: total timeout, in seconds, of every request of the client the
            transport creates; not allowed together with ``client``. Not a deadline (the
            engine has those) but the bound on how long a request the engine abandoned can
            hold a connection, because pyreqwest does not abort it (module documentation).

        fallback: a transport for the URLs pyreqwest cannot send exactly (those with dot
            segments); it is closed with this one. Without it such URLs are refused.

    ``get`` sends the URL as the ``url`` crate serialises it: identical for an ASCII,
    percent-encoded URL without dot segments; URLs with dot segments go to ``fallback`` or
    are refused (see the module documentation). ``time_left`` becomes the request's own
    timeout (plus 50 ms), so a request the engine abandoned ends in Rust by then.
    Connection failures raise :class:`~bff_core.UpstreamUnavailable`.
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        pool_size: int | None = None,
        backstop_timeout: float | None = None,
        fallback: Transport | None = None,
    ) -> None:
        if max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must not be negative, got {max_body_bytes!r}")
        if client is not None and (pool_size is not None or backstop_timeout is not None):
            raise ValueError(
                "pool_size and backstop_timeout only apply to the client the transport creates"
            )
        if pool_size is not None and pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size!r}")
        if backstop_timeout is not None and not backstop_timeout > 0:
            raise ValueError(f"backstop_timeout must be positive, got {backstop_timeout!r}")
        self._client = client
        self._owns_client = client is None
        self._pool_size = pool_size or DEFAULT_POOL_SIZE
        self._backstop = timedelta(seconds=backstop_timeout or DEFAULT_BACKSTOP_TIMEOUT)
        self._max_body_bytes = max_body_bytes
        self._fallback = fallback
        self._closed = False

    def _build_client(self) -> Client:
        # Built on first use, like the aiohttp session: constructing the transport needs no
        # running loop and starts no runtime thread.
        self._client = (
            ClientBuilder()
            .follow_redirects(False)
            .default_cookie_store(False)
            .pool_max_idle_per_host(self._pool_size)
            .timeout(self._backstop)
            .build()
        )
        return self._client

    async def get(
        self, url: str, *, headers: Mapping[str, str], time_left: float | None = None
    ) -> UpstreamResponse:
        return await self._request("GET", url, headers, None, time_left)

    async def send(
        self,
        method: WriteMethod,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        time_left: float | None = None,
    ) -> UpstreamResponse:
        return await self._request(method, url, json_headers(headers), body, time_left)

    async def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        time_left: float | None,
    ) -> UpstreamResponse:
        if self._closed:
            raise UpstreamUnavailable("transport is closed")
        client = self._client if self._client is not None else self._build_client()
        try:
            parsed = Url(url)
        except ValueError as exc:
            raise UpstreamUnavailable(f"{method} {url}: invalid URL ({exc})") from exc
        # Cheap substring test first: a dot segment always starts with "/." or "/%2".
        if ("/." in url or "/%2" in url) and _DOT_SEGMENT.search(urlsplit(url).path):
            return await self._send_elsewhere(method, url, headers, content, time_left, parsed)
        try:
            # A streamed request, so the body can be counted and refused while it arrives.
            # Leaving the block before the body is read to the end (too large, cancelled)
            # never returns the half-read connection to the pool; pyreqwest closes it once
            # its background reader gives up, at the latest at the backstop timeout.
            if content is None:
                builder = client.get(parsed).headers(headers)
            else:
                builder = client.request(method, parsed).headers(headers).body_bytes(content)
            if time_left is not None:
                # pyreqwest does not abort a request whose awaiting task was cancelled; with
                # its own timeout just past the engine's deadline it ends by itself, in Rust,
                # and releases its connection instead of holding it until the backstop.
                builder = builder.timeout(timedelta(seconds=max(time_left, 0.0) + _SLACK))
            async with builder.build_streamed() as response:
                length = response.get_header("content-length")
                if (
                    length is not None
                    and length.isdigit()
                    and int(length) <= self._max_body_bytes
                    and response.get_header("content-encoding") is None
                ):
                    # The hot path, one call into Rust: hyper reads exactly Content-Length
                    # bytes, already checked against the limit.
                    body = bytes(await response.bytes())
                else:
                    body = await self._read_body(response, length)
                return UpstreamResponse(
                    status=response.status, headers=_Headers(response.headers), body=body
                )
        except (ConnectError, ConnectTimeoutError, PoolTimeoutError, ClientClosedError) as exc:
            # A read keeps reporting a timeout as one. Must precede the generic clauses.
            if content is None and isinstance(exc, RequestTimeoutError):
                raise TimeoutError(f"{method} {url}: timed out in the pyreqwest client") from exc
            if content is not None and not _never_sent(exc):
                # pyreqwest also names a connection closed mid-request a ConnectError, and the
                # request's total timeout while the answer is awaited a ConnectTimeoutError.
                raise OutcomeUnknown(
                    f"{method} {url}: {_describe(exc)}",
                    timed_out=isinstance(exc, RequestTimeoutError),
                ) from exc
            raise UpstreamUnavailable(f"{method} {url}: {_describe(exc)}") from exc
        except RequestTimeoutError as exc:
            # The backstop, or a caller's client's timeout. Must precede the generic clause.
            if content is not None:
                raise OutcomeUnknown(
                    f"{method} {url}: timed out in the pyreqwest client after sending",
                    timed_out=True,
                ) from exc
            raise TimeoutError(f"{method} {url}: timed out in the pyreqwest client") from exc
        except PyreqwestError as exc:
            # For a write the connection existed: the request may have been written.
            error = UpstreamUnavailable if content is None else OutcomeUnknown
            raise error(f"{method} {url}: {_describe(exc)}") from exc
        except ValueError as exc:
            # An invalid header name or value (CR/LF, a control character: header injection).
            # The request cannot be made, whatever the upstream's health: no breaker's failure.
            raise RequestNotSent(f"{method} {url}: request not sent: {exc}") from exc

    async def _send_elsewhere(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        time_left: float | None,
        parsed: Url,
    ) -> UpstreamResponse:
        fallback = self._fallback
        if content is None and fallback is not None:
            return await fallback.get(url, headers=headers, time_left=time_left)
        if content is not None and isinstance(fallback, WritingTransport):
            write: WriteMethod = "PUT" if method == "PUT" else "POST"
            return await fallback.send(
                write, url, headers=headers, body=content, time_left=time_left
            )
        raise UpstreamUnavailable(
            f"{method} {url}: pyreqwest would resolve the dot segments of this path "
            f"and request {parsed.path} instead"
        )

    async def _read_body(self, response: Response, length: str | None) -> bytes:
        limit = self._max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise ResponseTooLarge(limit)
        reader = response.body_reader
        chunks: list[bytes] = []
        size = 0
        # Chunks are decoded (decompressed) bytes: the limit applies to what would be buffered.
        while (chunk := await reader.read_chunk()) is not None:
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(limit)
            chunks.append(bytes(chunk))
        return b"".join(chunks)

    @property
    def cancellable(self) -> Transport | None:
        """A transport whose cancelled requests really stop: the ``fallback``, if any.

        The gateway sends hedged requests through it, so the losing request of a hedge ends
        when it is cancelled instead of running on in Rust until its timeout.
        """
        return self._fallback

    async def aclose(self) -> None:
        self._closed = True
        if self._owns_client and self._client is not None:
            await self._client.close()
        if self._fallback is not None:
            await self._fallback.aclose()


class _Headers(Mapping[str, str]):
    """The response's headers, read on demand: no copy into a dict on the hot path.

    Names are case-insensitive (the http crate's are lower-case); a repeated field reads as
    one field with comma-joined values (RFC 9110, 5.3), as with the other transports.
    """

    __slots__ = ("_map",)

    def __init__(self, header_map: HeaderMap) -> None:
        self._map = header_map

    def __getitem__(self, name: str) -> str:
        values = self._map.getall(name)
        if not values:
            raise KeyError(name)
        return values[0] if len(values) == 1 else ", ".join(values)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(self._map.keys()))

    def __len__(self) -> int:
        return self._map.keys_len()


def _describe(exc: PyreqwestError) -> str:
    causes = getattr(exc, "details", None) or {}
    reasons = [cause["message"] for cause in causes.get("causes") or []]
    text = "; ".join([exc.message, *reasons])
    return f"{type(exc).__name__}: {text}"


def _never_sent(exc: PyreqwestError) -> bool:
    """Whether the request certainly did not leave: no connection was made to send it on.

    pyreqwest raises ``ConnectError`` both when connecting failed and when an established
    connection closed before the answer ("connection closed before message completed"), and
    ``ConnectTimeoutError`` for a total timeout that fired after sending; only hyper's own
    cause, ``client error (Connect)``, tells a failure to connect apart.
    """
    if isinstance(exc, ClientClosedError):
        return True
    causes = getattr(exc, "details", None) or {}
    return any(cause["message"] == "client error (Connect)" for cause in causes.get("causes") or [])
