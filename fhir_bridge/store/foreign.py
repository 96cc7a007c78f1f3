"""Foreign resources kept as sent (table ``foreign_content``), read and written inside the
saving transaction of their record; the merge itself is mapping/foreign.py."""

from __future__ import annotations

import datetime as dt
from typing import Iterable

import sqlalchemy as sa

from ..fhir import jsonio
from ..mapping.foreign import Foreign, Kept, labelled, merge_kept
from . import tables as t

Key = tuple[str, str]


def stored(conn: sa.Connection, keys: Iterable[Key]) -> dict[Key, Kept]:
    """What is kept of those of these resources that are foreign."""
    fc = t.foreign_content
    keys = set(keys)
    if not keys:
        return {}
    rows = _rows(conn, (fc.c.resource_type, fc.c.id, fc.c.original, fc.c.baseline), keys)
    return {(r.resource_type, r.id): Kept(jsonio.loads(r.original), jsonio.loads(r.baseline))
            for r in rows if (r.resource_type, r.id) in keys}


def _rows(conn: sa.Connection, columns: tuple, keys: set[Key]) -> list:
    """Rows of foreign_content whose id is one of keys' (in chunks: bound-parameter limits)."""
    ids = sorted({rid for _, rid in keys})
    return [row for start in range(0, len(ids), 500) for row in conn.execute(
        sa.select(*columns).where(t.foreign_content.c.id.in_(ids[start:start + 500])))]


def merged(resources: list[dict], kept: dict[Key, Kept]) -> list[dict]:
    """The resources of one record, each foreign one merged over what was kept of it, with the
    bridge's labels (what is stored is what is served)."""
    return [labelled(merge_kept(r, kept[(r["resourceType"], r["id"])]), r)
            if (r["resourceType"], r["id"]) in kept else r for r in resources]


def kept_of(keep: Iterable[Foreign]) -> dict[Key, Kept]:
    """What these parses keep, by the resource (main one and members) each is kept for."""
    return {(k.original["resourceType"], k.original["id"]): k for f in keep
            for k in f.every_kept()}


def remember(conn: sa.Connection, foreign: Foreign, source: str, now: dt.datetime) -> None:
    """Keep each resource of the parse (the main one and its members), each with its notes."""
    fc = t.foreign_content
    notes = [foreign.notes] + [m.notes for m in foreign.members]
    for kept, noted in zip(foreign.every_kept(), notes):
        original = kept.original
        key = dict(resource_type=original["resourceType"], id=original["id"])
        values = dict(concept=foreign.concept, record_id=foreign.record["id"],
                      original=jsonio.dumps(original), baseline=jsonio.dumps(kept.baseline),
                      notes=jsonio.dumps([list(n) for n in noted]), source=source,
                      updated_at=now)
        done = conn.execute(fc.update().where(*[fc.c[k] == v for k, v in key.items()])
                            .values(**values)).rowcount
        if not done:
            conn.execute(fc.insert().values(**key, **values))


def forget(conn: sa.Connection, resource_type: str, resource_id: str) -> None:
    """A deleted resource: nothing of it is kept for a later record of the same id."""
    fc = t.foreign_content
    conn.execute(fc.delete().where(fc.c.resource_type == resource_type, fc.c.id == resource_id))
