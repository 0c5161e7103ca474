"""A transport on httpx, for teams that already use httpx or want to test without a network.

Its main use is testability: pass your own ``httpx.AsyncClient`` (for example one built on
``httpx.MockTransport``) and your aggregates run against canned upstream answers, in-process.
It also lets a team reuse an ``httpx.AsyncClient`` it has already configured (TLS, proxies,
event hooks), or put a faster httpx transport under it.

Trade-offs:

- httpx 0.28 (December 2024) is the last release and the project is no longer maintained;
  prefer the default aiohttp transport for production traffic. It is also the slowest of the
  three, and gets slower as concurrency rises: httpcore's pool does work proportional to
  connections x queued requests on every request (encode/httpcore#1035, never merged), so on
  one core it serves about 2,000 req/s with 4 requests in flight but only a few hundred with
  64 (see ``docs/decisions/0001-http-client.md``).
- httpx's URL parser resolves literal ``.``/``..`` path segments. To send the URL verbatim the
  transport passes the request target through httpcore's ``target`` request extension, so
  ``%2F``, ``%2E%2E`` and even a literal ``..`` reach the upstream unchanged (with httpx's
  default transport; a custom transport sees ``request.url`` as httpx normalised it and may
  ignore the extension). Only a URL that is not plain ASCII is left to httpx's own encoding;
  if such a URL also has a dot segment, it is refused rather than sent to another path.
- Timeouts: the client this transport creates has none, because the engine imposes deadlines
  by cancelling the task. If *your* client has timeouts and one fires, ``get`` raises the
  builtin :class:`TimeoutError` (not :class:`~bff_core.UpstreamUnavailable`), so the engine
  reports the part as ``timeout``, exactly as if its own deadline had fired.
- Redirects are never followed, whatever the client's setting: a 3xx is returned as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from .._errors import OutcomeUnknown, RequestNotSent, ResponseTooLarge, UpstreamUnavailable
from ._base import DEFAULT_MAX_BODY_BYTES, UpstreamResponse, WriteMethod, json_headers

__all__ = ["HttpxTransport"]

#: Idle keep-alive connections kept for reuse by the client the transport creates.
DEFAULT_POOL_SIZE = 100

#: A request target that can go on the request line as is: printable ASCII, no spaces.
_PLAIN_TARGET = re.compile(r"[!-~]+")
#: A ``.`` or ``..`` path segment, literal or percent-encoded (as URL parsers decode them).
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)


class HttpxTransport:
    """A :class:`~bff_core.Transport` on an :class:`httpx.AsyncClient`.

    Args:
        client: the client to send requests through. The caller keeps ownership (``aclose``
            does not close it) and its configuration applies, except that redirects are never
            followed. Without one, the transport creates a client with keep-alive, no
            timeouts, no redirects and no proxy settings from the environment.
        max_body_bytes: longer bodies (after decompression) raise
            :class:`~bff_core.ResponseTooLarge`.
        pool_size: idle keep-alive connections kept by the client the transport creates;
            not allowed together with ``client``. httpx has no per-host connection limit and
            a global one would let one slow upstream hold up the others, so there is none.

    ``get`` raises :class:`~bff_core.UpstreamUnavailable` for every httpx request error
    (connect, protocol, read, decoding) and the builtin :class:`TimeoutError` when a timeout
    configured on the client fires.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        pool_size: int | None = None,
    ) -> None:
        if max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must not be negative, got {max_body_bytes!r}")
        if client is not None and pool_size is not None:
            raise ValueError("pool_size only applies to the client the transport creates")
        if pool_size is not None and pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size!r}")
        self._owns_client = client is None
        if client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(None),
                limits=httpx.Limits(
                    max_connections=None,
                    max_keepalive_connections=pool_size or DEFAULT_POOL_SIZE,
                    keepalive_expiry=30.0,
                ),
                follow_redirects=False,
                trust_env=False,
            )
        self._client = client
        self._max_body_bytes = max_body_bytes
        self._closed = False

    async def get(
        self, url: str, *, headers: Mapping[str, str], time_left: float | None = None
    ) -> UpstreamResponse:
        return await self._request("GET", url, headers, None)

    async def send(
        self,
        method: WriteMethod,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        time_left: float | None = None,
    ) -> UpstreamResponse:
        return await self._request(method, url, json_headers(headers), body)

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes | None
    ) -> UpstreamResponse:
        if self._closed or self._client.is_closed:
            raise UpstreamUnavailable("transport is closed")
        write = content is not None
        try:
            request = self._client.build_request(
                method, url, headers=headers, content=content, extensions=_target_extension(url)
            )
            response = await self._client.send(request, stream=True, follow_redirects=False)
            try:
                body = await self._read_body(response)
            finally:
                # Closing a response that was not read to the end closes its connection, so
                # an early exit (too large, cancelled) never returns a half-read connection.
                await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # No connection was made, so nothing left: a plain unavailability, even for a
            # write. (Before the timeout clause: ConnectTimeout is a TimeoutException.)
            if not write and not isinstance(exc, httpx.ConnectError):
                raise TimeoutError(
                    f"{method} {url}: timed out in the httpx client ({exc})"
                ) from exc
            raise UpstreamUnavailable(f"{method} {url}: {_describe(exc)}") from exc
        except httpx.TimeoutException as exc:
            if write:
                raise OutcomeUnknown(
                    f"{method} {url}: timed out in the httpx client after sending ({exc})",
                    timed_out=True,
                ) from exc
            raise TimeoutError(f"{method} {url}: timed out in the httpx client ({exc})") from exc
        except (httpx.LocalProtocolError, UnicodeEncodeError) as exc:
            # A header value h11 refuses (CR/LF, a control character) or one outside ASCII,
            # the only values httpx accepts. The request cannot be made, whatever the
            # upstream's health: no breaker's failure. (Before RequestError: a subclass.)
            raise RequestNotSent(f"{method} {url}: request not sent: {_describe(exc)}") from exc
        except (httpx.RequestError, httpx.InvalidURL) as exc:
            if write and isinstance(exc, httpx.RequestError):
                # For a write the connection existed: the request may have been written.
                raise OutcomeUnknown(f"{method} {url}: {_describe(exc)}") from exc
            raise UpstreamUnavailable(f"{method} {url}: {_describe(exc)}") from exc
        return UpstreamResponse(
            status=response.status_code, headers=_lower_headers(response), body=body
        )

    async def _read_body(self, response: httpx.Response) -> bytes:
        limit = self._max_body_bytes
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise ResponseTooLarge(limit)
        chunks: list[bytes] = []
        size = 0
        # aiter_bytes yields decoded bytes: the limit applies to what would be buffered.
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        self._closed = True
        if self._owns_client:
            await self._client.aclose()  # idempotent in httpx


def _target_extension(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    if _PLAIN_TARGET.fullmatch(target):
        # httpcore puts this on the request line instead of httpx's normalised path.
        return {"target": target.encode("ascii")}
    if _DOT_SEGMENT.search(parts.path):
        raise UpstreamUnavailable(
            f"GET {url}: httpx would resolve the dot segments of this non-ASCII path; "
            "percent-encode the URL"
        )
    return {}


def _lower_headers(response: httpx.Response) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in response.headers.multi_items():  # names come lower-cased
        # A repeated field is one field with comma-joined values (RFC 9110, 5.3).
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
