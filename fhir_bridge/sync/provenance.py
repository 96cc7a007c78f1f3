"""Provenance for changes made by sync: every save that pull makes (an EHR's edit taken in,
an EHR's resource imported) gets a Provenance resource naming the versions it produced and the
target they came from. Stored with the resources (served at /fhir/Provenance, found with
``_revinclude=Provenance:target``), never pushed back to the target."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from ..facade.indexing import reindex
from ..fhir import jsonio
from ..fhir.validate import validate_resource
from ..store import tables as t
from ..store.records import instant, utcnow

PROFILE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-provenance"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
US_CORE_PARTICIPANT = "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def provenance_for(events, target: str, now) -> dict:
    created = all(e.version_id == 1 for e in events)
    resource = {
        "resourceType": "Provenance",
        "id": uuid.uuid4().hex,
        "meta": {"profile": [PROFILE]},
        "target": [{"reference": f"{e.resource_type}/{e.id}/_history/{e.version_id}"}
                   for e in events],
        "recorded": instant(now),
        "activity": {"coding": [{"system": DATA_OPERATION,
                                 "code": "CREATE" if created else "UPDATE",
                                 "display": "create" if created else "revise"}]},
        "agent": [{
            "type": {"coding": [{"system": US_CORE_PARTICIPANT, "code": "transmitter",
                                 "display": "Transmitter"}]},
            "who": {"identifier": {"system": "urn:fhir-bridge:sync-target", "value": target},
                    "display": f"FHIR server {target} (read by fhir-bridge sync pull)"},
        }],
        "entity": [{"role": "source",
                    "what": {"identifier": {"system": "urn:fhir-bridge:sync-target",
                                            "value": target}}}],
    }
    return resource


def provenance_listener():
    """Store listener writing one Provenance per patient for each save made by pull."""
    def listen(conn: sa.Connection, events) -> None:
        pulled = [e for e in events if e.source.startswith("pull:") and e.resource is not None]
        if not pulled:
            return
        by_patient: dict = {}
        for event in pulled:
            by_patient.setdefault(event.patient_id, []).append(event)
        now = utcnow()
        for patient_id, group in by_patient.items():
            target = group[0].source.removeprefix("pull:")
            resource = provenance_for(group, target, now)
            validate_resource(resource)
            content = jsonio.dumps(resource)
            conn.execute(t.resources.insert().values(
                resource_type="Provenance", id=resource["id"], concept="provenance",
                record_id=resource["id"], patient_id=patient_id, version_id=1,
                last_updated=now, content_hash=jsonio.content_hash(resource), content=content,
                deleted=False))
            conn.execute(t.resource_history.insert().values(
                resource_type="Provenance", id=resource["id"], version_id=1, last_updated=now,
                content=content, deleted=False, source=group[0].source))
            reindex(conn, "Provenance", resource["id"], resource)

    return listen
