"""Bearer-token auth (SMART scopes) for every request under /fhir and /api.

``guard`` verifies the token (``tokens``) and sets ``flask.g.principal`` (``principal``);
``api_rules`` holds the internal API's scope rules, ``compartment`` the patient-context checks;
``smart`` serves the SMART discovery document; ``mint`` makes development tokens.

Views call ``current_principal().require(resource_type, "r")`` and
``current_principal().sees_patient(patient_id)``.
"""

from .guard import install
from .principal import Principal, current_principal
from .scopes import Scope, ScopeError, parse_scope, parse_scopes

__all__ = ["Principal", "Scope", "ScopeError", "current_principal", "install", "parse_scope",
           "parse_scopes"]
