"""What an operator does to sync, from the CLI or the console (one code path, one audit):
put dead letters back in the queue, resolve a conflict, retry pull rejects."""

from __future__ import annotations

import sqlalchemy as sa

from .. import audit
from ..store import outbox
from ..store import tables as t


def retry_dead(bridge, seqs: list[int] | None, agent: str) -> int:
    """Dead rows (all, or these) back to pending; one AuditEvent naming their resources."""
    o = t.outbox.c
    query = sa.select(o.resource_type, o.resource_id).where(o.status == "dead")
    if seqs:
        query = query.where(o.seq.in_(seqs))
    with bridge.engine.connect() as conn:
        entities = sorted({f"{r.resource_type}/{r.resource_id}" for r in conn.execute(query)})
    count = outbox.retry(bridge.engine, seqs or None)
    audit.record(bridge.engine, audit.AuditEntry(
        action="U", subtype="sync-retry", agent=agent, entities=entities[:100],
        description=f"{count} dead outbox rows requeued", kind="transmit"))
    return count


def resolve_conflict(bridge, conflict_id: int, keep: str, agent: str,
                     target: str | None = None) -> str:
    """keep="local" or "remote" (sync/service.py does it); audited with its outcome."""
    from ..errors import BridgeError
    from .conflicts import get_open
    from .service import resolve_conflict as resolve

    row = get_open(bridge.engine, conflict_id)
    entry = dict(action="U", subtype="sync-resolve", agent=agent,
                 entities=[f"{row.resource_type}/{row.local_id}"], kind="transmit")
    try:
        result = resolve(bridge, conflict_id, keep, target)
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
