"""Who may be served, and how often: bearer tokens verified, then the client's rate limits.

The edge's last filter (so its refusals carry the request id and CORS headers, and are counted
and logged like any answer), after routing like the whole edge, so it knows the route: an
aggregate route says whether it requires an identity, and names the aggregate whose own limits
apply.
The gateway's operational routes (health, readiness, metrics, admin) and the OpenAPI document
are never guarded: probes must not be limited, and the admin API has its own token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from litestar.types import Scope

from ..._declare import Aggregate, Mutation
from ..._guards import (
    Identity,
    IdentityUnavailable,
    InvalidToken,
    Network,
    RateLimits,
    TokenVerifier,
)
from ..._report import Problem
from ..._telemetry import Metrics
from ._exchange import Exchange
from ._filter import Filter, Reply, problem_reply

__all__ = ["AGGREGATE_OPT", "MUTATION_OPT", "OPERATIONAL_OPT", "Guard"]

#: ``opt`` key of a route handler: the aggregate it answers.
AGGREGATE_OPT = "bff_aggregate"
#: ``opt`` key of a write's route: its :class:`~bff_core.Mutation`. A write always needs an
#: identity, and is counted against the limits under the mutation's name.
MUTATION_OPT = "bff_mutation"
#: ``opt`` key of a route handler: a gateway route that is never guarded.
OPERATIONAL_OPT = "bff_operational"

_AUTHORIZATION = b"authorization"
#: What RFC 6750 allows in an ``error_description``: printable ASCII but ``"`` and ``\\``.
_UNQUOTABLE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True, slots=True)
class _Denied:
    """A request the guard answers itself: why (the metric's reason), and the answer."""

    reason: str
    problem: Problem
    headers: list[tuple[bytes, bytes]]


class Guard(Filter):
    """A present bearer token must be valid (401 otherwise, on every route), an aggregate that
    requires an identity answers 401 without one, and a client over its rate limit gets 429.
    The verified identity is left in the exchange for the route."""

    __slots__ = ("_challenge", "_limits", "_metrics", "_trusted_proxies", "_verifier")

    def __init__(
        self,
        verifier: TokenVerifier | None,
        limits: RateLimits | None,
        trusted_proxies: Sequence[Network],
        realm: str,
        metrics: Metrics | None = None,
    ) -> None:
        self._verifier = verifier
        self._limits = limits
        self._trusted_proxies = trusted_proxies
        self._challenge = f'Bearer realm="{realm}"'
        self._metrics = metrics

    async def on_admit(self, exchange: Exchange) -> Reply | None:
        scope = exchange.scope
        opt = scope["route_handler"].opt
        if opt.get(OPERATIONAL_OPT) or scope["path"].startswith("/schema"):
            return None
        aggregate: Aggregate | None = opt.get(AGGREGATE_OPT)
        mutation: Mutation | None = opt.get(MUTATION_OPT)
        verifier = self._verifier
        challenge = self._challenge
        found = await _identify(verifier, exchange, challenge) if verifier is not None else None
        denied = found if isinstance(found, _Denied) else None
        identity = found if isinstance(found, Identity) else None
        if identity is not None:
            exchange.identity = identity
        elif denied is None and (
            mutation is not None or (aggregate is not None and aggregate.requires_identity)
        ):
            denied = _unauthorized(scope, challenge, None, "this route needs a bearer token")
        if denied is None and self._limits is not None:
            name = mutation.name if mutation is not None else None
            name = aggregate.name if aggregate is not None else name
            denied = await _count(self._limits, scope, identity, name, self._trusted_proxies)
        if denied is None:
            return None
        if self._metrics is not None:
            self._metrics.refused(denied.reason)
        return problem_reply(denied.problem, denied.headers)


async def _identify(
    verifier: TokenVerifier, exchange: Exchange, challenge: str
) -> Identity | _Denied | None:
    """The caller the bearer token proves, ``None`` without a token, or the refusal of it."""
    authorization = exchange.request_headers.get(_AUTHORIZATION)
    scope = exchange.scope
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return _unauthorized(
            scope, challenge, "invalid_request", "the Authorization header is not 'Bearer <token>'"
        )
    try:
        return await verifier.verify(token.decode("ascii"))
    except UnicodeDecodeError:
        return _unauthorized(
            scope, challenge, "invalid_token", "the token has characters a JWT cannot have"
        )
    except InvalidToken as invalid:
        return _unauthorized(scope, challenge, "invalid_token", str(invalid))
    except IdentityUnavailable as unavailable:
        return _Denied(
            "identity_unavailable",
            Problem(
                type="urn:bff:problem:identity-unavailable",
                title="Service Unavailable",
                status=503,
                detail=f"tokens cannot be checked now: {unavailable}",
                instance=scope["path"],
            ),
            [(b"retry-after", b"5")],
        )


async def _count(
    limits: RateLimits,
    scope: Scope,
    identity: Identity | None,
    name: str | None,
    trusted_proxies: Sequence[Network],
) -> _Denied | None:
    """Count the request against its client's limits; the refusal when it is over one."""
    peer = scope.get("client")
    address = peer[0] if peer else None
    client = limits.client_of(identity, address, scope["headers"], trusted_proxies)
    refusal = await limits.check(client, name)
    if refusal is None:
        return None
    headers = [(b"retry-after", str(refusal.retry_after).encode())]
    if refusal.status != 429:  # failing closed: the limits could not be checked
        return _Denied(
            "rate_limits_unavailable",
            Problem(
                type="urn:bff:problem:rate-limits-unavailable",
                title="Service Unavailable",
                status=refusal.status,
                detail=refusal.detail,
                instance=scope["path"],
            ),
            headers,
        )
    headers += [
        (b"ratelimit-policy", limits.policy_header(name).encode()),
        (b"ratelimit", refusal.rate_limit.encode()),
    ]
    return _Denied(
        "rate_limited",
        Problem(
            type="urn:bff:problem:too-many-requests",
            title="Too Many Requests",
            status=429,
            detail=refusal.detail,
            instance=scope["path"],
        ),
        headers,
    )


def _unauthorized(scope: Scope, challenge: str, error: str | None, description: str) -> _Denied:
    """401 with the RFC 6750 challenge. Without any token there is no error code (RFC 6750,
    section 3: a request that lacks authentication gets the bare challenge)."""
    value = challenge
    if error is not None:
        value += f', error="{error}", error_description="{_UNQUOTABLE.sub("?", description)}"'
    return _Denied(
        "invalid_token" if error is not None else "missing_token",
        Problem(
            type="urn:bff:problem:unauthorized",
            title="Unauthorized",
            status=401,
            detail=description,
            instance=scope["path"],
        ),
        [(b"www-authenticate", value.encode("ascii"))],
    )
