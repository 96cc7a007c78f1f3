"""What a target holds of our resources: remote id and version, and the hash we last sent."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..store import tables as t
from ..store.records import utcnow

rr = t.remote_resources


@dataclass(frozen=True)
class Remote:
    resource_type: str
    local_id: str
    remote_id: str
    remote_version: str | None
    pushed_hash: str | None


def load(conn: sa.Connection, target: str, keys: set[tuple[str, str]]) -> dict:
    """(type, local id) -> Remote, for the given keys."""
    out: dict[tuple[str, str], Remote] = {}
    by_type: dict[str, list[str]] = {}
    for rtype, local_id in keys:
        by_type.setdefault(rtype, []).append(local_id)
    for rtype, ids in by_type.items():
        for row in conn.execute(sa.select(rr).where(rr.c.target == target,
                                                    rr.c.resource_type == rtype,
                                                    rr.c.local_id.in_(ids))):
            out[(rtype, row.local_id)] = Remote(rtype, row.local_id, row.remote_id,
                                                row.remote_version, row.pushed_hash)
    return out


def by_remote_ids(conn: sa.Connection, target: str,
                  keys: set[tuple[str, str]]) -> dict[tuple[str, str], Remote]:
    """(type, remote id) -> Remote, for the given keys the map knows: one query per type (and
    per 500 ids)."""
    out: dict[tuple[str, str], Remote] = {}
    by_type: dict[str, list[str]] = {}
    for rtype, remote_id in keys:
        by_type.setdefault(rtype, []).append(remote_id)
    for rtype, ids in by_type.items():
        ids.sort()
        for start in range(0, len(ids), 500):
            for row in conn.execute(sa.select(rr).where(
                    rr.c.target == target, rr.c.resource_type == rtype,
                    rr.c.remote_id.in_(ids[start:start + 500]))):
                out[(rtype, row.remote_id)] = Remote(rtype, row.local_id, row.remote_id,
                                                     row.remote_version, row.pushed_hash)
    return out


def by_remote_id(conn: sa.Connection, target: str, rtype: str, remote_id: str) -> Remote | None:
    row = conn.execute(sa.select(rr).where(rr.c.target == target, rr.c.resource_type == rtype,
                                           rr.c.remote_id == remote_id)).first()
    return None if row is None else Remote(rtype, row.local_id, row.remote_id,
                                           row.remote_version, row.pushed_hash)


def remember(conn: sa.Connection, target: str, rtype: str, local_id: str, remote_id: str,
             remote_version: str | None, pushed_hash: str | None) -> None:
    values = dict(remote_id=remote_id, remote_version=remote_version, pushed_hash=pushed_hash,
                  synced_at=utcnow())
    updated = conn.execute(rr.update().where(rr.c.target == target, rr.c.resource_type == rtype,
                                             rr.c.local_id == local_id).values(**values))
    if updated.rowcount == 0:
        conn.execute(rr.insert().values(target=target, resource_type=rtype, local_id=local_id,
                                        **values))


def forget(conn: sa.Connection, target: str, rtype: str, local_id: str) -> None:
    conn.execute(rr.delete().where(rr.c.target == target, rr.c.resource_type == rtype,
                                   rr.c.local_id == local_id))


def remember_many(conn: sa.Connection, target: str,
                  rows: list[tuple[str, str, str, str | None, str | None]]) -> None:
    """remember() for many (type, local id, remote id, remote version, pushed hash) at once:
    one upsert statement."""
    if not rows:
        return
    now = utcnow()
    values = [dict(target=target, resource_type=rtype, local_id=local_id, remote_id=remote_id,
                   remote_version=version, pushed_hash=pushed, synced_at=now)
              for rtype, local_id, remote_id, version, pushed in rows]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(rr)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[rr.c.target, rr.c.resource_type, rr.c.local_id],
        set_={name: statement.excluded[name]
              for name in ("remote_id", "remote_version", "pushed_hash", "synced_at")}),
        values)
