"""Deleting a record inside a saving transaction: the row goes, every resource it produced is
marked deleted (a history version, an outbox row and an event each, as ``_write_resources``
does for a resource a record no longer produces), and nothing that another stored record
still names may go (409 naming each record and field that names it)."""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import Conflict, Issue, NotFound
from ..model.registry import CONCEPTS, Concept
from . import tables as t


def _naming_concepts(concept_name: str) -> list[Concept]:
    """Concepts whose records can name a record of ``concept_name``."""
    out = []
    for other in CONCEPTS:
        for _path, target in other.refs:
            if target == concept_name or (target == "person" and concept_name in
                                          ("patient", "practitioner", "caregiver")):
                out.append(other)
                break
    return out


def referrers(conn: sa.Connection, concept: Concept, record_id: str,
              patient_id: str | None) -> list[Issue]:
    """One Issue per stored record field naming this record. A patient's record is named
    only by that patient's records; a practitioner by anyone's."""
    naming = [c.name for c in _naming_concepts(concept.name)]
    if not naming:
        return []
    query = sa.select(t.records.c.concept, t.records.c.id, t.records.c.data).where(
        t.records.c.concept.in_(naming))
    if patient_id is not None:
        query = query.where(t.records.c.patient_id == patient_id)
    by_name = {c.name: c for c in CONCEPTS}
    found = []
    for row in conn.execute(query.order_by(t.records.c.concept, t.records.c.id)):
        if (row.concept, row.id) == (concept.name, record_id):
            continue
        for path, target, target_id in by_name[row.concept].references(row.data):
            if target == concept.name and target_id == record_id:
                found.append(Issue(f"{row.concept} {row.id}: {path}",
                                   f"names this {concept.name}", "conflict"))
    return found


def locked_row(conn: sa.Connection, concept: Concept, record_id: str):
    """The record's row, locked for the rest of the transaction (404 when it is gone)."""
    row = conn.execute(sa.select(t.records.c.patient_id, t.records.c.version).where(
        t.records.c.concept == concept.name, t.records.c.id == record_id)
        .with_for_update()).first()
    if row is None:
        raise NotFound(f"no {concept.name} {record_id!r}")
    return row


def remove(conn: sa.Connection, concept: Concept, record_id: str) -> str | None:
    """Check and delete the record's row; its patient id (for the resources' rows)."""
    row = locked_row(conn, concept, record_id)
    named = referrers(conn, concept, record_id, row.patient_id)
    if named:
        raise Conflict(f"{concept.name} {record_id!r} is named by other records; change or "
                       "delete them first", named)
    conn.execute(t.records.delete().where(t.records.c.concept == concept.name,
                                          t.records.c.id == record_id))
    return row.patient_id
