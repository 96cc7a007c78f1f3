"""Push: outbox rows become transaction bundles sent to the target.

Per batch: rows are claimed, coalesced per resource (one entry per resource, so no conditional
identity appears twice in a bundle), and sent as one transaction:
- a resource the target has not confirmed yet is a conditional update by the bridge's
  identifier (``PUT Type?identifier=system|value``), so a retry after a lost answer updates
  instead of duplicating;
- a resource the target holds is ``PUT Type/<remote id>`` with ``If-Match`` on the version we
  last saw: a newer remote edit makes it fail (409/412) and becomes a conflict record, never an
  overwrite;
- references point at the entry's ``urn:uuid`` when the target is in the same bundle, at the
  remote id when known, else at a conditional reference ``Type?identifier=...``;
- content the target already has (same hash as last sent) is not sent again.
Failures: unreachable, 429 and 5xx put the rows back with backoff (dead-lettered after
``max_attempts``); a rejected bundle is split into single-entry transactions to find the bad
entry, which alone is dead-lettered with the server's reason. A server without transactions
gets the same requests one by one.
"""

from __future__ import annotations

import logging
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import sqlalchemy as sa

from .. import audit
from ..errors import RemoteConflict, RemoteError, RemoteRejected, RemoteUnavailable
from ..fhir import jsonio, references
from ..store import outbox
from ..store import tables as t
from ..store.records import utcnow
from . import remote_map
from .targets import BRIDGE_TAG, Target

log = logging.getLogger("fhir_bridge.sync.push")
_LOCATION = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([^/]+))?")


