"""Store listener: writes that do not come through an HTTP request (sync pull, CLI imports)
get their AuditEvent inside the saving transaction. Writes made by a request are audited by
the request hook (audit/http.py), which this listener feeds."""

from __future__ import annotations

from flask import has_request_context

from ..mapping.engine import Mapper
from .events import AuditEntry, record
from .http import note_write


def write_listener(mapper: Mapper):
    def listen(conn, events) -> None:
        if has_request_context():
            note_write(conn, events)
            return
        by_patient: dict[str | None, list] = {}
        for event in events:
            by_patient.setdefault(event.patient_id, []).append(event)
        entries = []
        for patient_id, group in by_patient.items():
            source = group[0].source
            created = all(e.version_id == 1 for e in group)
            entries.append(AuditEntry(
                action="C" if created else "U",
                subtype="sync-pull" if source.startswith("pull:") else "import",
                agent=source, patient_id=patient_id,
                patient_reference=mapper.reference("patient", patient_id) if patient_id else None,
                entities=[f"{e.resource_type}/{e.id}/_history/{e.version_id}" for e in group],
                kind="transmit" if source.startswith("pull:") else "rest"))
        record(conn, entries)

    return listen
