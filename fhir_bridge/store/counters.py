"""Running totals in the database (push, pull, subscription delivery), so that every worker
process adds to the same counter and /metrics can show them whichever process serves it.

``add`` is one atomic upsert per name (``value = value + n``): two workers adding at once
both count."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping

import sqlalchemy as sa
from . import tables as t
from .database import dialect_insert
from .records import as_utc


@dataclass(frozen=True)
class Counter:
    scope: str
    name: str
    value: int
    updated_at: dt.datetime


def add(engine: sa.Engine, scope: str, amounts: Mapping[str, int],
        now: dt.datetime | None = None) -> None:
    """Add each amount; names with 0 are left alone (so ``*_ok`` keeps the time of the last
    success)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    rows = [(name, int(n)) for name, n in sorted(amounts.items()) if n]
    if not rows:
        return
    c = t.operation_counters.c
    with engine.begin() as conn:
        for name, n in rows:
            stmt = dialect_insert(engine, t.operation_counters).values(scope=scope[:80], name=name, value=n,
                                                       updated_at=now)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[c.scope, c.name],
                set_={"value": t.operation_counters.c.value + stmt.excluded.value,
                      "updated_at": stmt.excluded.updated_at}))


def read_all(conn: sa.Connection) -> list[Counter]:
    c = t.operation_counters.c
    return [Counter(r.scope, r.name, int(r.value), as_utc(r.updated_at)) for r in conn.execute(
        sa.select(c.scope, c.name, c.value, c.updated_at).order_by(c.scope, c.name))]
