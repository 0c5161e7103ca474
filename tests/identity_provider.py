"""A real identity provider for the tests: a JWKS endpoint on 127.0.0.1 whose keys can be
rotated while it runs (and a URL that redirects to it), and the private keys to mint tokens
with.

The server is a plain ``ThreadingHTTPServer`` in a thread, so synchronous and asynchronous
tests alike can use it; it counts the key set's fetches and can be told to fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

ISSUER = "https://idp.test.example/"
WEB_AUDIENCE = "web-bff"
MOBILE_AUDIENCE = "mobile-bff"
AnyKey = RSAKey | ECKey | OKPKey


def new_key(alg: str, kid: str) -> AnyKey:
    """A private signing key for ``alg`` (RS256, ES256 or EdDSA)."""
    if alg.startswith("RS"):
        return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"}, private=True)
    if alg.startswith("ES"):
        return ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig"}, private=True)
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid, "use": "sig"}, private=True)


@dataclass
class IdentityProvider:
    """The keys it publishes, and its JWKS endpoint's behaviour."""

    url: str = ""
    #: a URL that answers 302 with the key set's URL as its Location
    redirecting_url: str = ""
    keys: dict[str, tuple[str, AnyKey]] = field(default_factory=dict)  # kid -> (alg, key)
    fetches: int = 0
    #: answer every fetch with this status instead of the key set (0: answer normally)
    failing: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_key(self, alg: str, kid: str) -> AnyKey:
        key = new_key(alg, kid)
        with self.lock:
            self.keys[kid] = (alg, key)
        return key

    def remove_key(self, kid: str) -> None:
        with self.lock:
            del self.keys[kid]

    def jwks(self) -> dict[str, Any]:
        with self.lock:
            return {"keys": [key.as_dict(private=False) for _, key in self.keys.values()]}

    def mint(
        self,
        kid: str,
        *,
        subject: str = "user-1",
        audience: str = WEB_AUDIENCE,
        issuer: str = ISSUER,
        lifetime: float = 300,
        not_before: float | None = None,
        typ: str | None = None,
        **claims: Any,
    ) -> str:
        """A token signed with the key ``kid``, valid for ``lifetime`` seconds from now; its
        header says ``typ`` when given."""
        alg, key = self.keys[kid]
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "exp": int(now + lifetime),
            **claims,
        }
        if not_before is not None:
            body["nbf"] = int(not_before)
        header = {"alg": alg, "kid": kid, **({} if typ is None else {"typ": typ})}
        return jwt.encode(header, body, key, algorithms=[alg])

    def sign(self, kid: str, header: bytes, payload: bytes) -> str:
        """Whatever bytes as the header and the payload, well signed with the key ``kid``: what
        a verifier makes of a token only its provider could have issued."""
        alg, key = self.keys[kid]
        signing_input = f"{_b64_bytes(header)}.{_b64_bytes(payload)}"
        signature = JWSRegistry.algorithms[alg].sign(signing_input.encode(), key)
        return f"{signing_input}.{_b64_bytes(signature)}"


def unsigned_token(claims: dict[str, Any]) -> str:
    """``alg: none``: a token with no signature at all."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def hs256_with_public_key(provider: IdentityProvider, kid: str, claims: dict[str, Any]) -> str:
    """The classic confusion attack: HS256 with the provider's *public* key as the secret."""
    _, key = provider.keys[kid]
    public_pem = key.as_pem(private=False)
    signing_input = f"{_b64({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{_b64(claims)}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64_bytes(signature)}"


def claims_for(audience: str = WEB_AUDIENCE, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": audience, "sub": "user-1", "iat": now, "exp": now + 300, **extra}


def _b64(value: dict[str, Any]) -> str:
    return _b64_bytes(json.dumps(value).encode())


def _b64_bytes(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@contextmanager
def run_identity_provider() -> Iterator[IdentityProvider]:
    """The provider on a free loopback port, its key set at ``/.well-known/jwks.json``."""
    provider = IdentityProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("location", provider.url)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            with provider.lock:
                provider.fetches += 1
                failing = provider.failing
            if failing:
                self.send_error(failing)
                return
            body = json.dumps(provider.jwks()).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="identity-provider", daemon=True)
    thread.start()
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    provider.redirecting_url = f"http://127.0.0.1:{server.server_address[1]}/redirect"
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
