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
beside its record, and each element the record has no place for is noted once, by its
FHIRPath and why, in the report and in ``sync_notes``. A reference to something that could not
be imported (or a type the bridge never imports) stays an external reference, with a note.
Whatever cannot be made into a record at all is stored in ``sync_rejects`` with its reason,
never dropped.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlalchemy as sa

from ..errors import BridgeError, MappingError, RemoteError
from ..fhir import jsonio, references
from ..mapping.document import load_record
from ..mapping.engine import Mapper
from ..mapping.foreign import Foreign, parse_foreign
from ..model import concept_by_name
from ..model.common import ID_PATTERN
from ..store import counters
from ..store import tables as t
from ..store.records import RecordStore
from . import notes as sync_notes, rejects, remote_map
from .conflicts import record_conflict
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
                 target: Target, types: tuple[str, ...] = PULL_TYPES):
        self.engine = engine
        self.mapper = mapper
        self.store = store
        self.client = client
        self.target = target
        self.types = types
        self.source = f"pull:{target.name}"
        self._refused: set[tuple[str, str]] = set()  # this pull's rejects: refused once each

    # -- the loop ------------------------------------------------------------------------------

    def managed_patients(self) -> list[str]:
        rr = t.remote_resources
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(rr.c.remote_id).where(
                rr.c.target == self.target.name, rr.c.resource_type == "Patient")
                .order_by(rr.c.remote_id)).scalars())

    def pull(self, patients: list[str] | None = None,
             progress: Callable[[PullReport], None] | None = None) -> PullReport:
        """Pull each patient's resources; ``progress`` gets the running totals after each
        patient."""
        report = PullReport()
        self._refused = set()
        try:
            for patient in patients or self.managed_patients():
                if patients:
                    self._ensure_local(f"Patient/{patient}", report, depth=0)
                for rtype in self.types:
                    self._pull_type(rtype, patient, report)
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

    def _pull_type(self, rtype: str, patient: str, report: PullReport) -> None:
        wm = t.sync_watermarks
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
        for resource in self.client.search_all(rtype, params):
            report.seen += 1
            self._apply(resource, report)
            updated = (resource.get("meta") or {}).get("lastUpdated")
            if updated and (newest is None or updated > newest):
                newest = updated
        if newest and newest != watermark:
            with self.engine.begin() as conn:
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
        local = self._local_row(rtype, known.local_id)
        if local is None:
            self._reject(resource, f"maps to {rtype}/{known.local_id}, which is gone locally",
                         report)
            return
        if self._pending_locally(rtype, known.local_id):
            record_conflict(self.engine, self.client, self.target.name, rtype, known.local_id,
                            rid, jsonio.loads(local.content), resource)
            report.conflicts += 1
            report.reasons.append(f"{rtype}/{rid}: changed on both sides; conflict recorded")
            return
        edited = self._localize(resource, local_id=known.local_id)
        try:
            if self._kept(rtype, known.local_id):  # foreign: read again, kept again
                foreign = parse_foreign(self.mapper, edited, resolve=self._remote_resolver(),
                                        record_id=local.record_id)
                report.notes += self._save(local.concept, foreign.record, rtype,
                                           known.local_id, rid, version, foreign=foreign)
            else:
                record = self._rebuild(local.concept, local.record_id, (rtype, known.local_id),
                                       edited)
                self._save(local.concept, record, rtype, known.local_id, rid, version)
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
        edited = self._localize(resource, local_id=f"{mapping.id_prefix}-{local_hint}")
        try:
            foreign = parse_foreign(self.mapper, edited, resolve=self._remote_resolver(),
                                    record_id=local_hint)
            local_id = self.mapper.resource_id(foreign.concept, local_hint)
            report.notes += self._save(foreign.concept, foreign.record, rtype, local_id, rid,
                                       version, adopt=True, foreign=foreign)
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

        def settle(conn, saved):
            # The target already has this resource: its new outbox rows are done, and the
            # remote map holds its id, version and the content we now have.
            current = conn.execute(sa.select(t.resources.c.content_hash).where(
                t.resources.c.resource_type == rtype, t.resources.c.id == local_id)).scalar()
            conn.execute(t.outbox.update().where(
                t.outbox.c.resource_type == rtype, t.outbox.c.resource_id == local_id,
                t.outbox.c.status == "pending").values(status="done"))
            if adopt:  # resources made from an import exist on the target in its own form
                for row in conn.execute(sa.select(t.resources.c.resource_type, t.resources.c.id)
                                        .where(t.resources.c.concept == concept.name,
                                               t.resources.c.record_id == record["id"])):
                    conn.execute(t.outbox.update().where(
                        t.outbox.c.resource_type == row.resource_type,
                        t.outbox.c.resource_id == row.id,
                        t.outbox.c.status == "pending").values(status="done"))
            remote_map.remember(conn, self.target.name, rtype, local_id, remote_id, version,
                                current)
            rejects.clear(conn, self.target.name, rtype, remote_id)  # taken in after all

        self.store.save([(concept, record)], also=settle, source=self.source,
                        keep=[foreign] if foreign is not None else [])
        if foreign is None or not foreign.notes:
            return []
        with self.engine.begin() as conn:
            new = sync_notes.record_notes(conn, self.target.name, rtype, remote_id,
                                          foreign.notes)
        return [f"{rtype}/{remote_id}: {path}: {why}" for path, why in new]

    def _rebuild(self, concept: str, record_id: str, edited_key: tuple[str, str],
                 edited: dict) -> dict:
        """The owning record again, from its resources with the edited one swapped in."""
        res = t.resources
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(res).where(res.c.concept == concept,
                                                     res.c.record_id == record_id,
                                                     res.c.deleted.is_(False))).all()
        by_ref = {f"{r.resource_type}/{r.id}": jsonio.loads(r.content) for r in rows}
        by_ref[f"{edited_key[0]}/{edited_key[1]}"] = edited
        main_id = self.mapper.resource_id(concept, record_id)
        main_type = self.mapper.resource_type(concept)
        back = self.mapper.to_internal(by_ref[f"{main_type}/{main_id}"], resolve=by_ref.get)
        lost = [f"{path}: {why}" for path, why in back.unmapped]
        if lost:
            raise MappingError("; ".join(lost), "parse")
        return back.record

    def _localize(self, resource: dict, local_id: str) -> dict:
        """A remote resource with local ids: itself and every reference the map knows."""
        out = jsonio.loads(jsonio.dumpb(resource))
        out["id"] = local_id
        refs = {references.split(r) for r in references.references(out) if references.split(r)}
        with self.engine.connect() as conn:
            local = {}
            for rtype, rid in refs:
                known = remote_map.by_remote_id(conn, self.target.name, rtype, rid)
                if known is not None:
                    local[f"{rtype}/{rid}"] = f"{rtype}/{known.local_id}"
        references.rewrite(out, lambda ref: local.get(ref, ref))
        return out

    def _remote_resolver(self):
        """For children of an imported resource (a panel's items): read them, localized."""
        def resolve(reference: str):
            key = references.split(reference)
            if key is None:
                return None
            with self.engine.connect() as conn:
                known = remote_map.by_remote_id(conn, self.target.name, *key)
            if known is not None:
                row = self._local_row(key[0], known.local_id)
                return jsonio.loads(row.content) if row is not None else None
            try:
                return self._localize(self.client.read(*key), key[1])
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
        return local_id if self._local_row(resource["resourceType"], local_id) else None

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

    def _kept(self, rtype: str, local_id: str) -> bool:
        fc = t.foreign_content
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.literal(1)).where(
                fc.c.resource_type == rtype, fc.c.id == local_id)).first() is not None

    def _local_row(self, rtype: str, local_id: str):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(t.resources).where(
                t.resources.c.resource_type == rtype, t.resources.c.id == local_id)).first()

    def _pending_locally(self, rtype: str, local_id: str) -> bool:
        o = t.outbox
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.literal(1)).where(
                o.c.resource_type == rtype, o.c.resource_id == local_id,
                o.c.status.in_(("pending", "conflict")))).first() is not None

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