@dataclass
class PushReport:
    sent: int = 0  # resources written or deleted on the target
    unchanged: int = 0  # skipped: the target already has this content
    retried: int = 0  # rows put back for a later attempt
    dead: int = 0  # rows dead-lettered
    conflicts: int = 0  # rows held as conflicts
    bundles: int = 0
    unavailable: bool = False  # the target could not be reached: stop this pass
    errors: list[str] = field(default_factory=list)

    def add(self, other: "PushReport") -> None:
        for name in ("sent", "unchanged", "retried", "dead", "conflicts", "bundles"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unavailable = self.unavailable or other.unavailable
        self.errors.extend(other.errors)


@dataclass
class Entry:
    resource_type: str
    local_id: str
    seqs: list[int]
    deleted: bool
    content: dict | None
    content_hash: str | None
    remote: remote_map.Remote | None
    identity: tuple[str, str] | None  # the bridge's identifier (system, value)
    raw: str  # the stored JSON, parsed again for a copy to rewrite

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_type, self.local_id


@dataclass
class Batch:
    """Claimed rows made ready to send: their entries and the transaction bundle."""

    token: str
    todo: list[Entry]
    bundle: dict | None
    report: PushReport


class Pusher:
    def __init__(self, engine: sa.Engine, client, target: Target, worker: str = "worker",
                 transactions: bool = True):
        self.engine = engine
        self.client = client
        self.target = target
        self.worker = worker
        self.transactions = transactions

    def push_all(self, max_batches: int | None = None) -> PushReport:
        """Push until no row is due (or max_batches), or the target is unreachable: then the
        rows wait in the outbox for their backoff and a later pass.

        The next batch is claimed and built while the current bundle is in flight (one sender
        thread), so the bridge's own work hides behind the server's. Its references to the
        bundle in flight go by identifier, which resolves once that bundle has committed."""
        report = PushReport()
        batches = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-send") as sender:
            batch = self._prepare()
            while batch is not None:
                in_flight = sender.submit(self._deliver, batch)
                batches += 1
                upcoming = None
                if max_batches is None or batches < max_batches:
                    upcoming = self._prepare()
                one = in_flight.result()
                report.add(one)
                if one.unavailable:
                    if upcoming is not None:  # not tried: back in the queue as it was
                        outbox.unclaim(self.engine, upcoming.token)
                    break
                batch = upcoming
        return report

    def push_batch(self) -> PushReport:
        batch = self._prepare()
        return self._deliver(batch) if batch is not None else PushReport()

    def _prepare(self) -> "Batch | None":
        """Claim due rows (and what they point at), skip what the target already has, and
        build the bundle."""
        token, rows = outbox.claim(self.engine, self.worker, self.target.batch_size,
                                   self.target.lease_seconds)
        if not rows:
            return None
        report = PushReport()
        current: dict = {}  # (type, id) -> resources row, read once per batch
        rows = self._with_dependencies(token, rows, current)
        entries = self._entries(rows, current)
        unchanged = [e for e in entries if self._unchanged(e)]
        if unchanged:
            with self.engine.begin() as conn:
                outbox.complete(conn, token, [s for e in unchanged for s in e.seqs])
            report.unchanged += len(unchanged)
        todo = [e for e in entries if not self._unchanged(e)]
        bundle = self._bundle(todo) if todo and self.transactions else None
        return Batch(token, todo, bundle, report)

    def _deliver(self, batch: "Batch") -> PushReport:
        if batch.todo:
            self._send(batch.token, batch.todo, batch.report, split=len(batch.todo) > 1,
                       bundle=batch.bundle)
        return batch.report

    # -- building -------------------------------------------------------------------------------

    def _with_dependencies(self, token: str, rows: list[outbox.OutboxRow], current: dict,
                           depth: int = 3) -> list[outbox.OutboxRow]:
        """Bring along the unsent resources that the claimed ones point at, so that every
        reference resolves inside the bundle or on the target."""
        keys = {(r.resource_type, r.resource_id) for r in rows}
        for _ in range(depth):
            with self.engine.connect() as conn:
                current.update(_current(conn, keys - set(current)))
                wanted = {references.split(r) for key in keys if key in current
                          and not current[key].deleted
                          for r in references.references(jsonio.loads(current[key].content))
                          if references.split(r)} - keys
                wanted -= set(remote_map.load(conn, self.target.name, wanted))
            added = outbox.claim_resources(self.engine, token, wanted, self.target.lease_seconds)
            if not added:
                break
            rows = rows + added
            keys |= {(r.resource_type, r.resource_id) for r in added}
        return rows

    def _entries(self, rows: list[outbox.OutboxRow], current: dict) -> list[Entry]:
        seqs: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            seqs.setdefault((row.resource_type, row.resource_id), []).append(row.seq)
        with self.engine.connect() as conn:
            current.update(_current(conn, set(seqs) - set(current)))
            remotes = remote_map.load(conn, self.target.name, set(seqs))
        entries = []
        for key, row_seqs in seqs.items():
            row = current[key]
            content = jsonio.loads(row.content)  # a deleted resource keeps its last content
            entries.append(Entry(key[0], key[1], row_seqs, bool(row.deleted), content,
                                 None if row.deleted else row.content_hash, remotes.get(key),
                                 _identity(content), row.content))
        return entries

    def _unchanged(self, entry: Entry) -> bool:
        return not entry.deleted and entry.remote is not None \
            and entry.remote.pushed_hash == entry.content_hash

    def _bundle(self, entries: list[Entry]) -> dict:
        in_bundle = {e.key: e for e in entries if not e.deleted}
        needed = set()
        for e in entries:
            if not e.deleted:
                needed |= {references.split(r) for r in references.references(e.content)
                           if references.split(r)}
        needed -= set(in_bundle)
        with self.engine.connect() as conn:
            known = remote_map.load(conn, self.target.name, needed)
            identities = {key: _identity(jsonio.loads(row.content))
                          for key, row in _current(conn, needed - set(known)).items()}
        out = []
        for e in entries:
            full_url = f"urn:uuid:{_uuid(self.target.name, e.key)}"
            if e.deleted:
                # By remote id when known; else by identifier, in case an earlier push landed
                # and its answer was lost.
                url = f"{e.resource_type}/{e.remote.remote_id}" if e.remote else \
                    f"{e.resource_type}?identifier={e.identity[0]}|{e.identity[1]}"
                out.append({"request": {"method": "DELETE", "url": url}})
                continue
            resource = jsonio.loads(e.raw)  # a fresh copy: cheaper than deepcopy
            resource.pop("id")
            if e.remote is not None:
                resource["id"] = e.remote.remote_id
            meta = resource.setdefault("meta", {})
            meta["tag"] = [BRIDGE_TAG]

            def rewrite_one(ref: str) -> str:
                key = references.split(ref)
                if key in in_bundle:
                    return f"urn:uuid:{_uuid(self.target.name, key)}"
                if key in known:
                    return f"{key[0]}/{known[key].remote_id}"
                if key in identities:
                    system, value = identities[key]
                    return f"{key[0]}?identifier={system}|{value}"
                return ref

            references.rewrite(resource, rewrite_one)
            if e.remote is not None:
                request = {"method": "PUT", "url": f"{e.resource_type}/{e.remote.remote_id}"}
                if e.remote.remote_version:
                    request["ifMatch"] = f'W/"{e.remote.remote_version}"'
            else:
                system, value = e.identity
                request = {"method": "PUT",
                           "url": f"{e.resource_type}?identifier={system}|{value}"}
            out.append({"fullUrl": full_url, "resource": resource, "request": request})
        return {"resourceType": "Bundle", "type": "transaction", "entry": out}

    # -- sending --------------------------------------------------------------------------------

    def _send(self, token: str, entries: list[Entry], report: PushReport, split: bool,
              bundle: dict | None = None) -> None:
        if not self.transactions and len(entries) > 1:
            # One request per resource: no urn:uuid inside a bundle to point at, so each
            # entry is built alone (references to the target's ids or by identifier).
            self._send_each(token, entries, report)
            return
        bundle = bundle or self._bundle(entries)
        seqs = [s for e in entries for s in e.seqs]
        try:
            if self.transactions:
                answer = self.client.transaction(bundle)
                responses = [entry.get("response", {}) for entry in answer.get("entry", [])]
            else:
                responses = [self._send_one(bundle["entry"][0])]
            report.bundles += 1
        except RemoteUnavailable as exc:
            report.unavailable = True
            report.retried += len(seqs)
            report.dead += outbox.release(self.engine, token, seqs, _reason(exc),
                                          self.target.max_attempts, exc.retry_after,
                                          base=self.target.retry_base_seconds)
            report.errors.append(_reason(exc))
            return
        except (RemoteRejected, RemoteConflict) as exc:
            if split:  # find the entry the server refuses; send the others
                self._send_each(token, entries, report)
                return
            self._refused(token, entries[0], exc, report)
            return
        if len(responses) != len(entries):
            report.retried += len(seqs)
            outbox.release(self.engine, token, seqs, "the answer does not match the bundle",
                           self.target.max_attempts, base=self.target.retry_base_seconds)
            return
        self._confirm(token, entries, responses)
        report.sent += len(entries)

    def _send_each(self, token: str, entries: list[Entry], report: PushReport) -> None:
        for index, entry in enumerate(entries):
            if report.unavailable:  # the target went away meanwhile: the rest wait
                rest = [s for e in entries[index:] for s in e.seqs]
                report.retried += len(rest)
                outbox.release(self.engine, token, rest, "target unavailable",
                               self.target.max_attempts, base=self.target.retry_base_seconds)
                return
            self._send(token, [entry], report, split=False)

    def _send_one(self, entry: dict) -> dict:
        request = entry["request"]
        headers = {"If-Match": request["ifMatch"]} if "ifMatch" in request else None
        answer = self.client.request(request["method"], request["url"],
                                     json=entry.get("resource"), headers=headers)
        return {"status": str(answer.status), "location": answer.location,
                "etag": answer.etag}

    def _confirm(self, token: str, entries: list[Entry], responses: list[dict]) -> None:
        """Record what the target now holds, and finish the rows: a few statements per
        bundle, not a few per resource."""
        confirmed = []
        with self.engine.begin() as conn:
            for entry, response in zip(entries, responses):
                if entry.deleted:
                    remote_map.forget(conn, self.target.name, *entry.key)
                else:
                    remote_id, version = _location(response, entry)
                    confirmed.append((entry.resource_type, entry.local_id, remote_id, version,
                                      entry.content_hash))
            remote_map.remember_many(conn, self.target.name, confirmed)
            now_stored = _current(conn, {e.key for e in entries},
                                  columns=("content_hash", "patient_id"))
            audit.record(conn, _audit_entries(self.target.name, self.worker, entries,
                                              now_stored))
            moved = [e for e in entries if not e.deleted
                     and now_stored[e.key].content_hash != e.content_hash]
            if moved:  # changed while we were sending: make sure the newer content goes too
                conn.execute(t.outbox.insert(), [
                    dict(resource_type=e.resource_type, resource_id=e.local_id, version_id=0,
                         operation="upsert", status="pending", attempts=0, created_at=utcnow())
                    for e in moved])
            outbox.complete(conn, token, [s for e in entries for s in e.seqs])

    def _refused(self, token: str, entry: Entry, exc: RemoteError,
                 report: PushReport) -> None:
        reason = _reason(exc)
        report.errors.append(f"{entry.resource_type}/{entry.local_id}: {reason}")
        if isinstance(exc, RemoteConflict) and entry.remote is not None:
            from .conflicts import record_conflict

            record_conflict(self.engine, self.client, self.target.name, entry.resource_type,
                            entry.local_id, entry.remote.remote_id, entry.content)
            outbox.mark(self.engine, token, entry.seqs, "conflict", reason)
            report.conflicts += len(entry.seqs)
        elif _waits_for_dependency(reason):
            # What it points at is in another worker's hands: try again in a moment.
            report.retried += len(entry.seqs)
            report.dead += outbox.release(self.engine, token, entry.seqs, reason,
                                          self.target.max_attempts, retry_after=1.0)
        else:
            outbox.mark(self.engine, token, entry.seqs, "dead", reason)
            report.dead += len(entry.seqs)


def _reason(exc: RemoteError) -> str:
    status = f"HTTP {exc.http_status}: " if exc.http_status else ""
    return f"{type(exc).__name__}: {status}{exc.message}"[:2000]


def _waits_for_dependency(reason: str) -> bool:
    """A conditional reference that matches nothing yet: its target is still on its way."""
    return "No resources match" in reason or "no match" in reason.lower()


def _identity(resource: dict) -> tuple[str, str] | None:
    """The bridge's own identifier: the mapping engine always writes it first."""
    identifiers = resource.get("identifier") or []
    return (identifiers[0]["system"], identifiers[0]["value"]) if identifiers else None


def _current(conn: sa.Connection, keys: set[tuple[str, str]],
             columns: tuple[str, ...] | None = None) -> dict:
    """The stored rows of these resources (all columns, or the ones named), in few queries."""
    res = t.resources
    selected = [res.c.resource_type, res.c.id] + [res.c[c] for c in columns] if columns \
        else [res]
    out = {}
    by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, []).append(rid)
    for rtype, ids in by_type.items():
        for start in range(0, len(ids), 500):
            for row in conn.execute(sa.select(*selected).where(
                    res.c.resource_type == rtype, res.c.id.in_(ids[start:start + 500]))):
                out[(rtype, row.id)] = row
    return out


