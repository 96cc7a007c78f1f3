"""Who is calling: the verified token's subject, client, issuer, scopes and patient context.

The views ask the principal, never the token: ``current_principal().require("Observation",
"r")`` raises Forbidden (403) unless a scope grants it; ``sees_patient(patient_id)`` says
whether a record of that patient is visible (a patient-context token sees only its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import g

from ..errors import Forbidden, Unauthorized
from .scopes import INTERACTIONS, Scope

INTERACTION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@dataclass(frozen=True)
class Principal:
    """A verified caller.

    ``context`` is ``patient`` when any granted scope is a ``patient/`` scope: then every
    access, whatever scope grants it, is limited to ``patient_id`` (the token's ``patient``
    claim, required: the FHIR Patient id, e.g. ``pat-p01``, as SMART defines it).
    ``patient_record_id`` is that patient's internal record id (``p01``), resolved by the
    auth hook; None when the store holds no such Patient (then no record is visible).
    Otherwise ``user`` (any ``user/`` scope) or ``system``.
    """

    subject: str
    issuer: str
    scopes: tuple[Scope, ...]
    client_id: str | None = None
    patient_id: str | None = None
    patient_record_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.context == "patient" and not self.patient_id:
            raise Unauthorized("a token with patient/ scopes must carry a patient claim")

    @property
    def context(self) -> str:
        contexts = {s.context for s in self.scopes}
        for context in ("patient", "user", "system"):
            if context in contexts:
                return context
        return "none"

    def permits(self, resource_type: str, interaction: str) -> bool:
        """Whether a granted scope allows ``interaction`` (one of c r u d s) on the type."""
        if interaction not in INTERACTIONS or len(interaction) != 1:
            raise ValueError(f"interaction must be one of c, r, u, d, s, not {interaction!r}")
        return any(s.covers(resource_type, interaction) for s in self.scopes)

    def require(self, resource_type: str, *interactions: str) -> None:
        """Raise Forbidden unless every one of ``interactions`` is permitted on the type."""
        missing = [i for i in interactions if not self.permits(resource_type, i)]
        if missing:
            names = ", ".join(INTERACTION_NAMES[i] for i in missing)
            raise Forbidden(f"the token's scopes do not allow {names} on {resource_type}")

    def sees_patient(self, patient_id: str | None) -> bool:
        """True for system and user tokens; for a patient token only for its own patient
        (``patient_id`` is an internal record id; records that belong to no patient,
        ``None``, are not its patient's)."""
        if self.context != "patient":
            return True
        return patient_id is not None and patient_id == self.patient_record_id


#: What ``auth.enabled: false`` puts in place of a token: everything is allowed.
UNRESTRICTED = Principal(subject="anonymous", issuer="(auth disabled)",
                         scopes=(Scope("system", "*", frozenset(INTERACTIONS)),))


def current_principal() -> Principal:
    """The principal of this request (set by the auth hook); Unauthorized if there is none,
    so a view reached without authentication fails closed."""
    principal = g.get("principal")
    if principal is None:
        raise Unauthorized("authentication required", error=None)
    return principal
