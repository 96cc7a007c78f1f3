"""A patient-context token sees and writes only its own patient's records.

The records API answers for another patient's record exactly as for a missing one: reads (and
operations on a record named in the URL) 404, references to it 422 "does not exist", lists
leave it out. A write whose record belongs to another patient (by its ``patient_id``) is 403;
a record that belongs to no patient (a practitioner) is neither visible nor writable. Ids are
chosen by the client, so creating a record with an id another patient's record holds answers
409 as any taken id does: that tells the id is in use, nothing more.

System and user tokens pass every check here.
"""

from __future__ import annotations

from typing import Callable

from flask import current_app

from ..errors import Conflict, Forbidden, InvalidInput, Issue, NotFound
from ..model import Concept, concept_by_name
from ..store.records import StoredRecord
from .principal import current_principal


def patient_of(concept: Concept, data: dict) -> str | None:
    return data.get(concept.patient_field) if concept.patient_field else None


def _store():
    return current_app.extensions["fhir_bridge"].store


def _stored(concept: Concept, record_id: str) -> StoredRecord | None:
    try:
        return _store().get(concept, record_id)
    except NotFound:
        return None


def check_read(concept: Concept, stored: StoredRecord) -> None:
    """404, as for a missing record, unless the caller sees the record's patient."""
    if not current_principal().sees_patient(patient_of(concept, stored.data)):
        raise NotFound(f"no {concept.name} {stored.id!r}")


def check_patient(patient_id: str) -> None:
    """404 for a patient named in the URL that the caller does not see."""
    if not current_principal().sees_patient(patient_id):
        raise NotFound(f"no patient {patient_id!r}")


def list_filter(requested: str | None) -> tuple[str | None, bool]:
    """(patient id to filter a list by, whether anything can be visible)."""
    principal = current_principal()
    if principal.context != "patient":
        return requested, True
    if principal.patient_record_id is None or (
            requested is not None and requested != principal.patient_record_id):
        return requested, False
    return principal.patient_record_id, True


def known() -> Callable[[str, str], bool]:
    """``exists`` for the document loader that hides records the caller does not see."""
    principal = current_principal()

    def exists(concept_name: str, record_id: str) -> bool:
        concept = concept_by_name(concept_name)
        stored = _stored(concept, record_id)
        return stored is not None and principal.sees_patient(patient_of(concept, stored.data))

    return exists


def check_write(concept: Concept, record: dict, batch: frozenset = frozenset()) -> None:
    """A patient token writes records of its patient only, naming only records it sees.
    ``batch`` holds (concept, id) of records saved together (they are checked themselves)."""
    principal = current_principal()
    if principal.context != "patient":
        return
    if not principal.sees_patient(patient_of(concept, record)):
        raise Forbidden("a patient-context token writes only its own patient's records")
    existing = _stored(concept, record["id"])
    if existing is not None and not principal.sees_patient(patient_of(concept, existing.data)):
        raise Conflict(f"{concept.name} {record['id']!r} exists already",
                       [Issue("id", "is taken")])
    issues = []
    for path, target, target_id in concept.references(record):
        target_concept = concept_by_name(target)
        if (target, target_id) in batch:
            continue
        stored = _stored(target_concept, target_id)
        if stored is not None and target_concept.patient_field is not None \
                and not principal.sees_patient(patient_of(target_concept, stored.data)):
            issues.append(Issue(path, f"names {target} {target_id!r}, which does not exist"))
    if issues:
        raise InvalidInput(f"{concept.name} {record['id']!r} names records that do not exist",
                           issues)


def check_writes(pairs: list[tuple[Concept, dict]]) -> None:
    batch = frozenset((c.name, r["id"]) for c, r in pairs)
    for concept, record in pairs:
        check_write(concept, record, batch)
