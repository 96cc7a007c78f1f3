"""Push: outbox rows become transaction bundles sent to the target.

Per batch: rows are claimed (with the unsent resources they point at), coalesced per resource
(one entry per resource, so no conditional identity appears twice in a bundle), and sent as one
transaction built by :mod:`.bundles`; content the target already has (same hash as last sent)
is not sent again. A first write goes to the resource's client id or is a conditional update,
as recorded for the target (:mod:`.first_writes`).

Up to ``in_flight`` bundles are on their way at once (threads sharing the one client). A batch
is claimed and built while others are in flight, but goes only once every bundle in flight
holding a resource it points at has been answered: a bundle never points at an unconfirmed
resource of another bundle still in flight (the server could process them in any order).
References to those resources are built as ``Type/<client id>`` (or by identifier), which
resolve once their bundle has committed.

Before each transaction, an entry that points at a resource not yet on the target and not in
the same transaction (leased by another or a dead worker, waiting for a retry, dead-lettered)
is deferred: it waits for it, without counting an attempt (:mod:`.dependencies`).

Failures: unreachable, 429 and 5xx put the rows back with backoff (dead-lettered after
``max_attempts``); a refused bundle is bisected - halves in dependency order, recursively -
until the refused entries are isolated, which alone are dead-lettered with the server's reason:
about 2 log2(n) more bundles per refused entry, not n. A server without transactions gets the
same requests one by one, in dependency order.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

import sqlalchemy as sa

from .. import audit
from ..errors import RemoteConflict, RemoteError, RemoteRejected, RemoteUnavailable
from ..store import counters, outbox
from ..store import tables as t
from ..store.batch_reads import resource_rows
from ..store.records import utcnow
from . import dependencies, remote_map
from .bundles import Entry, audit_entries, build, location
from .claimed import Claimed
from .targets import Target

log = logging.getLogger("fhir_bridge.sync.push")


@dataclass
class PushReport:
    sent: int = 0  # resources written or deleted on the target
    unchanged: int = 0  # skipped: the target already has this content
    retried: int = 0  # rows put back for a later attempt
    waiting: int = 0  # rows deferred until what they point at is on the target
    dead: int = 0  # rows dead-lettered
    conflicts: int = 0  # rows held as conflicts
    bundles: int = 0  # transactions (or single requests) the target answered
    unavailable: bool = False  # the target could not be reached: stop this pass
    errors: list[str] = field(default_factory=list)

    def add(self, other: "PushReport") -> None:
        for name in ("sent", "unchanged", "retried", "waiting", "dead", "conflicts", "bundles"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unavailable = self.unavailable or other.unavailable
        self.errors.extend(other.errors)

    def totals(self) -> dict[str, int]:
        """What this report adds to the running totals (store/counters.py, /metrics)."""
        amounts = {f"push_{name}": getattr(self, name) for name in
                   ("sent", "unchanged", "retried", "dead", "conflicts", "bundles")}
        amounts["push_unavailable"] = int(self.unavailable)
        if not self.unavailable and (self.sent or self.unchanged):
            amounts["push_ok"] = 1
        return amounts


@dataclass
class Batch:
    """Claimed rows made ready to send: their entries in dependency order (units a split
    never cuts) and the transaction bundle, whose entries come in that same order."""

    token: str
    units: list[list[Entry]]
    bundle: dict | None
    report: PushReport

    @property
    def todo(self) -> list[Entry]:
        return [e for unit in self.units for e in unit]

    @property
    def keys(self) -> set:
        return {e.key for e in self.todo}

    @property
    def needs(self) -> set:
        """The stored resources outside this batch that its entries point at."""
        return set().union(*(e.deps for e in self.todo)) - self.keys

    @property
    def placed(self) -> dict:
        """Its first writes by client id: (type, local id) -> client id."""
        return {e.key: e.client_id for e in self.todo if e.client_id and not e.deleted}


class Pusher:
    def __init__(self, engine: sa.Engine, client, target: Target, worker: str = "worker",
                 transactions: bool = True, in_flight: int | None = None):
        self.engine = engine
        self.client = client
        self.target = target
        self.worker = worker
        self.transactions = transactions
        self.in_flight = max(1, in_flight or target.in_flight)

    def push_all(self, max_batches: int | None = None,
                 stop: "threading.Event | None" = None,
                 progress: "Callable[[PushReport], None] | None" = None) -> PushReport:
        """Push until no row that was due when the pass began is left (or max_batches), or
        the target is unreachable: then the rows wait in the outbox for their backoff and a
        later pass. A row that fails during the pass waits for a later one too, however short
        its backoff.

        Up to ``in_flight`` bundles go at once (see the module docstring); the next batch is
        claimed and built meanwhile, so the bridge's own work hides behind the server's. The
        check for unconfirmed dependencies runs when a batch is about to go, after the bundles
        it waited for have been answered. With ``stop`` set (a worker told to end), the
        bundles in flight are finished and no other batch is claimed. ``progress`` gets the
        running totals after each bundle."""
        report = PushReport()
        flying: list[tuple[Future, Batch]] = []
        batches = 0
        began = utcnow()

        def settle(done: list[tuple[Future, Batch]]) -> bool:
            """Take in these answered bundles; False when the target could not be reached."""
            reached = True
            for item in done:
                flying.remove(item)
                one = item[0].result()
                report.add(one)
                if progress is not None:
                    progress(report)
                reached = reached and not one.unavailable
            return reached

        def settle_one() -> bool:
            finished, _ = wait([f for f, _ in flying], return_when=FIRST_COMPLETED)
            return settle([item for item in flying if item[0] in finished])

        def may_claim() -> bool:
            return (max_batches is None or batches < max_batches) and \
                not (stop is not None and stop.is_set())

        with ThreadPoolExecutor(max_workers=self.in_flight,
                                thread_name_prefix="push-send") as sender:
            batch = self._prepare({}, began)
            reached = True
            while reached and batch is not None:
                pointed = [item for item in flying if item[1].keys & batch.needs]
                reached = settle(pointed)
                while reached and len(flying) >= self.in_flight:
                    reached = settle_one()
                if not reached:
                    outbox.unclaim(self.engine, batch.token)  # not tried: back as it was
                    break
                flying.append((sender.submit(self._deliver, batch), batch))
                batches += 1
                batch = self._prepare(self._placed(flying), began) if may_claim() else None
                reached = settle([item for item in flying if item[0].done()])
                if not reached and batch is not None:
                    outbox.unclaim(self.engine, batch.token)
            while flying:
                settle_one()
        return report

    @staticmethod
    def _placed(flying: list[tuple[Future, Batch]]) -> dict:
        placed: dict = {}
        for _, batch in flying:
            placed.update(batch.placed)
        return placed

    def push_batch(self) -> PushReport:
        batch = self._prepare({}, utcnow())
        return self._deliver(batch) if batch is not None else PushReport()

    def _prepare(self, placed: dict, began: dt.datetime) -> "Batch | None":
        """Claim the rows due when the pass ``began`` (and what they point at), skip what the
        target already has, and build the bundle (``placed``: client ids of resources in
        bundles still in flight)."""
        token, rows = outbox.claim(self.engine, self.worker, self.target.batch_size,
                                   self.target.lease_seconds, due_by=began)
        if not rows:
            return None
        report = PushReport()
        claimed = Claimed(self.engine, self.target, token)
        entries = claimed.entries(claimed.with_dependencies(rows))
        unchanged = [e for e in entries if self._unchanged(e)]
        if unchanged:
            with self.engine.begin() as conn:
                outbox.complete(conn, token, [s for e in unchanged for s in e.seqs])
            report.unchanged += len(unchanged)
        units = dependencies.units([e for e in entries if not self._unchanged(e)])
        batch = Batch(token, units, None, report)
        if units and self.transactions:
            with self.engine.connect() as conn:
                batch.bundle = build(conn, self.target.name, batch.todo, placed)
        return batch

    def _deliver(self, batch: "Batch") -> PushReport:
        if batch.units:
            self._transmit_batch(batch)
        counters.add(self.engine, self.target.name, batch.report.totals())
        return batch.report

    def _transmit_batch(self, batch: "Batch") -> None:
        if self.transactions:
            self._send(batch.token, batch.units, batch.report, bundle=batch.bundle)
        else:
            # One request per resource, in dependency order: each finds what it points at
            # already confirmed (no urn:uuid to point at outside a bundle).
            for entry in batch.todo:
                self._send(batch.token, [[entry]], batch.report)

    def _unchanged(self, entry: Entry) -> bool:
        return not entry.deleted and entry.remote is not None \
            and entry.remote.pushed_hash == entry.content_hash

    # -- sending --------------------------------------------------------------------------------

    def _send(self, token: str, units: list[list[Entry]], report: PushReport,
              bundle: dict | None = None) -> None:
        """Send these units as one transaction (``bundle``: already built from them, in their
        order); when it is refused, bisect (each half in turn, so the second finds the first's
        resources confirmed) down to single units."""
        entries = [e for unit in units for e in unit]
        if report.unavailable:  # the target went away meanwhile: the rest wait
            seqs = [s for e in entries for s in e.seqs]
            report.retried += len(seqs)
            report.dead += outbox.release(self.engine, token, seqs, "target unavailable",
                                          self.target.max_attempts,
                                          base=self.target.retry_base_seconds)
            return
        held = self._hold_back(token, entries, report)
        if held:
            units = [kept for kept in ([e for e in unit if e not in held] for unit in units)
                     if kept]
            entries = [e for unit in units for e in unit]
            bundle = None
            if not entries:
                return
        seqs = [s for e in entries for s in e.seqs]
        try:
            responses = self._transmit(entries, bundle, report)
        except RemoteUnavailable as exc:
            report.unavailable = True
            report.retried += len(seqs)
            report.dead += outbox.release(self.engine, token, seqs, _reason(exc),
                                          self.target.max_attempts, exc.retry_after,
                                          base=self.target.retry_base_seconds)
            report.errors.append(_reason(exc))
            return
        except (RemoteRejected, RemoteConflict) as exc:
            if len(units) > 1:  # find the entries the server refuses; send the others
                middle = len(units) // 2
                self._send(token, units[:middle], report)
                self._send(token, units[middle:], report)
                return
            for entry in entries:  # one entry, or a reference cycle that cannot be cut
                self._refused(token, entry, exc, report)
            return
        if len(responses) != len(entries):
            report.retried += len(seqs)
            outbox.release(self.engine, token, seqs, "the answer does not match the bundle",
                           self.target.max_attempts, base=self.target.retry_base_seconds)
            return
        self._confirm(token, entries, responses)
        report.sent += len(entries)

    def _hold_back(self, token: str, entries: list[Entry], report: PushReport) -> set[Entry]:
        """Defer the entries that point at resources not yet on the target (nor in this
        transaction); they come back when the lease on those runs out or soon after."""
        with self.engine.connect() as conn:
            waiting = dependencies.waits(conn, self.target.name, token, entries,
                                         poll_seconds=self.target.retry_base_seconds,
                                         hold_seconds=self.target.lease_seconds)
        if waiting:
            outbox.defer(self.engine, token, {seq: (wait.until, wait.reason)
                                              for entry, wait in waiting.items()
                                              for seq in entry.seqs})
            report.waiting += sum(len(entry.seqs) for entry in waiting)
            log.info("%d resources wait for what they point at", len(waiting))
        return set(waiting)

    def _transmit(self, entries: list[Entry], bundle: dict | None,
                  report: PushReport) -> list[dict]:
        """One transaction (or, without transactions, the one request): the answer's entries."""
        if bundle is None:
            with self.engine.connect() as conn:
                bundle = build(conn, self.target.name, entries)
        try:
            if self.transactions:
                answer = self.client.transaction(bundle)
                responses = [entry.get("response", {}) for entry in answer.get("entry", [])]
            else:
                responses = [self._send_one(bundle["entry"][0])]
        except (RemoteRejected, RemoteConflict):
            report.bundles += 1  # answered, with a refusal
            raise
        report.bundles += 1
        return responses

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
                    remote_id, version = location(response, entry)
                    confirmed.append((entry.resource_type, entry.local_id, remote_id, version,
                                      entry.content_hash))
            remote_map.remember_many(conn, self.target.name, confirmed)
            now_stored = resource_rows(conn, {e.key for e in entries},
                                 columns=("content_hash", "patient_id"))
            audit.record(conn, audit_entries(self.target.name, self.worker, entries,
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
            # A conditional reference matched nothing although its target was confirmed:
            # try again in a moment, counted (it may really be gone from the target).
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
    """A conditional reference that matches nothing: its target is not there (yet)."""
    return "No resources match" in reason or "no match" in reason.lower()
