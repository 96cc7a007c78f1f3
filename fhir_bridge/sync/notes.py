"""What a pull kept of a foreign resource without a place in the internal model: each element
(by its FHIRPath) with the reason, in ``sync_notes``, written once per element however often
the resource is pulled again."""

from __future__ import annotations

import sqlalchemy as sa

from ..store import tables as t
from ..store.records import utcnow


def record_notes(conn: sa.Connection, target: str, resource_type: str, remote_id: str,
                 notes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Store the notes not stored yet; returns those (what the pull report shows)."""
    sn = t.sync_notes
    known = set(conn.execute(sa.select(sn.c.path).where(
        sn.c.target == target, sn.c.resource_type == resource_type,
        sn.c.remote_id == remote_id)).scalars())
    new = [(path, reason) for path, reason in notes if path not in known]
    if new:
        now = utcnow()
        conn.execute(sn.insert(), [dict(target=target, resource_type=resource_type,
                                        remote_id=remote_id, path=path[:300], reason=reason,
                                        created_at=now) for path, reason in new])
    return new


def notes_of(conn: sa.Connection, target: str) -> list[tuple[str, str, str, str]]:
    """(resource_type, remote_id, path, reason) of every note of a target, in order."""
    sn = t.sync_notes
    return [tuple(row) for row in conn.execute(
        sa.select(sn.c.resource_type, sn.c.remote_id, sn.c.path, sn.c.reason)
        .where(sn.c.target == target).order_by(sn.c.id))]
