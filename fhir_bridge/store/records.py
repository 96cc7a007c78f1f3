"""Write and read internal records; each save maps the records, validates every resulting FHIR
resource once, and writes records, resource versions, history and outbox rows in one
transaction. Nothing is half-written: any error rolls the whole change back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import sqlalchemy as sa

from ..errors import Conflict, InvalidInput, Issue, NotFound
from ..fhir import jsonio
from ..fhir.validate import validate_resource
from ..mapping.engine import Mapper
from ..mapping.foreign import Foreign
from ..model.changes import with_consequences
from ..model.registry import Concept, concept_by_name
from . import batch_reads, batch_writes, deletes, foreign, tables as t
from .database import is_lost_race, is_unique_violation


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every time the store writes is UTC."""
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


@dataclass(frozen=True)
class StoredRecord:
    concept: str
    id: str
    version: int
    data: dict[str, Any]
    updated_at: dt.datetime


@dataclass(frozen=True)
class ResourceChange:
    resource_type: str
    id: str
    version_id: int
    operation: str  # upsert | delete


@dataclass(frozen=True)
class ResourceEvent:
    """A resource change, as listeners (subscriptions) see it inside the saving transaction."""

    resource_type: str
    id: str
    version_id: int
    operation: str  # upsert | delete
    resource: dict | None  # the new version with meta.versionId/lastUpdated; None if deleted
    previous: dict | None  # the version before, if any
    patient_id: str | None
    source: str


Listener = Callable[[sa.Connection, list[ResourceEvent]], None]

Consequences = Callable[[str, dict, Callable[[str, str], "dict | None"]], list[tuple[str, dict]]]


