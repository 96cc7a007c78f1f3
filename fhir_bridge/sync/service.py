"""Wiring for sync: a client per target, pushers and pullers over a bridge's store, target
check and clean, conflict resolution."""

from __future__ import annotations

import re
import socket
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..errors import RemoteError, RemoteRejected
from ..store import outbox
from ..store import tables as t
from . import first_writes, remote_map
from .auth import auth_from_config
from .client import FhirClient
from .conflicts import claim, get_open
from .pull import Puller
from .push import Pusher
from .targets import BRIDGE_TAG, Target, target_from_config

#: Delete order for clean-up: what points at others goes first.
CLEAN_ORDER = ("Flag", "DetectedIssue", "CarePlan", "CareTeam", "Observation",
               "MedicationRequest", "Goal", "Condition", "RelatedPerson", "Patient",
               "Practitioner")


def client_for(target: Target) -> FhirClient:
    return FhirClient(target.base_url, auth=auth_from_config(target.auth))


def default_worker() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:6]}"


def pusher_for(bridge, target_name: str | None = None, worker: str | None = None,
               client: FhirClient | None = None) -> Pusher:
    target = target_from_config(bridge.config, target_name)
    client = client or client_for(target)
    transactions = client.capabilities().strategy() == "transaction"
    return Pusher(bridge.engine, client, target, worker or default_worker(), transactions)


def puller_for(bridge, target_name: str | None = None,
               client: FhirClient | None = None, worker: str | None = None) -> Puller:
    target = target_from_config(bridge.config, target_name)
    return Puller(bridge.engine, bridge.mapper, bridge.store, client or client_for(target),
                  target, worker=worker or default_worker())


#: The identifier system of target check's test Patient (with a fresh value each time).
PROBE_SYSTEM = "urn:fhir-bridge:target-check"
#: Answers to the clean-up DELETE that are worth another try: HAPI, just started, may answer
#: 409 to the DELETE of a resource it has just created.
CLEANUP_RETRY_STATUSES = (409,)


@dataclass
class CheckReport:
    target: str
    fhir_version: str | None = None
    software: str | None = None
    transaction: bool = False
    conditional_update: list[str] = field(default_factory=list)
    round_trip: str = "not run"
    ok: bool = False
    left_behind: list[str] = field(default_factory=list)  # test resources it could not delete
    cleanup_error: str | None = None
    first_write: str = first_writes.CONDITIONAL  # how a push writes what the target lacks
    client_ids: str = "not tried"  # what the test Patient at a client-chosen id showed


def check_target(target: Target, client: FhirClient | None = None) -> CheckReport:
    """Capabilities, then create, read and delete one tagged test Patient.

    The clean-up always runs (also when the create or the read fails) and is retried through
    the client (5xx, connection errors, and a 409 to the DELETE); a test Patient it cannot
    delete is named in ``left_behind`` and the check is not ok."""
    client = client or client_for(target)
    report = CheckReport(target.name)
    caps = client.capabilities()
    report.fhir_version, report.transaction = caps.fhir_version, caps.transaction
    report.software = " ".join(filter(None, (caps.software_name, caps.software_version)))
    report.conditional_update = sorted(
        rtype for rtype in CLEAN_ORDER
        if caps.resource(rtype) and caps.resource(rtype).conditional_update)
    value = uuid.uuid4().hex
    probe = {"resourceType": "Patient", "meta": {"tag": [BRIDGE_TAG]},
             "identifier": [{"system": PROBE_SYSTEM, "value": value}],
             "name": [{"family": "Target-Check-Synthetic"}]}
    remote_id = None
    same = False
    failed = None
    try:
        # Conditional: safe to retry, and findable by identifier if the answer is lost.
        created = client.create(probe, if_none_exist={"identifier": f"{PROBE_SYSTEM}|{value}"})
        remote_id = (created.body or {}).get("id") or _id_from_location(created.location)
        read = client.read("Patient", remote_id)
        same = read["identifier"][0]["value"] == value
    except RemoteError as exc:
        failed = f"{'read' if remote_id else 'create'} failed: {_reason(exc)}"
    report.left_behind, report.cleanup_error = _remove_probe(client, remote_id, value)
    if failed is None and same and not report.left_behind:
        report.first_write, report.client_ids = _probe_client_ids(client, report)
    gone = not report.left_behind
    if failed:
        report.round_trip = f"create, read, delete: {failed}"
    elif same and gone:
        report.round_trip = "create, read, delete: ok"
    else:
        report.round_trip = f"create, read, delete: read back {'same' if same else 'different'}" \
            f", {'gone' if gone else 'still there'} after delete"
    if not gone:
        report.round_trip += f"; could not delete {', '.join(report.left_behind)}: " \
            f"{report.cleanup_error}"
    report.ok = (report.fhir_version or "").startswith("4.0") and same and gone \
        and failed is None
    return report


def _probe_client_ids(client: FhirClient, report: CheckReport) -> tuple[str, str]:
    """PUT a tagged test Patient at an id of our own: client ids (first_writes) only when the
    server creates it at exactly that id. Cleaned up like the first test Patient."""
    value = uuid.uuid4().hex
    probe_id = f"fhir-bridge-check-{value}"
    probe = {"resourceType": "Patient", "id": probe_id, "meta": {"tag": [BRIDGE_TAG]},
             "identifier": [{"system": PROBE_SYSTEM, "value": value}],
             "name": [{"family": "Target-Check-Synthetic"}]}
    try:
        answer = client.update(probe)
        landed = (answer.body or {}).get("id") or _id_from_location(answer.location)
    except RemoteError as exc:
        outcome = f"refused: {_reason(exc)}" if isinstance(exc, RemoteRejected) else \
            f"unknown: {_reason(exc)}"
        mode = first_writes.CONDITIONAL
    else:
        mode = first_writes.CLIENT_IDS if landed == probe_id else first_writes.CONDITIONAL
        outcome = "created at the id sent" if landed == probe_id else \
            f"the server chose another id ({landed})"
    left, why = _remove_probe(client, probe_id, value)
    report.left_behind += left
    report.cleanup_error = report.cleanup_error or why
    return mode, outcome


