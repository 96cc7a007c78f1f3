"""``GET /.well-known/smart-configuration`` (also under /fhir): what this resource server
accepts. The bridge issues no tokens itself; when an issuer in config names its
``token_endpoint`` (and what it supports), that is advertised, otherwise the token endpoint is
left out (there is none to point at)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..errors import MappingError
from ..model import CONCEPTS
from .scopes import CONTEXTS

bp = Blueprint("smart", __name__)

#: Copied from an issuer's config when it names a token endpoint: facts about that server.
ISSUER_KEYS = ("token_endpoint", "grant_types_supported",
               "token_endpoint_auth_methods_supported",
               "token_endpoint_auth_signing_alg_values_supported", "jwks_uri",
               "authorization_endpoint")


def _resource_types() -> list[str]:
    mapper = current_app.extensions["fhir_bridge"].mapper
    types = set()
    for concept in CONCEPTS:
        try:
            types.add(mapper.resource_type(concept.name))
        except MappingError:
            continue  # a concept without a mapping has no resource type to scope
    return sorted(types)


@bp.get("/.well-known/smart-configuration")
@bp.get("/fhir/.well-known/smart-configuration")
def smart_configuration():
    state = current_app.extensions["fhir_bridge.auth"]
    doc: dict = {}
    issuer = next((i for i in state.settings.get("issuers") or [] if i.get("token_endpoint")),
                  None)
    if issuer is not None:
        doc["issuer"] = issuer["issuer"]
        doc.update({k: issuer[k] for k in ISSUER_KEYS if issuer.get(k) is not None})
        doc.setdefault("grant_types_supported", ["client_credentials"])
    else:
        doc["grant_types_supported"] = []
    scopes = [f"{context}/*.{p}" for context in CONTEXTS for p in ("cruds", "rs", "read",
                                                                       "write", "*")]
    scopes += [f"{context}/{t}.cruds" for context in CONTEXTS for t in _resource_types()]
    doc["scopes_supported"] = scopes
    doc["capabilities"] = ["permission-v1", "permission-v2", "permission-patient",
                           "permission-user", *(issuer or {}).get("capabilities", [])]
    return jsonify(doc)
