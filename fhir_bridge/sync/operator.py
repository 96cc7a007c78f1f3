"""What an operator does to sync, from the CLI or the console (one code path, one audit):
put dead letters back in the queue, resolve a conflict, retry pull rejects."""

from __future__ import annotations

import sqlalchemy as sa

from .. import audit
from ..errors import BridgeError, Conflict, Issue
from ..store import outbox
from ..store import tables as t
from .conflicts import AlreadyResolved


def retry_dead(bridge, seqs: list[int] | None, agent: str) -> int:
    """Dead rows (all, or these) back to pending, with one AuditEvent naming their resources,
    in one transaction: of two operators retrying the same rows at once, one requeues them
    (the rows are locked on PostgreSQL, SQLite's writer lock serializes) and the other finds
    them no longer dead: 409 when it named them, 0 rows and no AuditEvent when it asked for
    all."""
    o = t.outbox.c
    query = sa.select(o.seq, o.status, o.resource_type, o.resource_id)
    query = query.where(o.seq.in_(seqs)) if seqs else query.where(o.status == "dead")
    with bridge.engine.begin() as conn:
        if conn.dialect.name != "sqlite":
            query = query.with_for_update()
        rows = conn.execute(query.order_by(o.seq)).all()
        dead = [r.seq for r in rows if r.status == "dead"]
        if seqs and not dead:
            states = {r.seq: r.status for r in rows}
            issues = [Issue(f"seq {seq}", f"is {states.get(seq, 'not known')}")
                      for seq in sorted(set(seqs))]
            raise Conflict("none of these outbox rows is dead (" + ", ".join(
                f"{i.path} {i.message}" for i in issues) + ")", issues)
        if not dead:
            return 0
        count = outbox.retry(conn, dead)
        entities = sorted({f"{r.resource_type}/{r.resource_id}" for r in rows
                           if r.status == "dead"})
        audit.record(conn, audit.AuditEntry(
            action="U", subtype="sync-retry", agent=agent, entities=entities[:100],
            description=f"{count} dead outbox rows requeued", kind="transmit"))
    return count


def resolve_conflict(bridge, conflict_id: int, keep: str, agent: str,
                     target: str | None = None) -> str:
    """keep="local" or "remote" (sync/service.py does it); audited with its outcome."""
    from .conflicts import get_open
    from .service import resolve_conflict as resolve

    row = get_open(bridge.engine, conflict_id)
    entry = dict(action="U", subtype="sync-resolve", agent=agent,
                 entities=[f"{row.resource_type}/{row.local_id}"], kind="transmit")
    try:
        result = resolve(bridge, conflict_id, keep, target)
    except AlreadyResolved:
        raise  # another operator's resolution won: it is the one audited
    except BridgeError as exc:
        audit.record(bridge.engine, audit.AuditEntry(
            **entry, outcome="8", description=f"conflict {conflict_id}: {type(exc).__name__}"))
        raise
    audit.record(bridge.engine, audit.AuditEntry(
        **entry, description=f"conflict {conflict_id}: {result}"))
    return result


def retry_rejects(bridge, agent: str, target: str | None = None,
                  reason_contains: str | None = None, client=None):
    """Pull the rejected resources again (sync/rejects.py); audited with what it took in."""
    from . import rejects

    report = rejects.retry(bridge, target, reason_contains, client=client)
    audit.record(bridge.engine, audit.AuditEntry(
        action="U", subtype="sync-pull", agent=agent, kind="transmit",
        description=f"rejects retried: {report.taken} of {report.tried} taken in"))
    return report