def _remove_probe(client: FhirClient, remote_id: str | None,
                  value: str) -> tuple[list[str], str | None]:
    """Delete the test Patient (by id, and whatever carries its identifier) and make sure it
    is gone: (what is left, why)."""
    ids = {remote_id} if remote_id else set()
    try:
        ids |= {r["id"] for r in client.search_all(
            "Patient", {"identifier": f"{PROBE_SYSTEM}|{value}", "_elements": "id"})}
    except RemoteError as exc:
        if not ids:  # it may or may not exist: say so rather than guess
            return [f"Patient?identifier={PROBE_SYSTEM}|{value}"], _reason(exc)
    left, why = [], None
    for rid in sorted(ids):
        try:
            client.delete("Patient", rid, retry_statuses=CLEANUP_RETRY_STATUSES)
        except RemoteError as exc:
            if isinstance(exc, RemoteRejected) and exc.http_status in (404, 410):
                continue  # already gone
            left.append(f"Patient/{rid}")
            why = _reason(exc)
            continue
        try:
            client.read("Patient", rid)
        except RemoteError:
            continue  # 404/410 as it should be; any other failure: the DELETE's 2xx stands
        left.append(f"Patient/{rid}")
        why = "still readable after the delete"
    return left, why


def _reason(exc: RemoteError) -> str:
    status = f"HTTP {exc.http_status}: " if exc.http_status else ""
    return f"{status}{exc.message}"[:500]


def _id_from_location(location: str | None) -> str:
    match = re.search(r"Patient/([A-Za-z0-9\-.]{1,64})", location or "")
    if match is None:
        raise RemoteRejected("the server did not say where it created the test Patient")
    return match.group(1)


def clean_target(bridge, target: Target, client: FhirClient | None = None) -> dict[str, int]:
    """Delete every resource carrying the bridge's tag on the target, and forget their ids."""
    client = client or client_for(target)
    tag = f"{BRIDGE_TAG['system']}|{BRIDGE_TAG['code']}"
    deleted: dict[str, int] = {}
    for _ in range(len(CLEAN_ORDER)):  # a resource still referenced waits for the next pass
        progress = False
        for rtype in CLEAN_ORDER:
            ids = [r["id"] for r in client.search_all(rtype, {"_tag": tag, "_elements": "id",
                                                              "_count": 200})]
            for remote_id in ids:
                try:
                    client.delete(rtype, remote_id)
                except RemoteError:
                    continue
                deleted[rtype] = deleted.get(rtype, 0) + 1
                progress = True
        if not progress:
            break
    with bridge.engine.begin() as conn:
        conn.execute(t.remote_resources.delete().where(
            t.remote_resources.c.target == target.name))
    return deleted


def resolve_conflict(bridge, conflict_id: int, keep: str, target: Target | str | None = None,
                     client: FhirClient | None = None) -> str:
    """keep="local": push ours over the remote version seen in the conflict;
    keep="remote": take theirs into the internal model."""
    row = get_open(bridge.engine, conflict_id)
    if not isinstance(target, Target):
        target = target_from_config(bridge.config, target or row.target)
    client = client or client_for(target)
    o = t.outbox
    if keep == "local":
        with bridge.engine.begin() as conn:
            claim(conn, conflict_id, "kept-local")  # first: a second resolver stops here
            remote_map.remember(conn, target.name, row.resource_type, row.local_id,
                                row.remote_id, row.remote_version, None)
            conn.execute(o.update().where(o.c.resource_type == row.resource_type,
                                          o.c.resource_id == row.local_id,
                                          o.c.status == "conflict").values(
                status="pending", attempts=0, next_attempt_at=None, claimed_until=None))
        pusher = Pusher(bridge.engine, client, target, default_worker())
        pusher.push_all()
        return "kept-local"
    if keep == "remote":
        remote = client.read(row.resource_type, row.remote_id)  # unreachable: still open
        with bridge.engine.begin() as conn:
            claim(conn, conflict_id, "took-remote")  # first: a second resolver stops here
            conn.execute(o.update().where(o.c.resource_type == row.resource_type,
                                          o.c.resource_id == row.local_id,
                                          o.c.status.in_(("conflict", "pending"))).values(
                status="done", last_error=f"superseded: conflict {conflict_id} took remote"))
        puller = Puller(bridge.engine, bridge.mapper, bridge.store, client, target)
        report = puller.pull_one(remote)
        if report.rejected:
            raise RemoteRejected("the remote version cannot be mapped: "
                                 + "; ".join(report.reasons))
        return "took-remote"
    raise ValueError("keep must be 'local' or 'remote'")


def sync_status(bridge) -> dict:
    with bridge.engine.connect() as conn:
        conflicts = conn.execute(sa.select(sa.func.count()).select_from(t.sync_conflicts)
                                 .where(t.sync_conflicts.c.status == "open")).scalar()
        r = t.sync_rejects.c
        rejects = conn.execute(sa.select(sa.func.count()).select_from(
            sa.select(r.target, r.resource_type, r.remote_id).distinct().subquery())).scalar()
    # pull_rejects: resources held back (each once, whatever its reasons: sync rejects lists)
    return {"outbox": outbox.status_counts(bridge.engine), "open_conflicts": conflicts,
            "pull_rejects": rejects}