class RecordStore:
    def __init__(self, engine: sa.Engine, mapper: Mapper,
                 consequences: Consequences | None = None):
        """``consequences(concept, record, current)`` names other records a saved record
        changes (e.g. an adherence report on its prescription); they are saved in the same
        transaction."""
        self.engine = engine
        self.mapper = mapper
        self.consequences = consequences
        #: Called inside each saving transaction with the resource changes it made (the
        #: subscription event log is written this way, so no change can be missed).
        self.listeners: list[Listener] = []

    # -- reading -------------------------------------------------------------------------------

    def get(self, concept: Concept, record_id: str) -> StoredRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.records).where(
                t.records.c.concept == concept.name, t.records.c.id == record_id)).first()
        if row is None:
            raise NotFound(f"no {concept.name} {record_id!r}")
        return _stored(row)

    def list(self, concept: Concept, patient_id: str | None = None, limit: int = 100,
             after: str | None = None) -> list[StoredRecord]:
        query = sa.select(t.records).where(t.records.c.concept == concept.name)
        if patient_id is not None:
            query = query.where(t.records.c.patient_id == patient_id)
        if after is not None:
            query = query.where(t.records.c.id > after)
        query = query.order_by(t.records.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [_stored(row) for row in conn.execute(query)]

    def exists(self, concept_name: str, record_id: str) -> bool:
        with self.engine.connect() as conn:
            return _exists(conn, concept_name, record_id)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.records.c.concept, sa.func.count())
                                .group_by(t.records.c.concept))
            return {concept: count for concept, count in rows}

    # -- writing -------------------------------------------------------------------------------

    def save(self, changes: Sequence[tuple[Concept, dict[str, Any]]],
             create_only: Iterable[int] = (),
             expected_versions: dict[int, int] | None = None,
             also: Callable[[sa.Connection, list[StoredRecord]], None] | None = None,
             source: str = "api",
             first: Callable[[sa.Connection], None] | None = None,
             deletions: Sequence[tuple[Concept, str]] = (),
             keep: Sequence[Foreign] = ()) -> list[StoredRecord]:
        """Save records in one transaction.

        ``deletions`` are (concept, id) of records deleted first, in the same transaction
        (store/deletes.py: 404 for a missing one, 409 while another record names it).
        ``keep`` holds foreign resources read into these records (mapping/foreign.py): kept
        as sent, and merged into every rendering of their record from then on.

        ``create_only`` holds indexes of changes that must not exist yet (409 if they do);
        ``expected_versions`` maps an index to the version the caller last read (409 if the
        stored version differs: an optimistic lock for updates). ``first`` runs inside the
        transaction before anything is read (e.g. to claim an idempotency key), ``also`` after
        the writes (e.g. to store the answer under that key).

        Every check happens inside the writing transaction, which holds the rows it reads
        (PostgreSQL: ``FOR UPDATE``; SQLite: the write lock, taken by ``BEGIN IMMEDIATE``), so
        two concurrent saves cannot both pass a check the other invalidates: the second waits,
        then sees the first one's result. A row inserted meanwhile by a concurrent save (a
        unique violation) is a Conflict (409), like one found by the checks.
        """
        create_only = set(create_only)
        expected_versions = expected_versions or {}
        try:
            with self.engine.begin() as conn:
                if first is not None:
                    first(conn)
                return self._save(conn, list(changes), create_only, expected_versions, also,
                                  source, list(deletions), list(keep))
        except sa.exc.IntegrityError as error:
            if not is_unique_violation(error):
                raise
            raise Conflict("a record of this change was saved by another request at the same "
                           "time", [Issue("id", "was taken meanwhile; read the record again "
                                                "and retry")]) from error
        except sa.exc.OperationalError as error:
            if not is_lost_race(error):
                raise
            raise Conflict("another request changing the same records went first",
                           [Issue("id", "read the records again and retry", "lock-error")]
                           ) from error

    def _save(self, conn: sa.Connection, changes: list, create_only: set[int],
              expected_versions: dict[int, int], also, source: str,
              deletions: list | None = None,
              keep: Sequence[Foreign] = ()) -> list[StoredRecord]:
        _lock_patients(conn, changes)
        now = utcnow()
        events: list[ResourceEvent] = []
        pending = batch_writes.Pending()
        for concept, record_id in deletions or ():
            patient_id = deletes.remove(conn, concept, record_id)
            seen = batch_reads.Seen(
                batch_reads.owned_resources(conn, [(concept.name, record_id)]), {})
            self._write_resources(conn, concept, record_id, patient_id, [], now, source,
                                  events, seen, pending)
        if self.consequences is not None:
            changes = self._with_consequences(conn, changes)
        # Map and validate before writing: a bad record writes nothing.
        mapped = [self.mapper.to_fhir(concept.name, record) for concept, record in changes]
        kept = foreign.stored(conn, [(r["resourceType"], r["id"]) for rs in mapped for r in rs])
        kept.update(foreign.kept_of(keep))
        mapped = [foreign.merged(resources, kept) for resources in mapped]
        for resources in mapped:
            for resource in resources:
                validate_resource(resource)
        refreshed = {(f.concept, f.record["id"]) for f in keep}
        saved: list[StoredRecord] = []
        batch = {(c.name, r["id"]): _patient_of(c, r) for c, r in changes}
        # What the batch needs of the store, read in a few queries (store/batch_reads.py)
        # and kept up to date below as the batch writes.
        rows = batch_reads.records_for_update(conn, batch)
        targets = batch_reads.patients_of(conn, {
            (target, target_id) for concept, record in changes
            for _, target, target_id in concept.references(record)} - batch.keys())
        seen = batch_reads.Seen(batch_reads.owned_resources(conn, batch),
                                batch_reads.resources_by_key(conn, {
                                    (r["resourceType"], r["id"]) for rs in mapped for r in rs}))
        for index, (concept, record) in enumerate(changes):
            self._check_references(concept, record, batch, targets)
            key = (concept.name, record["id"])
            row = rows.get(key)
            current = row.version if row is not None else None
            if current is not None and index in create_only:
                raise Conflict(f"{concept.name} {record['id']!r} exists already",
                               [Issue("id", "is taken; update it with PUT instead")])
            if index in expected_versions and current != expected_versions[index]:
                raise Conflict(f"{concept.name} {record['id']!r} changed since version "
                               f"{expected_versions[index]}",
                               [Issue("If-Match", f"the current version is {current}")])
            if row is not None and row.data == record:
                # Unchanged: no new version, nothing to sync; resources only if what was kept
                # of a foreign resource changed (an element the record has no place for).
                if key in refreshed:
                    self._write_resources(conn, concept, record["id"],
                                          _patient_of(concept, record), mapped[index], now,
                                          source, events, seen, pending)
                saved.append(StoredRecord(concept.name, record["id"], current, record,
                                          as_utc(row.updated_at)))
                continue
            version = (current or 0) + 1
            patient_id = _patient_of(concept, record)
            values = dict(patient_id=patient_id, version=version, data=record,
                          updated_at=now, source=source)
            pending.write(conn, t.records, key, values, exists=row is not None,
                          created=dict(created_at=now))
            rows[key] = batch_reads.RecordRow(version, record, now)
            self._write_resources(conn, concept, record["id"], patient_id, mapped[index],
                                  now, source, events, seen, pending)
            saved.append(StoredRecord(concept.name, record["id"], version, record, now))
        pending.flush(conn)
        for kept_one in keep:
            foreign.remember(conn, kept_one, source, now)
        if events:
            for listener in self.listeners:
                listener(conn, events)
        if also is not None:
            also(conn, saved)
        return saved

    def _with_consequences(self, conn, changes: list) -> list:
        """Add (or fold into the batch) the records that the batch's records change. The
        rules read the same stored records many times (each prescription and measurement
        reads its patient's plans); each is read once per save."""
        read: dict[tuple, Any] = {}

        def stored(concept_name: str, record_id: str) -> dict | None:
            key = ("one", concept_name, record_id)
            if key not in read:
                read[key] = conn.execute(sa.select(t.records.c.data).where(
                    t.records.c.concept == concept_name,
                    t.records.c.id == record_id)).scalar()
            return read[key]

        def listed(concept_name: str, patient_id: str) -> list[dict]:
            key = ("patient", concept_name, patient_id)
            if key not in read:
                read[key] = list(conn.execute(sa.select(t.records.c.data).where(
                    t.records.c.concept == concept_name,
                    t.records.c.patient_id == patient_id).order_by(t.records.c.id)).scalars())
            return list(read[key])

        return with_consequences(changes, self.consequences, stored, listed)

    @staticmethod
    def _check_references(concept: Concept, record: dict,
                          batch: dict[tuple[str, str], str | None],
                          stored: dict[tuple[str, str], str | None]) -> None:
        """Every record a record names exists (in the batch, or in ``stored``: the stored
        records the batch names, with their patient), and a patient's record names only
        records of the same patient (practitioners belong to no patient and are shared).
        ``batch`` maps (concept, id) of the batch's records to their patient."""
        owner = _patient_of(concept, record)
        missing, foreign = [], []
        for path, target, target_id in concept.references(record):
            if (target, target_id) in batch:
                target_patient = batch[(target, target_id)]
            elif (target, target_id) in stored:
                target_patient = stored[(target, target_id)]
            else:
                missing.append(Issue(path, f"names {target} {target_id!r}, which does not "
                                           "exist"))
                continue
            if owner is not None and concept_by_name(target).patient_field is not None \
                    and target_patient != owner:
                foreign.append(Issue(path, f"names {target} {target_id!r}, which belongs to "
                                           "another patient"))
        if missing:
            raise InvalidInput(f"{concept.name} {record['id']!r} names records that do not "
                               "exist", missing + foreign)
        if foreign:
            raise InvalidInput(f"{concept.name} {record['id']!r} names records of another "
                               "patient", foreign)

    def _write_resources(self, conn, concept: Concept, record_id: str, patient_id: str | None,
                         resources: list[dict], now: dt.datetime, source: str,
                         events: list[ResourceEvent], seen: batch_reads.Seen,
                         pending: batch_writes.Pending) -> list[ResourceChange]:
        changes: list[ResourceChange] = []
        owner = (concept.name, record_id)
        owned = dict(seen.owned.get(owner, {}))
        now_owned: dict[tuple[str, str], batch_reads.ResourceRow] = {}
        for resource in resources:
            key = (resource["resourceType"], resource["id"])
            digest = jsonio.content_hash(resource)
            row = owned.pop(key, None)
            if row is None:
                row = seen.resources.get(key)
                if row is not None and (row.concept, row.record_id) != owner:
                    raise Conflict(f"{key[0]}/{key[1]} already belongs to {row.concept} "
                                   f"{row.record_id!r}",
                                   [Issue("id", "ids must be unique across records")])
            if row is not None and row.content_hash == digest and not row.deleted:
                now_owned[key] = row
                continue  # unchanged: no new version, nothing to sync
            version_id = (row.version_id + 1) if row is not None else 1
            content = jsonio.dumps(resource)
            values = dict(concept=concept.name, record_id=record_id, patient_id=patient_id,
                          version_id=version_id, last_updated=now, content_hash=digest,
                          content=content, deleted=False)
            pending.write(conn, t.resources, key, values, exists=row is not None)
            now_owned[key] = batch_reads.ResourceRow(concept.name, record_id, version_id,
                                                     digest, content, False, now)
            changes.append(ResourceChange(key[0], key[1], version_id, "upsert"))
            events.append(ResourceEvent(key[0], key[1], version_id, "upsert",
                                        with_meta(resource, version_id, now),
                                        _previous(row), patient_id, source))
            pending.history.append(dict(resource_type=key[0], id=key[1],
                                        version_id=version_id, last_updated=now,
                                        content=content, deleted=False, source=source))
        for (rtype, rid), row in owned.items():  # no longer produced, e.g. a removed goal
            if row.deleted:
                now_owned[(rtype, rid)] = row
                continue
            foreign.forget(conn, rtype, rid)
            version_id = row.version_id + 1
            pending.write(conn, t.resources, (rtype, rid),
                          dict(version_id=version_id, last_updated=now, deleted=True),
                          exists=True)
            now_owned[(rtype, rid)] = batch_reads.ResourceRow(
                row.concept, row.record_id, version_id, row.content_hash, row.content, True,
                now)
            pending.history.append(dict(resource_type=rtype, id=rid, version_id=version_id,
                                        last_updated=now, content=None, deleted=True,
                                        source=source))
            changes.append(ResourceChange(rtype, rid, version_id, "delete"))
            events.append(ResourceEvent(rtype, rid, version_id, "delete", None, _previous(row),
                                        patient_id, source))
        seen.owned[owner] = now_owned
        seen.resources.update(now_owned)
        if changes:
            # Children first (assessment items, goals), their parent last: the parent points at
            # them, so a sync worker taking rows in order has every target of a reference sent
            # before, or in the same bundle as, the resource that points at it.
            changes.reverse()
            pending.outbox.extend(
                dict(resource_type=c.resource_type, resource_id=c.id, version_id=c.version_id,
                     operation=c.operation, status="pending", attempts=0, created_at=now)
                for c in changes)
        return changes


