"""Who may be served, and how often: bearer tokens verified, then the client's rate limits.

Runs inside the edge middleware (so its refusals carry the request id, CORS headers and are
counted and logged like any answer) and after routing, so it knows the route: an aggregate
route says whether it requires an identity, and names the aggregate whose own limits apply.
The gateway's operational routes (health, readiness, metrics, admin) and the OpenAPI document
are never guarded: probes must not be limited, and the admin API has its own token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from .._declaration import Aggregate
from .._identity import Identity, IdentityUnavailable, InvalidToken, TokenVerifier
from .._metrics import Metrics
from .._ratelimit import Network, RateLimits, client_address, client_key
from .._report import Problem
from ._edge import _STATE_KEY, _header, _send_problem

#: ``opt`` key of a route handler: the aggregate it answers.
AGGREGATE_OPT = "bff_aggregate"
#: ``opt`` key of a route handler: a gateway route that is never guarded.
OPERATIONAL_OPT = "bff_operational"

_AUTHORIZATION = b"authorization"
_FORWARDED_FOR = b"x-forwarded-for"
#: What RFC 6750 allows in an ``error_description``: printable ASCII but ``"`` and ``\\``.
_UNQUOTABLE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def _guard(
    verifier: TokenVerifier | None,
    limits: RateLimits | None,
    trusted_proxies: Sequence[Network],
    realm: str,
    metrics: Metrics | None = None,
) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware: a present bearer token must be valid (401 otherwise, on every route), an
    aggregate that requires an identity answers 401 without one, and a client over its rate
    limit gets 429. The verified identity is left in the request's state for the route."""
    challenge = f'Bearer realm="{realm}"'

    def refused(reason: str) -> None:
        if metrics is not None:
            metrics.refused(reason)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guard(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            opt = scope["route_handler"].opt
            if opt.get(OPERATIONAL_OPT) or scope["path"].startswith("/schema"):
                await app(scope, receive, send)
                return
            aggregate: Aggregate | None = opt.get(AGGREGATE_OPT)
            identity: Identity | None = None
            if verifier is not None:
                authorization = _header(scope, _AUTHORIZATION)
                if authorization is not None:
                    scheme, _, token = authorization.partition(b" ")
                    token = token.strip()
                    if scheme.lower() != b"bearer" or not token:
                        refused("invalid_token")
                        await _unauthorized(
                            scope, send, challenge, "invalid_request",
                            "the Authorization header is not 'Bearer <token>'",
                        )  # fmt: skip
                        return
                    try:
                        identity = await verifier.verify(token.decode("ascii"))
                    except UnicodeDecodeError:
                        refused("invalid_token")
                        await _unauthorized(
                            scope, send, challenge, "invalid_token",
                            "the token has characters a JWT cannot have",
                        )  # fmt: skip
                        return
                    except InvalidToken as invalid:
                        refused("invalid_token")
                        await _unauthorized(scope, send, challenge, "invalid_token", str(invalid))
                        return
                    except IdentityUnavailable as unavailable:
                        refused("identity_unavailable")
                        await _send_problem(
                            Problem(
                                type="urn:bff:problem:identity-unavailable",
                                title="Service Unavailable",
                                status=503,
                                detail=f"tokens cannot be checked now: {unavailable}",
                                instance=scope["path"],
                            ),
                            [(b"retry-after", b"5")],
                            send,
                        )
                        return
                    scope["state"][_STATE_KEY]["identity"] = identity
            if identity is None and aggregate is not None and aggregate.requires_identity:
                refused("missing_token")
                await _unauthorized(scope, send, challenge, None, "this route needs a bearer token")
                return
            if limits is not None:
                peer = scope.get("client")
                address = client_address(
                    peer[0] if peer else None,
                    (v for k, v in scope["headers"] if k == _FORWARDED_FOR),
                    trusted_proxies,
                )
                key = client_key(identity.subject if identity else None, address)
                name = aggregate.name if aggregate is not None else None
                refusal = await limits.check(key, name)
                if refusal is not None:
                    refused("rate_limited" if refusal.status == 429 else "rate_limits_unavailable")
                    headers = [(b"retry-after", str(refusal.retry_after).encode())]
                    if refusal.status == 429:
                        headers += [
                            (b"ratelimit-policy", limits.policy_header(name).encode()),
                            (b"ratelimit", refusal.rate_limit.encode()),
                        ]
                    await _send_problem(
                        Problem(
                            type="urn:bff:problem:too-many-requests"
                            if refusal.status == 429
                            else "urn:bff:problem:rate-limits-unavailable",
                            title="Too Many Requests"
                            if refusal.status == 429
                            else "Service Unavailable",
                            status=refusal.status,
                            detail=refusal.detail,
                            instance=scope["path"],
                        ),
                        headers,
                        send,
                    )
                    return
            await app(scope, receive, send)

        return guard

    return middleware


async def _unauthorized(
    scope: Scope, send: Send, challenge: str, error: str | None, description: str
) -> None:
    """401 with the RFC 6750 challenge. Without any token there is no error code (RFC 6750,
    section 3: a request that lacks authentication gets the bare challenge)."""
    value = challenge
    if error is not None:
        value += f', error="{error}", error_description="{_UNQUOTABLE.sub("?", description)}"'
    await _send_problem(
        Problem(
            type="urn:bff:problem:unauthorized",
            title="Unauthorized",
            status=401,
            detail=description,
            instance=scope["path"],
        ),
        [(b"www-authenticate", value.encode("ascii"))],
        send,
    )
