"""Build and store AuditEvent resources (FHIR R4, following the IHE Basic Audit Log Patterns:
type rest / transmit, subtype the interaction, action C/R/U/D/E, outcome 0/4/8).

An AuditEvent names resources and the patient by reference only: never names, birth dates or
clinical text (they would turn the audit log into a second copy of the record)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Iterable

import sqlalchemy as sa

from ..fhir import jsonio
from ..store import tables as t

log = logging.getLogger("fhir_bridge.audit")

DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
LOCAL_SUBTYPE = "urn:fhir-bridge:codesystem:audit-subtype"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"

#: FHIR restful interactions (http://hl7.org/fhir/restful-interaction); the bridge's own
#: activities (sync, notify) get a local code.
RESTFUL_SUBTYPES = {"read", "vread", "update", "patch", "delete", "history", "history-instance",
                    "history-type", "history-system", "create", "search", "search-type",
                    "search-system", "capabilities", "transaction", "batch", "operation"}
#: The bridge's own activities: local codes (the conformance package's audit-subtype CodeSystem).
LOCAL_SUBTYPES = {"sync-push": "Sync push", "sync-pull": "Sync pull", "import": "Import",
                  "notify": "Subscription notification",
                  "sync-retry": "Dead-lettered outbox rows put back in the queue by an operator",
                  "sync-resolve": "Sync conflict resolved by an operator"}
ACTIONS = {"C", "R", "U", "D", "E"}
OUTCOMES = {"0", "4", "8", "12"}


@dataclass
class AuditEntry:
    """One audited access. ``entities`` are 'Type/id' references the access touched."""

    action: str
    subtype: str
    outcome: str = "0"
    agent: str | None = None  # who: a token's subject, or a worker / system name
    client_id: str | None = None
    patient_id: str | None = None  # internal patient id (the column searches filter on)
    patient_reference: str | None = None  # 'Patient/pat-..' for the FHIR entity
    entities: list[str] = field(default_factory=list)
    query: str | None = None  # a search's query string (ids and codes, no free text)
    description: str | None = None  # short, non-clinical (e.g. "HTTP 403")
    network_address: str | None = None
    kind: str = "rest"  # rest | transmit (sync and notifications)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS or self.outcome not in OUTCOMES:
            raise ValueError(f"bad audit action/outcome {self.action}/{self.outcome}")
        if self.subtype not in RESTFUL_SUBTYPES and self.subtype not in LOCAL_SUBTYPES:
            raise ValueError(f"bad audit subtype {self.subtype}")


def to_fhir(entry: AuditEntry, event_id: str, recorded: dt.datetime) -> dict:
    subtype_system = RESTFUL if entry.subtype in RESTFUL_SUBTYPES else LOCAL_SUBTYPE
    agent: dict = {"type": {"coding": [{"system": PARTICIPATION, "code": "IRCP",
                                        "display": "information recipient"}]},
                   "requestor": True}
    if entry.agent:
        agent["altId"] = entry.agent
        agent["name"] = entry.agent
    if entry.client_id:
        agent["who"] = {"identifier": {"system": "urn:fhir-bridge:client-id",
                                       "value": entry.client_id}}
    if entry.network_address:
        agent["network"] = {"address": entry.network_address, "type": "2"}
    entities = []
    if entry.patient_reference:
        entities.append({"what": {"reference": entry.patient_reference},
                         "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                                  "code": "1", "display": "Patient"}})
    for reference in dict.fromkeys(entry.entities):
        if reference != entry.patient_reference:
            entities.append({"what": {"reference": reference},
                             "type": {"system": ENTITY_TYPE, "code": "2",
                                      "display": "System Object"}})
    if entry.query is not None:
        entities.append({"type": {"system": ENTITY_TYPE, "code": "2",
                                  "display": "System Object"},
                         "query": _b64(entry.query)})
    event = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": ({"system": AUDIT_TYPE, "code": "rest", "display": "Restful Operation"}
                 if entry.kind == "rest" else
                 {"system": DCM, "code": "110106", "display": "Export"}),
        "subtype": [{"system": subtype_system, "code": entry.subtype,
                     **({"display": LOCAL_SUBTYPES[entry.subtype]}
                        if entry.subtype in LOCAL_SUBTYPES else {})}],
        "action": entry.action,
        "recorded": recorded.isoformat(timespec="milliseconds"),
        "outcome": entry.outcome,
        "agent": [agent],
        "source": {"observer": {"display": "fhir-bridge"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                             "code": "4", "display": "Application Server"}]},
    }
    if entry.description:
        event["outcomeDesc"] = entry.description
    if entities:
        event["entity"] = entities
    return event


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def record(target: sa.Engine | sa.Connection, entries: AuditEntry | Iterable[AuditEntry],
           now: dt.datetime | None = None) -> list[str]:
    """Store AuditEvents; with a Connection they join its transaction (a write and its audit
    commit together). Returns the new AuditEvent ids."""
    items = [entries] if isinstance(entries, AuditEntry) else list(entries)
    if not items:
        return []
    recorded = now or dt.datetime.now(dt.timezone.utc)
    rows, ids = [], []
    for entry in items:
        event_id = uuid.uuid4().hex
        ids.append(event_id)
        rows.append(dict(id=event_id, recorded=recorded, patient_id=entry.patient_id,
                         action=entry.action, subtype=entry.subtype, outcome=entry.outcome,
                         agent=entry.agent,
                         content=jsonio.dumps(to_fhir(entry, event_id, recorded))))
    if isinstance(target, sa.Connection):
        target.execute(t.audit_events.insert(), rows)
    else:
        with target.begin() as conn:
            conn.execute(t.audit_events.insert(), rows)
    return ids