def with_meta(resource: dict, version_id: int, last_updated: dt.datetime) -> dict:
    """The resource as served: meta.versionId and meta.lastUpdated first, then the rest."""
    meta = {"versionId": str(version_id), "lastUpdated": instant(last_updated)}
    meta.update(resource.get("meta") or {})
    out = {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta}
    out.update((k, v) for k, v in resource.items() if k not in out)
    return out


def instant(value: dt.datetime) -> str:
    """A FHIR instant with its offset (the store keeps UTC)."""
    return as_utc(value).isoformat(timespec="milliseconds")


def _previous(row) -> dict | None:
    if row is None or row.deleted:
        return None
    return with_meta(jsonio.loads(row.content), row.version_id, as_utc(row.last_updated))


def _lock_patients(conn, changes: list) -> None:
    """Serialize the saves of each patient: consequences and safety checks read the patient's
    other records (care plans, prescriptions), so a concurrent save of the same patient must
    wait for this one and then read what it wrote. PostgreSQL locks the patients' rows, in id
    order (no deadlock between batches of several patients); SQLite's write lock does it
    already, so FOR UPDATE is left out there."""
    patients = sorted({pid for concept, record in changes
                       if (pid := _patient_of(concept, record)) is not None})
    if patients and conn.dialect.name != "sqlite":
        conn.execute(sa.select(t.records.c.id).where(
            t.records.c.concept == "patient", t.records.c.id.in_(patients))
            .order_by(t.records.c.id).with_for_update())


def _patient_of(concept: Concept, record: dict) -> str | None:
    return record.get(concept.patient_field) if concept.patient_field else None


def _exists(conn, concept_name: str, record_id: str) -> bool:
    return conn.execute(sa.select(sa.literal(1)).where(
        t.records.c.concept == concept_name, t.records.c.id == record_id)).first() is not None


def _stored(row) -> StoredRecord:
    return StoredRecord(row.concept, row.id, row.version, row.data, as_utc(row.updated_at))
