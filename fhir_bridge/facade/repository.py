"""Read resources for the FHIR API: current versions, history, and search candidates.

Resources live in the `resources` table (current version) and `resource_history` (every
version); AuditEvents in `audit_events`. Rows come back as StoredResource with the served
meta (versionId, lastUpdated) filled in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Sequence

import sqlalchemy as sa

from ..fhir import jsonio
from ..store import tables as t
from ..store.records import as_utc, with_meta


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


def history(conn: sa.Connection, resource_type: str, resource_id: str | None,
            since: dt.datetime | None, patient_id: str | None, limit: int,
            offset: int) -> tuple[int, list[StoredResource]]:
    """Versions newest first (instance history, or type history when resource_id is None)."""
    h = t.resource_history
    query = (sa.select(h, _R.c.patient_id).join(
        _R, sa.and_(_R.c.resource_type == h.c.resource_type, _R.c.id == h.c.id))
        .where(h.c.resource_type == resource_type))
    if resource_id is not None:
        query = query.where(h.c.id == resource_id)
    if since is not None:
        query = query.where(h.c.last_updated >= since)
    if patient_id is not None:
        query = query.where(_R.c.patient_id == patient_id)
    total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar()
    rows = conn.execute(query.order_by(h.c.last_updated.desc(), h.c.id, h.c.version_id.desc())
                        .limit(limit).offset(offset))
    return total, [StoredResource(r.resource_type, r.id, r.version_id, as_utc(r.last_updated),
                                  r.patient_id, r.deleted, r.content) for r in rows]


def patient_ids_of(conn: sa.Connection, patient_resource_ids: Iterable[str]) -> set[str]:
    """Internal patient ids of Patient resources ('pat-p01' -> 'p01')."""
    ids = list(patient_resource_ids)
    if not ids:
        return set()
    return {row.patient_id for row in conn.execute(sa.select(_R.c.patient_id).where(
        _R.c.resource_type == "Patient", _R.c.id.in_(ids)))}


@dataclass
class Prefilter:
    """What SQL can narrow before the criteria are checked on each resource."""

    ids: set[str] | None = None
    patient_ids: set[str] | None = None


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
    if pre.patient_ids is not None:
        query = query.where(patient_col.in_(sorted(pre.patient_ids)))
    return query, (id_col, updated_col)


def candidates(conn: sa.Connection, resource_type: str, pre: Prefilter,
               sort: Sequence[tuple[str, bool]]) -> list[StoredResource]:
    if pre.ids == set() or pre.patient_ids == set():
        return []
    query, columns = _candidates_query(resource_type, pre)
    convert = _from_audit if resource_type == "AuditEvent" else _from_resources
    return [convert(row) for row in conn.execute(query.order_by(*_order(columns, sort)))]


def page(conn: sa.Connection, resource_type: str, pre: Prefilter,
         sort: Sequence[tuple[str, bool]], limit: int,
         offset: int) -> tuple[int, list[StoredResource]]:
    """Count and one page straight from SQL (when no criterion needs the resource body)."""
    if pre.ids == set() or pre.patient_ids == set():
        return 0, []
    query, columns = _candidates_query(resource_type, pre)
    total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar()
    convert = _from_audit if resource_type == "AuditEvent" else _from_resources
    rows = conn.execute(query.order_by(*_order(columns, sort)).limit(limit).offset(offset))
    return total, [convert(row) for row in rows]


def by_keys(conn: sa.Connection, keys: Iterable[tuple[str, str]]) -> list[StoredResource]:
    """Current, not deleted resources by (type, id), in one query per type."""
    by_type: dict[str, set[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, set()).add(rid)
    out: list[StoredResource] = []
    for rtype, ids in by_type.items():
        if rtype == "AuditEvent":
            rows = conn.execute(sa.select(_A).where(_A.c.id.in_(sorted(ids))))
            out.extend(_from_audit(r) for r in rows)
            continue
        rows = conn.execute(sa.select(_R).where(_R.c.resource_type == rtype,
                                                _R.c.id.in_(sorted(ids)),
                                                _R.c.deleted.is_(False)))
        out.extend(_from_resources(r) for r in rows)
    return out
