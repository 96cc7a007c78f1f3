"""``POST /auth/token`` (SMART Backend Services, ``token_server``) and ``GET /auth/jwks`` (the
public key its tokens are signed with). Both are outside /fhir and /api: no bearer token.
Errors are RFC 6749 JSON (``{"error": "invalid_client", "error_description": ...}``)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from ..facade.urls import fhir_base
from .token_server import TokenRequestError, TokenServer, root_url

bp = Blueprint("token_endpoint", __name__)
EXTENSION = "fhir_bridge.token_server"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def server() -> TokenServer | None:
    return current_app.extensions.get(EXTENSION)


def token_url() -> str:
    """This token endpoint's URL as the client addresses it (the assertion's ``aud``)."""
    return f"{root_url(fhir_base(current_app.extensions['fhir_bridge'].config))}/auth/token"


def jwks_url() -> str:
    return f"{root_url(fhir_base(current_app.extensions['fhir_bridge'].config))}/auth/jwks"


@bp.errorhandler(TokenRequestError)
def _oauth_error(exc: TokenRequestError):
    response = jsonify({"error": exc.error, "error_description": exc.message})
    response.status_code = exc.status
    response.headers.update(NO_STORE)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="fhir-bridge"'
    return response


@bp.post("/auth/token")
def token():
    tokens = server()
    if tokens is None:
        raise TokenRequestError("unsupported_grant_type", "this server issues no tokens")
    if request.mimetype != "application/x-www-form-urlencoded":
        raise TokenRequestError("invalid_request",
                                "send the token request as application/x-www-form-urlencoded")
    answer = tokens.issue(current_app.extensions["fhir_bridge"].engine, request.form.to_dict(),
                          token_url())
    response = jsonify(answer)
    response.headers.update(NO_STORE)
    return response


@bp.get("/auth/jwks")
def jwks():
    tokens = server()
    if tokens is None:
        return jsonify({"keys": []})
    return jsonify(tokens.key.jwks())
