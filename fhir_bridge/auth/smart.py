"""``GET /.well-known/smart-configuration`` (also under /fhir): SMART App Launch 2.x discovery.

With the bridge's own token endpoint (``token_server``, on by default) it names that endpoint,
its issuer and JWK Set, ``client_credentials`` with ``private_key_jwt`` (RS384, ES384): SMART
Backend Services. Turned off, an issuer in config that names its ``token_endpoint`` (and what
it supports) is advertised instead; with neither, no token endpoint is claimed. Scopes are
listed for every resource type the FHIR API serves.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..facade import parameters
from .scopes import CONTEXTS
from .token_endpoint import jwks_url, server, token_url
from .token_server import ASSERTION_ALGS

bp = Blueprint("smart", __name__)

#: Copied from an issuer's config when it names a token endpoint: facts about that server.
ISSUER_KEYS = ("token_endpoint", "grant_types_supported",
               "token_endpoint_auth_methods_supported",
               "token_endpoint_auth_signing_alg_values_supported", "jwks_uri",
               "authorization_endpoint")
CAPABILITIES = ["permission-v1", "permission-v2", "permission-patient", "permission-user"]


def served_types() -> list[str]:
    """Every resource type /fhir serves: the searchable ones and those other parts add
    (Subscription, ...)."""
    types = set(parameters.load())
    types |= {r["type"] for r in current_app.extensions.get("fhir_capability_resources", [])}
    return sorted(types)


def oauth_uris() -> dict[str, str] | None:
    """The token (and authorize) URLs for the CapabilityStatement's oauth-uris extension."""
    tokens = server()
    if tokens is not None:
        return {"token": token_url()}
    issuer = _external_issuer()
    if issuer is None:
        return None
    uris = {"token": issuer["token_endpoint"]}
    if issuer.get("authorization_endpoint"):
        uris["authorize"] = issuer["authorization_endpoint"]
    return uris


def _external_issuer() -> dict | None:
    state = current_app.extensions["fhir_bridge.auth"]
    return next((i for i in state.settings.get("issuers") or [] if i.get("token_endpoint")),
                None)


@bp.get("/.well-known/smart-configuration")
@bp.get("/fhir/.well-known/smart-configuration")
def smart_configuration():
    doc: dict = {}
    capabilities = list(CAPABILITIES)
    tokens = server()
    issuer = _external_issuer()
    if tokens is not None:
        doc.update({"issuer": tokens.issuer, "jwks_uri": jwks_url(),
                    "token_endpoint": token_url(),
                    "grant_types_supported": ["client_credentials"],
                    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                    "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS)})
        capabilities.append("client-confidential-asymmetric")
    elif issuer is not None:
        doc["issuer"] = issuer["issuer"]
        doc.update({k: issuer[k] for k in ISSUER_KEYS if issuer.get(k) is not None})
        doc.setdefault("grant_types_supported", ["client_credentials"])
        capabilities += [c for c in issuer.get("capabilities", []) if c not in capabilities]
    else:
        doc["grant_types_supported"] = []
    scopes = [f"{context}/*.{p}" for context in CONTEXTS for p in ("cruds", "rs", "read",
                                                                       "write", "*")]
    scopes += [f"{context}/{t}.{p}" for context in CONTEXTS for t in served_types()
               for p in ("cruds", "rs")]
    doc["scopes_supported"] = scopes
    doc["capabilities"] = capabilities
    doc["code_challenge_methods_supported"] = ["S256"]
    return jsonify(doc)
