"""Mint HS256 tokens for the development issuer (``fhir-bridge token issue``, the demo, tests).

Only an issuer configured with ``secret_env`` can be minted for; its secret comes from that
environment variable. Production tokens come from a real authorization server (``jwks_url``).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, Iterable, Mapping

import jwt

from .scopes import parse_scopes
from .tokens import MIN_SECRET_BYTES


def dev_issuer(auth_settings: Mapping[str, Any], name: str | None = None) -> Mapping[str, Any]:
    """The configured secret issuer (the one named ``name``, or the first); ValueError if none."""
    for entry in auth_settings.get("issuers") or []:
        if entry.get("secret_env") and (name is None or entry.get("issuer") == name):
            return entry
    raise ValueError(f"no issuer {name!r} with secret_env in config auth.issuers" if name
                     else "no issuer with secret_env in config auth.issuers")


def mint_token(secret: str, issuer: str, audience: str, scopes: Iterable[str],
               subject: str = "fhir-bridge-dev", patient: str | None = None,
               ttl_seconds: int = 300, client_id: str | None = None,
               now: float | None = None, **extra: Any) -> str:
    """A signed HS256 access token; the scopes are checked first (ScopeError if malformed)."""
    scope = " ".join(scopes)
    parse_scopes(scope)
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iss": issuer, "aud": audience, "sub": subject,
                              "client_id": client_id or subject, "scope": scope,
                              "iat": issued, "nbf": issued, "exp": issued + int(ttl_seconds),
                              "jti": str(uuid.uuid4())}
    if patient is not None:
        claims["patient"] = patient
    claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")


def mint_dev_token(auth_settings: Mapping[str, Any], scopes: Iterable[str],
                   environ: Mapping[str, str] | None = None, issuer: str | None = None,
                   ttl_seconds: int | None = None, **kwargs: Any) -> str:
    """A token for the configured development issuer, signed with the secret from its
    environment variable (ValueError when it is unset)."""
    environ = os.environ if environ is None else environ
    entry = dev_issuer(auth_settings, issuer)
    secret = environ.get(entry["secret_env"])
    if not secret:
        raise ValueError(f"environment variable {entry['secret_env']} is not set: it holds the "
                         f"shared secret of issuer {entry['issuer']}")
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ValueError(f"{entry['secret_env']} must hold at least {MIN_SECRET_BYTES} bytes")
    scopes = list(scopes)
    if kwargs.get("patient") is None and any(s.context == "patient"
                                             for s in parse_scopes(" ".join(scopes))):
        raise ValueError("patient/ scopes need a patient (--patient ID)")
    ttl = ttl_seconds if ttl_seconds is not None else int(auth_settings.get("token_ttl_seconds",
                                                                            300))
    return mint_token(secret, entry["issuer"], entry["audience"], scopes, ttl_seconds=ttl,
                      **kwargs)
