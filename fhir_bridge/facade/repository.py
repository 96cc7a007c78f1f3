"""Read resources for the FHIR API: current versions, history, and search candidates.

Resources live in the `resources` table (current version) and `resource_history` (every
version); AuditEvents in `audit_events`. Rows come back as StoredResource with the served
meta (versionId, lastUpdated) filled in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import sqlalchemy as sa

from ..fhir import jsonio
from ..store import tables as t
from ..store.records import as_utc, with_meta
from .indexing import IndexTerm, holds


@dataclass(frozen=True)
class StoredResource:
    resource_type: str
    id: str
    version_id: int
    last_updated: dt.datetime
    patient_id: str | None
    deleted: bool
    content: str | None  # JSON as stored (no versionId/lastUpdated); None when deleted

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_type, self.id

    def resource(self) -> dict:
        return with_meta(jsonio.loads(self.content), self.version_id, self.last_updated)


_R = t.resources
_A = t.audit_events


def _from_resources(row) -> StoredResource:
    return StoredResource(row.resource_type, row.id, row.version_id, as_utc(row.last_updated),
                          row.patient_id, row.deleted, None if row.deleted else row.content)


def _from_audit(row) -> StoredResource:
    return StoredResource("AuditEvent", row.id, 1, as_utc(row.recorded), row.patient_id, False,
                          row.content)


def current(conn: sa.Connection, resource_type: str, resource_id: str) -> StoredResource | None:
    if resource_type == "AuditEvent":
        row = conn.execute(sa.select(_A).where(_A.c.id == resource_id)).first()
        return _from_audit(row) if row else None
    row = conn.execute(sa.select(_R).where(_R.c.resource_type == resource_type,
                                           _R.c.id == resource_id)).first()
    return _from_resources(row) if row else None


def version(conn: sa.Connection, resource_type: str, resource_id: str,
            version_id: int) -> StoredResource | None:
    if resource_type == "AuditEvent":
        found = current(conn, resource_type, resource_id)
        return found if found and version_id == 1 else None
    h = t.resource_history
    row = conn.execute(sa.select(h).where(h.c.resource_type == resource_type,
                                          h.c.id == resource_id,
                                          h.c.version_id == version_id)).first()
    if row is None:
        return None
    owner = conn.execute(sa.select(_R.c.patient_id).where(
        _R.c.resource_type == resource_type, _R.c.id == resource_id)).scalar()
    return StoredResource(row.resource_type, row.id, row.version_id, as_utc(row.last_updated),
                          owner, row.deleted, row.content)


def history(conn: sa.Connection, resource_type: str | None, resource_id: str | None,
            since: dt.datetime | None, patient_id: str | None, limit: int,
            offset: int, types: Sequence[str] = (),
            open_types: Sequence[str] = ()) -> tuple[int, list[StoredResource]]:
    """Versions newest first: instance history, type history (resource_id None), or system
    history (resource_type None: the ``types`` named; with a patient_id, the ``open_types``
    are not limited to that patient)."""
    h = t.resource_history
    query = sa.select(h, _R.c.patient_id).join(
        _R, sa.and_(_R.c.resource_type == h.c.resource_type, _R.c.id == h.c.id))
    if resource_type is not None:
        query = query.where(h.c.resource_type == resource_type)
    else:
        query = query.where(h.c.resource_type.in_(sorted(types)))
    if resource_id is not None:
        query = query.where(h.c.id == resource_id)
    if since is not None:
        query = query.where(h.c.last_updated >= since)
    if patient_id is not None:
        mine = _R.c.patient_id == patient_id
        query = query.where(sa.or_(mine, h.c.resource_type.in_(sorted(open_types)))
                            if open_types else mine)
    total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar()
    rows = conn.execute(query.order_by(h.c.last_updated.desc(), h.c.resource_type, h.c.id,
                                       h.c.version_id.desc()).limit(limit).offset(offset))
    return total, [StoredResource(r.resource_type, r.id, r.version_id, as_utc(r.last_updated),
                                  r.patient_id, r.deleted, r.content) for r in rows]


@dataclass
class Prefilter:
    """What SQL can narrow before the criteria are checked on each resource: ids, internal
    patient ids, and the FHIR ids of the Patients the resources must belong to (resolved in
    the same query)."""

    ids: set[str] | None = None
    patient_ids: set[str] | None = None
    patient_resource_ids: set[str] | None = None
    indexed: list[IndexTerm] = field(default_factory=list)  # search_index terms, ANDed

    def empty(self) -> bool:
        return set() in (self.ids, self.patient_ids, self.patient_resource_ids)


def _order(columns, sort: Sequence[tuple[str, bool]]):
    id_col, updated_col = columns
    out = []
    for key, descending in sort or [("_id", False)]:
        col = id_col if key == "_id" else updated_col
        out.append(col.desc() if descending else col.asc())
    if not any(key == "_id" for key, _ in sort):
        out.append(id_col.asc())
    return out


def _candidates_query(resource_type: str, pre: Prefilter):
    if resource_type == "AuditEvent":
        query = sa.select(_A)
        id_col, patient_col, updated_col = _A.c.id, _A.c.patient_id, _A.c.recorded
    else:
        query = sa.select(_R).where(_R.c.resource_type == resource_type, _R.c.deleted.is_(False))
        id_col, patient_col, updated_col = _R.c.id, _R.c.patient_id, _R.c.last_updated
    if pre.ids is not None:
        query = query.where(id_col.in_(sorted(pre.ids)))
    few = not (pre.ids is None and pre.patient_ids is None and pre.patient_resource_ids is None)
    for term in pre.indexed:
        query = query.where(holds(resource_type, term, id_col, few))
    if pre.patient_ids is not None:
        query = query.where(patient_col.in_(sorted(pre.patient_ids)))
    if pre.patient_resource_ids is not None:
        named = sorted(pre.patient_resource_ids)
        owners = sa.select(_R.c.patient_id).where(_R.c.resource_type == "Patient")
        if len(named) == 1:  # equality lets the (type, patient, id) index give id order
            query = query.where(patient_col == owners.where(_R.c.id == named[0])
                                .scalar_subquery())
        else:
            query = query.where(patient_col.in_(owners.where(_R.c.id.in_(named))
                                                .scalar_subquery()))
    return query, (id_col, updated_col)


def candidates(conn: sa.Connection, resource_type: str, pre: Prefilter,
               sort: Sequence[tuple[str, bool]]) -> list[StoredResource]:
    if pre.empty():
        return []
    query, columns = _candidates_query(resource_type, pre)
    convert = _from_audit if resource_type == "AuditEvent" else _from_resources
    return [convert(row) for row in conn.execute(query.order_by(*_order(columns, sort)))]


def page(conn: sa.Connection, resource_type: str, pre: Prefilter,
         sort: Sequence[tuple[str, bool]], limit: int,
         offset: int) -> tuple[int, list[StoredResource]]:
    """Count and one page straight from SQL (when no criterion needs the resource body). A
    first page that is not full is the whole result: no count query then."""
    if pre.empty():
        return 0, []
    query, columns = _candidates_query(resource_type, pre)
    convert = _from_audit if resource_type == "AuditEvent" else _from_resources
    rows = [convert(row) for row in conn.execute(
        query.order_by(*_order(columns, sort)).limit(limit).offset(offset))]
    if offset == 0 and len(rows) < limit:
        return len(rows), rows
    total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar()
    return total, rows


def compartment_page(conn: sa.Connection, patient_id: str, types: Sequence[str],
                     since: dt.datetime | None, limit: int,
                     offset: int) -> tuple[int, list[StoredResource]]:
    """The current resources of these types that belong to one patient (internal id), in
    (type, id) order, changed at or after ``since``: Patient/{id}/$everything."""
    query = sa.select(_R).where(_R.c.patient_id == patient_id, _R.c.deleted.is_(False),
                                _R.c.resource_type.in_(sorted(types)))
    if since is not None:
        query = query.where(_R.c.last_updated >= since)
    total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar()
    rows = conn.execute(query.order_by(_R.c.resource_type, _R.c.id).limit(limit).offset(offset))
    return total, [_from_resources(row) for row in rows]


def by_keys(conn: sa.Connection, keys: Iterable[tuple[str, str]]) -> list[StoredResource]:
    """Current, not deleted resources by (type, id): one query for all types (and one more
    for AuditEvents, which live in their own table)."""
    keys = sorted(set(keys))
    audit_ids = [rid for rtype, rid in keys if rtype == "AuditEvent"]
    others = [key for key in keys if key[0] != "AuditEvent"]
    out: list[StoredResource] = []
    if audit_ids:
        out.extend(_from_audit(r) for r in conn.execute(
            sa.select(_A).where(_A.c.id.in_(audit_ids))))
    if others:
        by_type: dict[str, list[str]] = {}
        for rtype, rid in others:
            by_type.setdefault(rtype, []).append(rid)
        # (type = ? AND id IN (...)) OR ...: both SQLite and PostgreSQL use the primary key
        # for each branch (a row-value IN makes SQLite scan the table).
        match = sa.or_(*[sa.and_(_R.c.resource_type == rtype, _R.c.id.in_(ids))
                         for rtype, ids in by_type.items()])
        out.extend(_from_resources(r) for r in conn.execute(
            sa.select(_R).where(match, _R.c.deleted.is_(False))))
    return out
