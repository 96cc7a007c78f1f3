"""Who may see what through /fhir: the bearer token's scopes (fhir_bridge.auth) turned into a
search Viewer, and the audit context of the request."""

from __future__ import annotations

import sqlalchemy as sa
from flask import g

from ..auth.principal import current_principal
from ..errors import Forbidden
from . import repository
from .search import Viewer


#: Types a wildcard scope (``system/*.rs``) does not reach: the audit trail is read by
#: auditors holding a scope that names it (``user/AuditEvent.rs``).
NAMED_SCOPE_ONLY = frozenset({"AuditEvent"})


def permits(principal, resource_type: str, interaction: str) -> bool:
    if resource_type in NAMED_SCOPE_ONLY:
        return any(s.resource_type == resource_type and interaction in s.interactions
                   for s in principal.scopes)
    return principal.permits(resource_type, interaction)


def viewer_for(conn: sa.Connection, resource_type: str, interaction: str) -> Viewer:
    """Require the interaction on the type, and build the Viewer limiting what comes back."""
    principal = current_principal()
    if not permits(principal, resource_type, interaction):
        principal.require(resource_type, interaction)
        raise Forbidden(f"reading {resource_type} needs a scope that names it")
    patient_id = None
    if principal.context == "patient":
        if principal.patient_record_id is None:
            raise Forbidden("the token's patient is not known here")
        patient_id = principal.patient_record_id
    return Viewer(lambda rtype: permits(principal, rtype, "r"), patient_id)


def note_access(resources: list[repository.StoredResource], query: str | None = None) -> None:
    """Tell the audit hook which resources and patients this request touched."""
    audit = g.setdefault("audit_touched", {"entities": [], "patients": set(), "query": None})
    for stored in resources:
        audit["entities"].append(f"{stored.resource_type}/{stored.id}")
        if stored.patient_id is not None:
            audit["patients"].add(stored.patient_id)
    if query is not None:
        audit["query"] = query
