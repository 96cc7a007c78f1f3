"""The request hook: every request under /fhir and /api/ needs a valid bearer token, except
the public discovery and health endpoints. It sets ``flask.g.principal``; the records API's
scope checks (``api_rules``) run right after, before any body is read."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Mapping

import sqlalchemy as sa
from flask import Flask, current_app, g, request

from ..errors import Unauthorized
from ..store import tables as t
from . import api_rules
from .principal import UNRESTRICTED, Principal
from .scopes import ScopeError, parse_scopes
from .tokens import TokenVerifier, verifier_from_config

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/fhir/metadata", "/.well-known/smart-configuration",
                          "/fhir/.well-known/smart-configuration", "/healthz",
                          "/api/v1/openapi.json"})
EXTENSION = "fhir_bridge.auth"


@dataclass
class AuthState:
    enabled: bool
    verifier: TokenVerifier
    settings: Mapping[str, Any]


def is_protected(path: str) -> bool:
    if path in PUBLIC_PATHS:
        return False
    return path in ("/fhir", "/api") or path.startswith(("/fhir/", "/api/"))


def bearer_token(header: str | None) -> str:
    if header is None or not header.strip():
        raise Unauthorized("authentication required: send Authorization: Bearer <token>",
                           error=None)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    try:
        scopes = parse_scopes(claims.get("scope", claims.get("scp")))
    except ScopeError as exc:
        raise Unauthorized(f"the token's scope claim is invalid: {exc}") from None
    client_id = claims.get("client_id", claims.get("azp"))
    client_id = client_id if isinstance(client_id, str) and client_id else None
    subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    subject = subject or client_id
    if not subject:
        raise Unauthorized("the token names no subject (sub) or client (client_id)")
    patient = claims.get("patient")
    if patient is not None and (not isinstance(patient, str) or not patient):
        raise Unauthorized("the token's patient claim must be a resource id")
    return Principal(subject=subject, issuer=claims["iss"], scopes=scopes, client_id=client_id,
                     patient_id=patient, claims=dict(claims))


def authenticate() -> None:
    """before_request: verify the token of a protected request and check its scopes."""
    if not is_protected(request.path):
        return
    state: AuthState = current_app.extensions[EXTENSION]
    if not state.enabled:
        g.principal = UNRESTRICTED
        return
    token = bearer_token(request.headers.get("Authorization"))
    principal = principal_from_claims(state.verifier.verify(token))
    if principal.patient_id is not None:
        principal = replace(principal, patient_record_id=patient_record_id(principal.patient_id))
    g.principal = principal
    api_rules.check_request(g.principal)


def patient_record_id(fhir_patient_id: str) -> str | None:
    """The internal id of the patient a token's ``patient`` claim (a FHIR Patient id) names."""
    engine = current_app.extensions["fhir_bridge"].engine
    with engine.connect() as conn:
        return conn.execute(sa.select(t.resources.c.patient_id).where(
            t.resources.c.resource_type == "Patient",
            t.resources.c.id == fhir_patient_id)).scalar()


def install(app: Flask, settings: Mapping[str, Any]) -> None:
    """Register the hook, the SMART discovery document and the token endpoint (called by
    create_app). The token endpoint's tokens are trusted like those of a configured issuer."""
    from . import smart, token_endpoint
    from .signing import load_signing_key
    from .token_server import server_from_config

    auth = dict(settings.get("auth") or {})
    enabled = auth.get("enabled", True) is not False  # off only when explicitly false
    if not enabled:
        log.warning("auth.enabled is false: every request is allowed without a token")
    verifier = verifier_from_config(auth)
    server_settings = auth.get("token_server") or {}
    if enabled and server_settings.get("enabled", True) is not False:
        try:
            server = server_from_config(settings, load_signing_key(server_settings))
        except (ValueError, OSError) as exc:
            log.warning("token endpoint off: %s", exc)
        else:
            verifier.trust(server.trusted_issuer())
            app.extensions[token_endpoint.EXTENSION] = server
    app.extensions[EXTENSION] = AuthState(enabled, verifier, auth)
    app.before_request(authenticate)
    app.register_blueprint(smart.bp)
    app.register_blueprint(token_endpoint.bp)
