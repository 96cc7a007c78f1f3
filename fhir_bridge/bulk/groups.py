"""The Groups a Group-level export names, served as Group resources at /fhir/Group:

- ``all-patients``: every patient the bridge manages;
- ``panel-<Practitioner id>``: the patients of the care teams that practitioner is a member of
  (a clinician's panel), one Group per practitioner named in a care team.

Groups are derived from the care teams when asked, never stored, so they are always current.
"""

from __future__ import annotations

from typing import Any, Iterator

import sqlalchemy as sa

from ..fhir import jsonio
from ..store import tables as t

R = t.resources
ALL_PATIENTS = "all-patients"
PANEL = "panel-"


def _care_teams(conn: sa.Connection) -> Iterator[tuple[str | None, dict]]:
    rows = conn.execute(sa.select(R.c.patient_id, R.c.content).where(
        R.c.resource_type == "CareTeam", R.c.deleted.is_(False)).order_by(R.c.id))
    for row in rows:
        yield row.patient_id, jsonio.loads(row.content)


def _members(team: dict) -> set[str]:
    """FHIR ids of the Practitioners a CareTeam lists as participants."""
    out = set()
    for participant in team.get("participant") or []:
        ref = ((participant or {}).get("member") or {}).get("reference", "")
        if ref.startswith("Practitioner/"):
            out.add(ref.removeprefix("Practitioner/"))
    return out


def panels(conn: sa.Connection) -> dict[str, set[str]]:
    """Practitioner FHIR id -> internal ids of the patients of its care teams."""
    out: dict[str, set[str]] = {}
    for patient_id, team in _care_teams(conn):
        if patient_id is None:
            continue
        for practitioner in _members(team):
            out.setdefault(practitioner, set()).add(patient_id)
    return out


def exists(conn: sa.Connection, group_id: str) -> bool:
    if group_id == ALL_PATIENTS:
        return True
    return group_id.startswith(PANEL) and group_id.removeprefix(PANEL) in panels(conn)


def patient_ids(conn: sa.Connection, params: dict[str, Any]) -> list[str] | None:
    """The internal patient ids an export is limited to; None for no limit (system level,
    Patient level and the all-patients group: every patient)."""
    group_id = params.get("group")
    if params.get("level") != "group" or group_id == ALL_PATIENTS:
        return None
    return sorted(panels(conn).get(group_id.removeprefix(PANEL), set()))


def _patient_refs(conn: sa.Connection, internal_ids: set[str]) -> list[str]:
    if not internal_ids:
        return []
    rows = conn.execute(sa.select(R.c.id).where(
        R.c.resource_type == "Patient", R.c.deleted.is_(False),
        R.c.patient_id.in_(sorted(internal_ids))).order_by(R.c.id))
    return [f"Patient/{rid}" for rid in rows.scalars()]


def _count_patients(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(R).where(
        R.c.resource_type == "Patient", R.c.deleted.is_(False))).scalar()


def group_resource(conn: sa.Connection, group_id: str,
                   panel: set[str] | None = None) -> dict:
    if group_id == ALL_PATIENTS:
        return {"resourceType": "Group", "id": ALL_PATIENTS, "type": "person", "actual": True,
                "name": "All managed patients", "quantity": _count_patients(conn)}
    members = _patient_refs(conn, panel if panel is not None
                            else panels(conn).get(group_id.removeprefix(PANEL), set()))
    practitioner = group_id.removeprefix(PANEL)
    doc: dict = {"resourceType": "Group", "id": group_id, "type": "person", "actual": True,
                 "name": f"Patients of the care teams of Practitioner/{practitioner}",
                 "managingEntity": {"reference": f"Practitioner/{practitioner}"},
                 "quantity": len(members)}
    if members:
        doc["member"] = [{"entity": {"reference": ref}} for ref in members]
    return doc


def all_groups(conn: sa.Connection) -> list[dict]:
    out = [group_resource(conn, ALL_PATIENTS)]
    for practitioner, patients in sorted(panels(conn).items()):
        out.append(group_resource(conn, f"{PANEL}{practitioner}", patients))
    return out
