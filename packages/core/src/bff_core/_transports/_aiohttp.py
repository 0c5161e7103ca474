"""The default transport, built on aiohttp's client.

Why aiohttp is the default: it is actively maintained, already a dependency of bff-core, fast
enough on one core (see ``docs/decisions/0001-http-client.md``), and its URL type can carry a
request target verbatim (``yarl.URL(url, encoded=True)``), so a ``%2F`` or ``%2E%2E`` the engine
encoded into a path segment reaches the upstream byte for byte and is never resolved away.

Trade-offs:

- The session is bound to the event loop it was created in, so the transport creates it lazily,
  on the first ``get`` inside the running loop (constructing the transport needs no loop).
- aiohttp itself sends a ``GET`` again, once, when the connection is closed before an answer
  (``ServerDisconnectedError``), whether the connection was reused or fresh; only the second
  drop is reported. That protects against keep-alive races, but the resend is invisible to the
  gateway's retry budget and breaker (``_upstream``), and carries the first request's
  deadline header.
- The owned session sets no client timeouts: the engine imposes deadlines by cancelling the
  task. A caller-supplied session keeps its own timeouts; when one fires the transport raises
  the builtin :class:`TimeoutError`, which the engine reports as ``timeout``.
- Redirects are never followed: a 3xx is returned like any other status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from .._errors import OutcomeUnknown, RequestNotSent, ResponseTooLarge, UpstreamUnavailable
from ._base import DEFAULT_MAX_BODY_BYTES, UpstreamResponse, WriteMethod, json_headers

__all__ = ["AiohttpTransport"]

#: Connections per upstream host. There is deliberately no global cap: one slow upstream that
#: uses up its connections must not make calls to the other upstreams wait for a free slot.
DEFAULT_POOL_SIZE = 100

#: An idle keep-alive connection is closed after this many seconds (aiohttp's default is 15).
_KEEPALIVE_SECONDS = 30.0

_NO_TIMEOUTS = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None)

#: A URL that can go on the request line as is: printable ASCII, no spaces.
_PLAIN_URL = re.compile(r"[!-~]+")
#: A ``.`` or ``..`` path segment, literal or percent-encoded (as URL parsers decode them).
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)


class AiohttpTransport:
    """A :class:`~bff_core.Transport` on an :class:`aiohttp.ClientSession`.

    Args:
        session: a session to send requests through. The caller keeps ownership: ``aclose`` does
            not close it, and its timeouts, default headers and cookie jar apply. Without one
            the transport creates its own on first use (keep-alive, no cookie jar, no client
            timeouts, at most ``pool_size`` connections per upstream host).
        max_body_bytes: longer bodies raise :class:`~bff_core.ResponseTooLarge`.
        pool_size: connections per upstream host of the session the transport creates.

    ``send`` (a write) raises :class:`~bff_core.UpstreamUnavailable` only when no connection
    was made, and :class:`~bff_core.OutcomeUnknown` when one was lost (or a session timeout
    fired) once the request may have been written.

    ``get`` sends the URL verbatim: it must already be percent-encoded (ASCII). Failures to
    connect or a connection lost before the whole response arrived raise
    :class:`~bff_core.UpstreamUnavailable`; a timeout configured on a caller's session raises
    the builtin :class:`TimeoutError`.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must not be negative, got {max_body_bytes!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size!r}")
        self._session = session
        self._owns_session = session is None
        self._max_body_bytes = max_body_bytes
        self._pool_size = pool_size
        self._closed = False

    def _open_session(self) -> aiohttp.ClientSession:
        # Called from ``get``, i.e. inside the running loop the session will be bound to.
        # Creating it is synchronous, so concurrent first calls cannot create two sessions.
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=self._pool_size,
            keepalive_timeout=_KEEPALIVE_SECONDS,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # Upstream cookies must never leak from one end user's request into another's.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=_NO_TIMEOUTS,
            raise_for_status=False,
            # Proxy settings from the environment would silently reroute upstream traffic.
            trust_env=False,
        )
        return self._session

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
        self, method: str, url: str, headers: Mapping[str, str], data: bytes | None
    ) -> UpstreamResponse:
        if self._closed:
            raise UpstreamUnavailable("transport is closed")
        session = self._session if self._session is not None else self._open_session()
        write = data is not None
        try:
            async with session.request(
                method, _to_yarl(url), headers=headers, data=data, allow_redirects=False
            ) as response:
                body = await self._read_body(response)
                return UpstreamResponse(
                    status=response.status, headers=_lower_headers(response), body=body
                )
        except TimeoutError as exc:
            # Only a caller's session has timeouts; aiohttp's ServerTimeoutError is also a
            # ClientError, so this clause must come first to be reported as a timeout.
            if write:
                raise OutcomeUnknown(
                    f"{method} {url}: timed out in the aiohttp session after sending",
                    timed_out=True,
                ) from exc
            raise TimeoutError(f"{method} {url}: timed out in the aiohttp session") from exc
        except aiohttp.ClientConnectorError as exc:
            # No connection was made (refused, unreachable, DNS): nothing left. Before the
            # generic clause: a ClientConnectorError is a ClientError.
            raise UpstreamUnavailable(f"{method} {url}: {_describe(exc)}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            # aiohttp wraps socket errors, but be safe. For a write the connection existed,
            # so the request may have been written before it was lost.
            error = OutcomeUnknown if write else UpstreamUnavailable
            raise error(f"{method} {url}: {_describe(exc)}") from exc
        except ValueError as exc:
            # A header aiohttp refuses to send (CR/LF, a control character: header injection).
            # The request cannot be made, whatever the upstream's health: no breaker's failure.
            raise RequestNotSent(f"{method} {url}: request not sent: {_describe(exc)}") from exc

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        # Leaving ``async with`` on a response whose body was not read to the end closes the
        # connection instead of returning it to the pool, so bailing out here (too large,
        # cancelled) never leaves a half-read connection for the next request.
        limit = self._max_body_bytes
        length = response.content_length
        if length is not None and length > limit:
            raise ResponseTooLarge(limit)
        if length is not None and "Content-Encoding" not in response.headers:
            # Fast path: aiohttp reads exactly Content-Length bytes, already checked.
            return await response.read()
        # Chunked, or compressed: the decoded size is only known by counting.
        chunks: list[bytes] = []
        size = 0
        while chunk := await response.content.readany():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()  # idempotent in aiohttp


def _to_yarl(url: str) -> URL:
    if _PLAIN_URL.fullmatch(url):
        # encoded=True: yarl takes the string as already encoded and puts its path and query
        # on the request line as is. Without it, yarl resolves "." and ".." segments,
        # percent-encoded ones included.
        return URL(url, encoded=True)
    # Not ASCII (or has spaces): sent raw, it would be an invalid request line, so let yarl
    # percent-encode it; refuse it if that would also resolve dot segments.
    if _DOT_SEGMENT.search(urlsplit(url).path):
        raise UpstreamUnavailable(
            f"GET {url}: yarl would resolve the dot segments of this non-ASCII path; "
            "percent-encode the URL"
        )
    try:
        return URL(url)
    except ValueError as exc:
        raise UpstreamUnavailable(f"GET {url}: invalid URL ({exc})") from exc


def _lower_headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        # A repeated field is one field with comma-joined values (RFC 9110, 5.3).
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
