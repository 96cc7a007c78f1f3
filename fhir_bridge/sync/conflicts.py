"""Conflicts: a resource changed on the target since we last synced it, and locally too.

Nothing is overwritten: the conflict keeps both versions until an operator resolves it by
keeping the local version (pushed over the remote one, If-Match on the remote version now seen)
or taking the remote one (mapped back into the internal model, as a pull would)."""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import Conflict, Issue, NotFound, RemoteError
from ..fhir import jsonio
from ..store import tables as t
from ..store.records import as_utc, utcnow

c = t.sync_conflicts


def record_conflict(engine: sa.Engine, client, target: str, resource_type: str, local_id: str,
                    remote_id: str, local_content: dict | None,
                    remote_content: dict | None = None) -> int:
    if remote_content is None:
        try:
            remote_content = client.read(resource_type, remote_id)
        except RemoteError:
            remote_content = None
    version = ((remote_content or {}).get("meta") or {}).get("versionId")
    with engine.begin() as conn:
        existing = conn.execute(sa.select(c.c.id).where(
            c.c.target == target, c.c.resource_type == resource_type,
            c.c.local_id == local_id, c.c.status == "open")).scalar()
        values = dict(remote_id=remote_id, remote_version=version,
                      local_content=jsonio.dumps(local_content) if local_content else None,
                      remote_content=jsonio.dumps(remote_content) if remote_content else None)
        if existing is not None:
            conn.execute(c.update().where(c.c.id == existing).values(**values))
            return existing
        inserted = conn.execute(c.insert().values(target=target, resource_type=resource_type,
                                                  local_id=local_id, status="open",
                                                  created_at=utcnow(), **values))
        return inserted.inserted_primary_key[0]


def list_conflicts(engine: sa.Engine, status: str | None = "open") -> list[dict]:
    query = sa.select(c).order_by(c.c.id)
    if status:
        query = query.where(c.c.status == status)
    with engine.connect() as conn:
        return [{"id": r.id, "target": r.target, "resource": f"{r.resource_type}/{r.local_id}",
                 "remote": f"{r.resource_type}/{r.remote_id}", "remote_version": r.remote_version,
                 "status": r.status, "created_at": as_utc(r.created_at).isoformat(),
                 "local": jsonio.loads(r.local_content) if r.local_content else None,
                 "remote_content": jsonio.loads(r.remote_content) if r.remote_content else None}
                for r in conn.execute(query)]


class AlreadyResolved(Conflict):
    """The conflict is not open (any more): another operator resolved it first (409)."""

    def __init__(self, conflict_id: int, status: str):
        super().__init__(f"conflict {conflict_id} is already {status}", [Issue("status", status)])


def get_open(engine: sa.Engine, conflict_id: int):
    with engine.connect() as conn:
        row = conn.execute(sa.select(c).where(c.c.id == conflict_id)).first()
    if row is None:
        raise NotFound(f"no conflict {conflict_id}")
    if row.status != "open":
        raise AlreadyResolved(conflict_id, row.status)
    return row


def claim(conn: sa.Connection, conflict_id: int, status: str) -> None:
    """Close an open conflict as ``status``: the first statement of the resolving transaction.
    Of two operators resolving it at once exactly one claims it (the conditional UPDATE holds
    the row's lock on PostgreSQL until commit, and the other's UPDATE then finds it no longer
    open; SQLite's writer lock serializes the two); the other gets AlreadyResolved (409)
    before it changed anything."""
    claimed = conn.execute(c.update().where(c.c.id == conflict_id, c.c.status == "open")
                           .values(status=status, resolved_at=utcnow()))
    if claimed.rowcount != 1:
        now = conn.execute(sa.select(c.c.status).where(c.c.id == conflict_id)).scalar()
        if now is None:
            raise NotFound(f"no conflict {conflict_id}")
        raise AlreadyResolved(conflict_id, now)
