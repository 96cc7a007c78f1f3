"""What a foreign resource leaves out that an internal record needs, filled in the same way
each time it is read (so the record does not change when the same resource is read again).
Each filled field is a note: (FHIRPath, reason). The sender's resource stays as sent."""

from __future__ import annotations

from typing import Callable

Note = tuple[str, str]


def _care_plan(record: dict, resource: dict) -> list[Note]:
    notes = []
    for index, activity in enumerate(record.get("activities") or []):
        if not activity.get("id"):
            activity["id"] = f"activity-{index + 1}"  # R4 activities need no id; records do
    if not record.get("title"):
        record["title"] = next((c.get("text") for c in resource.get("category") or []
                                if c.get("text")), None) or "Care plan"
        notes.append(("CarePlan.title", f"absent: the record is titled {record['title']!r}"))
    return notes


def _care_team(record: dict, resource: dict) -> list[Note]:
    """A participant the record cannot hold (a role or member the bridge does not know) stays
    in the resource as sent; the record's team is the others."""
    notes, kept = [], []
    for index, participant in enumerate(record.get("participants") or []):
        missing = [f for f in ("role", "member") if not participant.get(f)]
        if missing:
            notes.append((f"CareTeam.participant[{index}]",
                          f"no {' or '.join(missing)} the bridge can read: kept as sent, not a "
                          "member of the record's team"))
        else:
            kept.append(participant)
    if notes and kept:
        record["participants"] = kept
    return notes if kept else []


FIXUPS: dict[str, Callable[[dict, dict], list[Note]]] = {"care-plan": _care_plan,
                                                         "care-team": _care_team}


def fix_record(concept: str, record: dict, resource: dict) -> list[Note]:
    fix = FIXUPS.get(concept)
    return fix(record, resource) if fix else []