def _audit_entries(target: str, worker: str, entries: list[Entry],
                   stored: dict) -> list[audit.AuditEntry]:
    """One AuditEvent per patient whose resources went to the target (a disclosure)."""
    by_patient: dict[str | None, list[Entry]] = {}
    for entry in entries:
        row = stored.get(entry.key)
        by_patient.setdefault(row.patient_id if row is not None else None, []).append(entry)
    return [audit.AuditEntry(
        action="R", subtype="sync-push", kind="transmit", agent=f"{worker} -> {target}",
        patient_id=patient_id,
        entities=[f"{e.resource_type}/{e.local_id}" for e in group])
        for patient_id, group in by_patient.items()]


def _uuid(target: str, key: tuple[str, str]) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"fhir-bridge:{target}/{key[0]}/{key[1]}")


def _location(response: dict, entry: Entry) -> tuple[str, str | None]:
    match = _LOCATION.search(response.get("location") or "")
    if match and match.group(1) == entry.resource_type:
        version = match.group(3)
        if version is None and response.get("etag"):
            version = response["etag"].removeprefix("W/").strip('"')
        return match.group(2), version
    if entry.remote is not None:
        return entry.remote.remote_id, None
    raise RemoteUnavailable(f"no location for {entry.resource_type}/{entry.local_id}")
