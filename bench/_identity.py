"""The edge scenario's identity provider: one ES256 key, its JWKS (served by the bench
upstreams) and a token signed with it, as a signed-in client of web-bff sends it."""

from __future__ import annotations

import json
import time
from functools import cache

from joserfc import jwt
from joserfc.jwk import ECKey

ISSUER = "https://idp.bench.example/"
AUDIENCE = "web-bff"
KID = "bench-es256"


@cache
def _key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": KID, "use": "sig"}, private=True)


def jwks_json() -> str:
    """The public key set."""
    return json.dumps({"keys": [_key().as_dict(private=False)]})


@cache
def token() -> str:
    """A token for web-bff, valid for two hours (longer than any benchmark run)."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user", "iat": now, "exp": now + 7200}
    return jwt.encode({"alg": "ES256", "kid": KID}, claims, _key(), algorithms=["ES256"])
