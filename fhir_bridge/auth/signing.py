"""The bridge's own signing key, for the access tokens its token endpoint issues
(``token_endpoint``) and the public JWK Set served at ``/auth/jwks``.

The key is a PEM private key: RSA (tokens signed RS384) or EC on P-384 (ES384), read from the
file ``auth.token_server.signing_key_file`` or from the environment variable named by
``signing_key_env``. With neither, an RSA key made once per process (with a warning): its
tokens end with the process and are not shared between worker processes, which is enough for
development and tests, not for production.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SigningKey:
    private_key: Any
    alg: str
    kid: str

    @property
    def public_key(self) -> Any:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.RSAAlgorithm if self.alg == "RS384" \
            else jwt.algorithms.ECAlgorithm
        doc = json.loads(algorithm.to_jwk(self.public_key))
        doc.update(kid=self.kid, use="sig", alg=self.alg)
        return doc

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self.private_key, algorithm=self.alg,
                          headers={"kid": self.kid, "typ": "JWT"})


def _kid(public_key: Any) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:16]).rstrip(b"=").decode()


def from_pem(pem: bytes) -> SigningKey:
    """A signing key from a PEM private key; ValueError for anything but RSA or EC P-384."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the signing key is not an unencrypted PEM private key ({exc})") \
            from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ValueError("an RSA signing key needs at least 2048 bits")
        return SigningKey(key, "RS384", _kid(key.public_key()))
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return SigningKey(key, "ES384", _kid(key.public_key()))
    raise ValueError("the signing key must be RSA (RS384) or EC on P-384 (ES384)")


def load_signing_key(settings: Mapping[str, Any],
                     environ: Mapping[str, str] | None = None) -> SigningKey:
    """The key of config ``auth.token_server`` (ValueError when the configured one is bad)."""
    environ = os.environ if environ is None else environ
    path = settings.get("signing_key_file")
    if path:
        return from_pem(Path(path).read_bytes())
    env = settings.get("signing_key_env")
    if env and environ.get(env):
        return from_pem(environ[env].encode("utf-8"))
    log.warning("no signing key configured for the token endpoint: using a key made at "
                "start-up (its tokens end with this process)")
    return _process_key()


@functools.lru_cache(maxsize=1)
def _process_key() -> SigningKey:
    """One key per process (made once: every app the process builds shares it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(key, "RS384", _kid(key.public_key()))
