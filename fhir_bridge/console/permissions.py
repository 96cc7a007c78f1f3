"""What each console page and action needs, in SMART scopes: an operator signs in with a
bearer token, and its scopes decide what the console shows and allows (docs/console.md).

Sync and subscription state names resources of every type, so those pages need read access
to all types (``system/*.rs``, ``user/*.rs``, v1 ``*.read``); acting on it (retrying dead
letters, resolving conflicts) writes records of every type, so it needs update on all types.
Patient-context tokens cannot sign in: the console spans patients."""

from __future__ import annotations

from ..auth.principal import Principal

#: permission -> (resource type, interactions) every one of which the scopes must grant.
PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    "sync.view": [("*", "rs")],
    "sync.act": [("*", "rsu")],
    "subscriptions.view": [("Subscription", "rs")],
    "safety.view": [("Flag", "rs"), ("DetectedIssue", "rs")],
    "audit.view": [("AuditEvent", "rs")],
    "patients.view": [("Patient", "r"), ("MedicationRequest", "rs"), ("Observation", "rs"),
                      ("CarePlan", "rs"), ("CareTeam", "rs")],
}


def granted(principal: Principal, permission: str) -> bool:
    for resource_type, interactions in PERMISSIONS[permission]:
        for interaction in interactions:
            if resource_type == "*":
                if not any(s.resource_type == "*" and interaction in s.interactions
                           for s in principal.scopes):
                    return False
            elif not principal.permits(resource_type, interaction):
                return False
    return True


def all_granted(principal: Principal) -> set[str]:
    return {name for name in PERMISSIONS if granted(principal, name)}
