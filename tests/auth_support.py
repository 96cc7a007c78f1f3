"""Tokens for the auth tests: the development issuer's HS256 tokens, and RSA/EC keys and
JWK Sets for asymmetric issuers served from 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_bridge.auth.mint import mint_token

from .conftest import TEST_SECRET

DEV_ISSUER = "fhir-bridge-dev"
AUDIENCE = "http://127.0.0.1:8080/fhir"


def dev_token(*scopes: str, secret: str = TEST_SECRET, issuer: str = DEV_ISSUER,
              audience: str = AUDIENCE, ttl: int = 600, now: float | None = None,
              **claims) -> str:
    return mint_token(secret, issuer, audience, scopes, ttl_seconds=ttl, now=now, **claims)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unsigned_token(*scopes: str) -> str:
    """alg none: a token anyone can make."""
    def part(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return part({"alg": "none", "typ": "JWT"}) + "." + part({
        "iss": DEV_ISSUER, "aud": AUDIENCE, "sub": "x", "scope": " ".join(scopes),
        "iat": now, "exp": now + 600}) + "."


def bad_tokens(*scopes: str) -> dict[str, str]:
    """Tokens that carry ``scopes`` but must each be refused with 401."""
    now = time.time()
    return {
        "expired": dev_token(*scopes, now=now - 3600, ttl=600),
        "bad signature": dev_token(*scopes, secret="another-secret-of-enough-length-0123456789"),
        "unknown issuer": dev_token(*scopes, issuer="https://evil.example"),
        "alg none": unsigned_token(*scopes),
        "wrong audience": dev_token(*scopes, audience="https://other-server.example/fhir"),
        "not yet valid": dev_token(*scopes, now=now + 3600),
        "garbage": "not.a.jwt",
    }


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key(curve=ec.SECP256R1):
    return ec.generate_private_key(curve())


def jwk(private_key, kid: str, alg: str | None = None) -> dict:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) \
        else jwt.algorithms.ECAlgorithm
    doc = json.loads(algorithm.to_jwk(private_key.public_key()))
    doc.update(kid=kid, use="sig")
    if alg:
        doc["alg"] = alg
    return doc


def signed(private_key, alg: str, kid: str | None, issuer: str, audience: str = AUDIENCE,
           scopes: tuple[str, ...] = ("system/*.cruds",), ttl: int = 600, **claims) -> str:
    now = int(time.time())
    body = {"iss": issuer, "aud": audience, "sub": "backend-client", "client_id": "backend",
            "scope": " ".join(scopes), "iat": now, "exp": now + ttl, **claims}
    return jwt.encode(body, private_key, algorithm=alg, headers={"kid": kid} if kid else None)


class JwksServer:
    """A JWK Set served over HTTP on 127.0.0.1 (port chosen by the system); counts fetches."""

    def __init__(self, keys: list[dict]):
        self.keys = keys
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                owner.fetches += 1
                body = json.dumps({"keys": owner.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    @contextmanager
    def running(self):
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)
