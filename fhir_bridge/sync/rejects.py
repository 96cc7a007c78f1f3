"""Pull rejects as data an operator can act on: one row per resource and reason, listed and
grouped by reason, retried after a mapping change (``fhir-bridge sync rejects``, the console's
sync page)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..fhir import jsonio
from ..store import tables as t
from ..store.database import dialect_insert
from ..store.records import as_utc, utcnow

r = t.sync_rejects.c


def reason_hash(reason: str) -> str:
    return hashlib.sha256(reason.encode("utf-8")).hexdigest()


def record(engine: sa.Engine, target: str, resource: dict, reason: str,
           now: dt.datetime | None = None) -> None:
    """Store the reject, or, when this resource was refused for this reason before, count it
    again and keep the newest content (an atomic upsert: concurrent pulls store it once)."""
    now = now or utcnow()
    values = {"target": target, "resource_type": resource["resourceType"],
              "remote_id": str(resource.get("id"))[:64], "reason": reason[:4000],
              "content": jsonio.dumps(resource), "created_at": now,
              "reason_hash": reason_hash(reason[:4000]), "last_seen_at": now, "times_seen": 1}
    stmt = dialect_insert(engine, t.sync_rejects).values(**values)
    with engine.begin() as conn:
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[r.target, r.resource_type, r.remote_id, r.reason_hash],
            set_={"content": stmt.excluded.content, "last_seen_at": stmt.excluded.last_seen_at,
                  "times_seen": t.sync_rejects.c.times_seen + 1}))


def clear(conn: sa.Connection, target: str, resource_type: str, remote_id: str) -> int:
    """The resource was taken in after all: its rejects are history."""
    return conn.execute(t.sync_rejects.delete().where(
        r.target == target, r.resource_type == resource_type,
        r.remote_id == str(remote_id))).rowcount


@dataclass
class RejectGroup:
    target: str
    reason: str
    resources: list[str] = field(default_factory=list)
    times_seen: int = 0
    last_seen_at: dt.datetime | None = None


def grouped(engine: sa.Engine, target: str | None = None,
            reason_contains: str | None = None) -> list[RejectGroup]:
    """Rejects by target and reason, the group holding back most resources first."""
    query = sa.select(r.target, r.reason, r.resource_type, r.remote_id, r.times_seen,
                      r.last_seen_at).order_by(r.target, r.reason, r.resource_type, r.remote_id)
    if target:
        query = query.where(r.target == target)
    if reason_contains:
        query = query.where(r.reason.contains(reason_contains, autoescape=True))
    groups: dict[tuple[str, str], RejectGroup] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            group = groups.setdefault((row.target, row.reason),
                                      RejectGroup(row.target, row.reason))
            group.resources.append(f"{row.resource_type}/{row.remote_id}")
            group.times_seen += row.times_seen
            seen = as_utc(row.last_seen_at)
            group.last_seen_at = max(group.last_seen_at, seen) if group.last_seen_at else seen
    return sorted(groups.values(), key=lambda g: (-len(g.resources), g.target, g.reason))


@dataclass
class RetryReport:
    tried: int = 0
    taken: int = 0  # pulled in now
    still_rejected: int = 0
    gone: int = 0  # no longer on the server: their rejects are removed
    reasons: list[str] = field(default_factory=list)


def retry(bridge, target_name: str | None = None, reason_contains: str | None = None,
          client=None) -> RetryReport:
    """Read each rejected resource from its server again and pull it (after a mapping change,
    say); one that maps now is taken in and its rejects removed."""
    from ..errors import RemoteRejected
    from ..sync.service import puller_for

    report = RetryReport()
    for group_target in sorted({g.target for g in grouped(bridge.engine, target_name,
                                                          reason_contains)}):
        puller = puller_for(bridge, group_target, client=client)
        try:
            refs = sorted({ref for g in grouped(bridge.engine, group_target, reason_contains)
                           for ref in g.resources})
            for ref in refs:
                rtype, _, remote_id = ref.partition("/")
                report.tried += 1
                try:
                    resource = puller.client.read(rtype, remote_id)
                except RemoteRejected as exc:
                    if exc.http_status in (404, 410):
                        with bridge.engine.begin() as conn:
                            clear(conn, group_target, rtype, remote_id)
                        report.gone += 1
                        continue
                    raise
                pulled = puller.pull_one(resource)
                if pulled.rejected and not _taken_meanwhile(bridge.engine, group_target,
                                                            resource):
                    report.still_rejected += 1
                    report.reasons.extend(pulled.reasons)
                else:
                    with bridge.engine.begin() as conn:
                        clear(conn, group_target, rtype, remote_id)
                    report.taken += 1
        finally:
            if client is None:
                puller.client.close()
    return report


def _taken_meanwhile(engine: sa.Engine, target: str, resource: dict) -> bool:
    """A retry (or pull) at the same moment took this very version in: its save won and ours
    was refused as a lost race, which is no reason to reject the resource (the reject that
    refusal recorded is cleared with the others)."""
    from .remote_map import by_remote_id

    version = (resource.get("meta") or {}).get("versionId")
    with engine.connect() as conn:
        known = by_remote_id(conn, target, resource["resourceType"], str(resource["id"]))
    return known is not None and version is not None and known.remote_version == version

