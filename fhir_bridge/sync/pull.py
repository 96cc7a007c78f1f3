"""Pull: changes made on the target come back into the internal model.

Incremental per managed patient and resource type (CarePlan, CareTeam, MedicationRequest,
Observation), with a ``_lastUpdated`` watermark and paging through ``Bundle.link[next]``.
For each resource read:
- the version we wrote or applied last: nothing to do;
- a newer version of a resource the bridge manages: references are translated back to local
  ids, the owning record is rebuilt through the reverse mapping and saved with source
  ``pull:<target>``, unless the resource also changed locally and is still waiting in the
  outbox: then a conflict record keeps both versions and nothing is overwritten;
- a resource the bridge never wrote (an EHR's own data): imported with the records it points at
  (patient, practitioner, condition, ...), read from the target as needed.
A resource the bridge never wrote is read as foreign (mapping/foreign.py): it is kept as sent
beside its record (a panel's items too, each mapped to its remote id; an EHR edit of an item
reads its panel again), and each element the record has no place for is noted once per
resource, by its FHIRPath and why, in the report and in ``sync_notes``. A reference to
something that could not be imported (or a type the bridge never imports) stays an external
reference, with a note.
Whatever cannot be made into a record at all is stored in ``sync_rejects`` with its reason,
never dropped.

Several pull workers share the patients with leases (store/leases.py): a worker reads a patient
only while it holds that patient's lease, renews it as it goes, and writes a type's watermark
only in a transaction that renews it; a lease that ran out (the worker stalled or was killed)
ends that worker's work on the patient, and another worker takes it over.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlalchemy as sa

from ..errors import BridgeError, Conflict, MappingError, RemoteError
from ..fhir import jsonio, references
from ..mapping.document import load_record
from ..mapping.engine import Mapper
from ..mapping.foreign import Foreign, parse_foreign
from ..model import concept_by_name
from ..model.common import ID_PATTERN
from ..store import counters, leases
from ..store import tables as t
from ..store.records import RecordStore, utcnow
from . import notes as sync_notes, rejects, remote_map
from .conflicts import record_conflict
from .local_view import LocalView
from .targets import Target

log = logging.getLogger("fhir_bridge.sync.pull")

PULL_TYPES = ("CarePlan", "CareTeam", "MedicationRequest", "Observation")
_ID = re.compile(ID_PATTERN)
MAX_IMPORT_DEPTH = 4


@dataclass
class PullReport:
    seen: int = 0
    applied: int = 0  # changes made on the target, now in the internal model
    imported: int = 0  # resources the bridge never wrote, now internal records
    unchanged: int = 0  # versions we already have
    conflicts: int = 0
    rejected: int = 0
    members: int = 0  # items and totals of a panel: they come in with the panel
    #: patients left alone: held by another worker, or their lease ran out mid-pull
    leased_elsewhere: int = 0
    reasons: list[str] = field(default_factory=list)
    #: "Type/id: FHIRPath: reason" of each element kept as sent without a place in the record
    notes: list[str] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        """What this pull adds to the running totals (store/counters.py, /metrics)."""
        amounts = {f"pull_{name}": getattr(self, name) for name in
                   ("seen", "applied", "imported", "unchanged", "conflicts", "rejected")}
        amounts["pull_ok"] = 1
        return amounts


class Puller:
    def __init__(self, engine: sa.Engine, mapper: Mapper, store: RecordStore, client,
                 target: Target, types: tuple[str, ...] = PULL_TYPES,
                 worker: str = "worker"):
        self.engine = engine
        self.worker = worker
        self.mapper = mapper
        self.store = store
        self.client = client
        self.target = target
        self.types = types
        self.source = f"pull:{target.name}"
        self.view = LocalView(engine, mapper, target.name)
        self._refused: set[tuple[str, str]] = set()  # this pull's rejects: refused once each

    # -- the loop ------------------------------------------------------------------------------

    def managed_patients(self) -> list[str]:
        rr = t.remote_resources
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(rr.c.remote_id).where(
                rr.c.target == self.target.name, rr.c.resource_type == "Patient")
                .order_by(rr.c.remote_id)).scalars())

    def pull(self, patients: list[str] | None = None,
             progress: Callable[[PullReport], None] | None = None,
             stop: threading.Event | None = None) -> PullReport:
        """Pull each patient's resources (the given ones, else each managed patient whose
        lease is free and that no worker pulled since this pass began), under its lease;
        ``progress`` gets the running totals after each patient. With ``stop`` set (a worker
        told to end) the type in hand is finished, the lease given back, and no other patient
        taken."""
        report = PullReport()
        self._refused = set()
        began = utcnow()
        stopping = stop.is_set if stop is not None else (lambda: False)
        try:
            if patients:
                for patient in patients:
                    if stopping():
                        break
                    self._ensure_local(f"Patient/{patient}", report, depth=0)
                    lease = leases.claim_patient(self.engine, self.target.name, patient,
                                                 self.worker, self.target.lease_seconds)
                    if lease is None:
                        report.leased_elsewhere += 1
                        report.reasons.append(f"Patient/{patient}: being pulled by another "
                                              "worker")
                    else:
                        self._pull_leased(lease, report, stopping)
                    if progress is not None:
                        progress(report)
            else:
                leases.register(self.engine, self.target.name)
                # A patient whose lease ran out mid-pull is free again at once and first in
                # line: this pass takes each patient once (the ones that come back are
                # skipped: few, so the skip list stays short), so it ends and the worker goes
                # on to its other tasks; the next pass resumes them from their watermarks.
                taken: set[str] = set()
                again: set[str] = set()
                while not stopping():
                    lease = leases.claim_next(self.engine, self.target.name, self.worker,
                                              self.target.lease_seconds, began,
                                              skip=frozenset(again))
                    if lease is None:
                        break
                    if lease.patient in taken:
                        leases.release(self.engine, lease, finished=False)
                        again.add(lease.patient)
                        continue
                    taken.add(lease.patient)
                    self._pull_leased(lease, report, stopping)
                    if progress is not None:
                        progress(report)
        except RemoteError:
            counters.add(self.engine, self.target.name, {**report.totals(), "pull_ok": 0,
                                                         "pull_failed": 1})
            raise
        counters.add(self.engine, self.target.name, report.totals())
        return report

    def pull_one(self, resource: dict) -> PullReport:
        """Apply one resource read from the target (conflict resolution uses this)."""
        report = PullReport(seen=1)
        self._apply(resource, report)
        return report

    def _pull_leased(self, lease: leases.Lease, report: PullReport,
                     stopping: Callable[[], bool]) -> None:
        """Every type of the lease's patient; the lease is given back whatever happens."""
        finished = False
        try:
            for rtype in self.types:
                if stopping():
                    break
                self._pull_type(rtype, lease, report)
            else:
                finished = True
        except leases.LeaseLost:
            report.leased_elsewhere += 1
            report.reasons.append(f"Patient/{lease.patient}: the lease ran out mid-pull; "
                                  "left to the worker that takes it over")
        finally:
            leases.release(self.engine, lease, finished)

    def _pull_type(self, rtype: str, lease: leases.Lease, report: PullReport) -> None:
        wm = t.sync_watermarks
        patient = lease.patient
        key = dict(target=self.target.name, resource_type=rtype, patient_remote_id=patient)
        with self.engine.connect() as conn:
            watermark = conn.execute(sa.select(wm.c.watermark).where(
                *[wm.c[k] == v for k, v in key.items()])).scalar()
        params: dict[str, Any] = {"patient": patient, "_count": self.target.pull_page_size,
                                  "_sort": "_lastUpdated"}
        if watermark:
            # ge, not gt: two writes in the same millisecond must not hide one another;
            # a version seen already is recognized and skipped.
            params["_lastUpdated"] = f"ge{watermark}"
        newest = watermark
        seconds = self.target.lease_seconds
        renewed = time.monotonic()
        for resource in self.client.search_all(rtype, params):
            if time.monotonic() - renewed > seconds / 3:  # still ours before it is applied
                leases.renew(self.engine, lease, seconds)
                renewed = time.monotonic()
            report.seen += 1
            self._apply(resource, report)
            updated = (resource.get("meta") or {}).get("lastUpdated")
            if updated and (newest is None or updated > newest):
                newest = updated
        with self.engine.begin() as conn:
            # the watermark moves only while the lease is still ours (else: LeaseLost, and
            # this transaction writes nothing)
            leases.hold(conn, lease, seconds)
            if newest and newest != watermark:
                done = conn.execute(wm.update().where(*[wm.c[k] == v for k, v in key.items()])
                                    .values(watermark=newest)).rowcount
                if not done:
                    conn.execute(wm.insert().values(watermark=newest, **key))

    # -- one resource ---------------------------------------------------------------------------

    def _apply(self, resource: dict, report: PullReport) -> None:
        rtype, rid = resource["resourceType"], resource["id"]
        version = (resource.get("meta") or {}).get("versionId")
        with self.engine.connect() as conn:
            known = remote_map.by_remote_id(conn, self.target.name, rtype, rid)
        if known is not None and known.remote_version == version:
            report.unchanged += 1
            return
        if known is None:
            local_id = self._written_by_us(resource)
            if local_id is not None:
                # Ours, but the answer to its push never arrived: link it, apply nothing. Any
                # local change still in the outbox goes out on the next push.
                with self.engine.begin() as conn:
                    remote_map.remember(conn, self.target.name, rtype, local_id, rid, version,
                                        None)
                report.unchanged += 1
                return
            self._import(resource, report, depth=0)
            return
        local = self.view.local_row(rtype, known.local_id)
        if local is None:
            self._reject(resource, f"maps to {rtype}/{known.local_id}, which is gone locally",
                         report)
            return
        if self.view.pending_locally(rtype, known.local_id):
            record_conflict(self.engine, self.client, self.target.name, rtype, known.local_id,
                            rid, jsonio.loads(local.content), resource)
            report.conflicts += 1
            report.reasons.append(f"{rtype}/{rid}: changed on both sides; conflict recorded")
            return
        edited = self.view.localize(resource, local_id=known.local_id)
        main = (self.mapper.resource_type(local.concept),
                self.mapper.resource_id(local.concept, local.record_id))
        kept = self.view.kept(rtype, known.local_id)
        try:
            if kept and main != (rtype, known.local_id):
                # an item of a foreign panel: the panel is read again, with the item as it is
                with self.engine.connect() as conn:
                    panel = remote_map.load(conn, self.target.name, {main}).get(main)
                if panel is None:
                    raise MappingError(f"part of {main[0]}/{main[1]}, which this target does "
                                       "not hold", "parse")
                read = self.client.read(main[0], panel.remote_id)
                foreign = parse_foreign(self.mapper, self.view.localize(read, local_id=main[1]),
                                        resolve=self._remote_resolver(),
                                        record_id=local.record_id)
                report.notes += self._save(local.concept, foreign.record, *main,
                                           panel.remote_id, (read.get("meta") or {}).get(
                                               "versionId"), foreign=foreign)
            elif kept:  # foreign: read again, kept again
                foreign = parse_foreign(self.mapper, edited, resolve=self._remote_resolver(),
                                        record_id=local.record_id)
                report.notes += self._save(local.concept, foreign.record, rtype,
                                           known.local_id, rid, version, foreign=foreign)
            else:
                record = self.view.rebuild(local.concept, local.record_id,
                                           (rtype, known.local_id), edited)
                self._save(local.concept, record, rtype, known.local_id, rid, version)
        except RemoteError:
            raise  # the target failed us: the pull fails, nothing is refused
        except BridgeError as exc:
            self._reject(resource, _describe(exc), report)
            return
        report.applied += 1

    def _import(self, resource: dict, report: PullReport, depth: int) -> str | None:
        """A resource the bridge never wrote (or whose write we never heard back about)."""
        rtype, rid = resource["resourceType"], resource["id"]
        if (rtype, rid) in self._refused:  # read again by another path in this pull
            return None
        version = (resource.get("meta") or {}).get("versionId")
        mapping = self.mapper.classify(resource)
        if mapping is None or mapping.child:
            panel = self._panel_of(resource)
            if panel is not None:  # an item or total: it comes in with its panel
                report.members += 1
                return None
            self._reject(resource, f"no mapping reads this {rtype}", report)
            return None
        importable = {m.resource_type for m in self.mapper.mappings.values() if not m.child}
        for ref in references.references(resource, skip=("hasMember",)):
            key = references.split(ref)
            if key and key[0] in importable:  # else: an external reference (noted)
                self._ensure_local(ref, report, depth + 1)
        local_hint = _local_id(rid)
        edited = self.view.localize(resource, local_id=f"{mapping.id_prefix}-{local_hint}")
        try:
            foreign = parse_foreign(self.mapper, edited, resolve=self._remote_resolver(),
                                    record_id=local_hint)
            local_id = self.mapper.resource_id(foreign.concept, local_hint)
            report.notes += self._save(foreign.concept, foreign.record, rtype, local_id, rid,
                                       version, adopt=True, foreign=foreign)
        except Conflict as exc:
            # Another pull worker imported it at the same moment (a practitioner or
            # condition that two patients' resources name): theirs is the one.
            with self.engine.connect() as conn:
                known = remote_map.by_remote_id(conn, self.target.name, rtype, rid)
            if known is None:
                self._reject(resource, _describe(exc), report)
                return None
            report.unchanged += 1
            return known.local_id
        except BridgeError as exc:
            self._reject(resource, _describe(exc), report)
            return None
        report.imported += 1
        return local_id

    def _ensure_local(self, reference: str, report: PullReport, depth: int) -> str | None:
        rtype, rid = reference.split("/", 1)
        with self.engine.connect() as conn:
            known = remote_map.by_remote_id(conn, self.target.name, rtype, rid)
        if known is not None:
            return known.local_id
        if depth > MAX_IMPORT_DEPTH:
            return None
        try:
            resource = self.client.read(rtype, rid)
        except RemoteError as exc:
            report.reasons.append(f"{reference}: {exc.message}")
            return None
        return self._import(resource, report, depth)

    # -- helpers --------------------------------------------------------------------------------

    def _save(self, concept_name: str, record: dict, rtype: str, local_id: str, remote_id: str,
              version: str | None, adopt: bool = False,
              foreign: Foreign | None = None) -> list[str]:
        """Save a record read from the target; for a foreign one, the notes not made before
        ("Type/id: FHIRPath: reason")."""
        concept = concept_by_name(concept_name)
        record = load_record(concept, record)

        members = [m for m in foreign.members if m.version is not None] if foreign else []
        held = [(rtype, local_id, remote_id, version)] + [  # and a foreign panel's items
            (*m.key, m.sent_id, m.version) for m in members]

        def settle(conn, saved):
            # The target already has these resources: their new outbox rows are done, and the
            # remote map holds each one's id, version and the content we now have.
            if adopt:  # resources made from an import exist on the target in its own form
                for row in conn.execute(sa.select(t.resources.c.resource_type, t.resources.c.id)
                                        .where(t.resources.c.concept == concept.name,
                                               t.resources.c.record_id == record["id"])):
                    conn.execute(t.outbox.update().where(
                        t.outbox.c.resource_type == row.resource_type,
                        t.outbox.c.resource_id == row.id,
                        t.outbox.c.status == "pending").values(status="done"))
            for held_type, held_id, held_remote, held_version in held:
                current = conn.execute(sa.select(t.resources.c.content_hash).where(
                    t.resources.c.resource_type == held_type,
                    t.resources.c.id == held_id)).scalar()
                conn.execute(t.outbox.update().where(
                    t.outbox.c.resource_type == held_type, t.outbox.c.resource_id == held_id,
                    t.outbox.c.status == "pending").values(status="done"))
                remote_map.remember(conn, self.target.name, held_type, held_id, held_remote,
                                    held_version, current)
            rejects.clear(conn, self.target.name, rtype, remote_id)  # taken in after all

        self.store.save([(concept, record)], also=settle, source=self.source,
                        keep=[foreign] if foreign is not None else [])
        if foreign is None:
            return []
        new = []
        with self.engine.begin() as conn:  # each resource's notes under the target's id of it
            for (held_type, _, held_remote, _), notes in zip(
                    held, [foreign.notes] + [m.notes for m in members]):
                new += [f"{held_type}/{held_remote}: {path}: {why}" for path, why in
                        sync_notes.record_notes(conn, self.target.name, held_type, held_remote,
                                                notes)]
        return new

    def _remote_resolver(self):
        """For children of an imported resource (a panel's items): read them, localized."""
        def resolve(reference: str):
            key = references.split(reference)
            if key is None:
                return None
            with self.engine.connect() as conn:
                known = remote_map.by_remote_id(conn, self.target.name, *key)
                ours = remote_map.load(conn, self.target.name, {key}).get(key)
            if known is None and ours is not None and self.view.kept(*key):
                key = (key[0], ours.remote_id)  # a foreign member, named by its local id
            elif known is not None and not self.view.kept(key[0], known.local_id):
                row = self.view.local_row(key[0], known.local_id)
                return jsonio.loads(row.content) if row is not None else None
            try:  # not read yet, or foreign: kept as the target has it now
                return self.view.localize(self.client.read(*key), key[1])
            except RemoteError:
                return None

        return resolve

    def _written_by_us(self, resource: dict) -> str | None:
        """The local id of a resource the bridge wrote (its identifier), if stored here."""
        mapping = self.mapper.classify(resource)
        identifiers = resource.get("identifier") or []
        if mapping is None or not identifiers or \
                identifiers[0].get("system") != self.mapper.identifier_system(mapping.concept):
            return None
        local_id = f"{mapping.id_prefix}-{identifiers[0]['value']}"
        return local_id if self.view.local_row(resource["resourceType"], local_id) else None

    def _panel_of(self, resource: dict) -> str | None:
        """The panel Observation whose hasMember lists this one, if any."""
        if resource["resourceType"] != "Observation":
            return None
        try:
            bundle = self.client.search("Observation", {
                "has-member": f"Observation/{resource['id']}", "_elements": "id"})
        except RemoteError:
            return None
        entries = bundle.get("entry") or []
        return entries[0]["resource"]["id"] if entries else None

    def _reject(self, resource: dict, reason: str, report: PullReport) -> None:
        self._refused.add((resource["resourceType"], str(resource.get("id"))))
        report.rejected += 1
        report.reasons.append(f"{resource['resourceType']}/{resource.get('id')}: {reason}")
        rejects.record(self.engine, self.target.name, resource, reason)  # once per reason


def _local_id(remote_id: str) -> str:
    return remote_id if _ID.match(remote_id) else "r" + re.sub(r"[^A-Za-z0-9.\-]", "-",
                                                                remote_id)[:47]


def _describe(exc: BridgeError) -> str:
    details = "; ".join(f"{i.path}: {i.message}" for i in exc.issues)
    return f"{exc.message}: {details}" if details else exc.message
