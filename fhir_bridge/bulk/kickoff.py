"""Read a Bulk Data kick-off request (``$export`` at system, Patient or Group level) into the
job's parameters, refusing what cannot be exported as asked (400 naming the parameter) and
what the token may not read (403).

- ``Prefer: respond-async`` is required; ``_outputFormat`` is NDJSON (``application/fhir+ndjson``,
  ``application/ndjson`` or ``ndjson``) or absent;
- ``_type``: comma-separated resource types (default: every type the token may read); at
  Patient and Group level only types in the Patient compartment;
- ``_since``: an instant with a timezone; only resources changed after it;
- ``_typeFilter``: searches (``MedicationRequest?status=active``) with the /fhir search
  parameters, several as repeated parameters (or comma-separated); a resource of a filtered
  type is exported when it matches any of its type's filters.

The token must be a system token (SMART Backend Services): ``system/*.rs``, ``system/*.read``
or ``system/<Type>.rs`` for each type.
"""

from __future__ import annotations

import re
from typing import Any

from ..auth import current_principal
from ..errors import BadRequest, BridgeError, Forbidden, Issue
from ..facade import parameters
from ..facade.access import permits
from ..facade.match import date_range, restore_plus
from ..facade.query import parse_criteria

NDJSON = ("application/fhir+ndjson", "application/ndjson", "ndjson")
PARAMS = ("_type", "_since", "_typeFilter", "_outputFormat")
#: Types whose rows are not in the resource store (the audit trail has its own export path:
#: none; Subscriptions are the clients' own).
NOT_EXPORTED = frozenset({"AuditEvent"})
_FILTER_START = re.compile(r",(?=[A-Z][A-Za-z]+\?)")


def exportable(level: str) -> list[str]:
    specs = parameters.load()
    return sorted(t for t, spec in specs.items() if t not in NOT_EXPORTED and (
        level == "system" or spec.in_patient_compartment or t == "Patient"))


def _prefers_async(header: str | None) -> bool:
    return any(part.strip().lower() == "respond-async" for part in (header or "").split(","))


def parse_kickoff(level: str, args: list[tuple[str, str]], prefer: str | None,
                  group: str | None = None) -> dict[str, Any]:
    issues: list[Issue] = []
    if not _prefers_async(prefer):
        issues.append(Issue("Prefer", "a Bulk Data kick-off needs Prefer: respond-async"))
    allowed = exportable(level)
    types: list[str] = []
    since = None
    filters: list[str] = []
    for name, value in args:
        if name == "_outputFormat":
            if value not in NDJSON:
                issues.append(Issue(name, "only application/fhir+ndjson is written",
                                    "not-supported"))
        elif name == "_type":
            for rtype in (v.strip() for v in value.split(",") if v.strip()):
                if rtype not in allowed:
                    issues.append(Issue(name, f"{rtype} is not exported at {level} level",
                                        "not-supported"))
                elif rtype not in types:
                    types.append(rtype)
        elif name == "_since":
            text = restore_plus(value)
            bounds = date_range(text)
            if bounds is None or "T" not in text:
                issues.append(Issue(name, "must be an instant with a timezone"))
            else:
                since = bounds[0].isoformat()
        elif name == "_typeFilter":
            for text in _FILTER_START.split(value):
                try:
                    search = parse_criteria(text)
                except BridgeError as exc:
                    issues.extend(Issue(name, f"{text.partition('?')[0]}: {i.path} {i.message}")
                                  for i in exc.issues or [Issue(name, exc.message)])
                    continue
                if search.resource_type not in allowed:
                    issues.append(Issue(name, f"{search.resource_type} is not exported at "
                                        f"{level} level", "not-supported"))
                else:
                    filters.append(text)
        elif name not in ("_format", "_pretty"):
            issues.append(Issue(name, "a kick-off takes _type, _since, _typeFilter and "
                                "_outputFormat", "not-supported"))
    if issues:
        raise BadRequest("the export cannot be started as asked", issues)
    types = _permitted(types, allowed)
    filtered = {f.partition("?")[0] for f in filters}
    if not filtered <= set(types):
        raise BadRequest("the export cannot be started as asked", [Issue(
            "_typeFilter", f"filters {', '.join(sorted(filtered - set(types)))}, which _type "
            "leaves out")])
    return {"level": level, "group": group, "types": types, "since": since,
            "type_filters": filters}


def _permitted(types: list[str], allowed: list[str]) -> list[str]:
    """The requested types (or all the token may read), each readable with a system token."""
    principal = current_principal()
    if principal.context != "system":
        raise Forbidden("Bulk Data export needs a system token (SMART Backend Services, "
                        "system/*.rs)")
    if types:
        refused = [t for t in types if not (permits(principal, t, "r")
                                            and permits(principal, t, "s"))]
        if refused:
            raise Forbidden(f"the token's scopes do not allow reading {', '.join(refused)}")
        return types
    readable = [t for t in allowed if permits(principal, t, "r") and permits(principal, t, "s")]
    if not readable:
        raise Forbidden("the token's scopes allow reading none of the exported types")
    return readable
