"""Worker heartbeats: each `fhir-bridge worker` process says what it runs and that it is
alive; /readyz lists them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from . import tables as t
from .database import dialect_insert
from .records import as_utc


@dataclass(frozen=True)
class Heartbeat:
    worker: str
    tasks: tuple[str, ...]
    state: str  # running | stopped
    started_at: dt.datetime
    beat_at: dt.datetime
    last_error: str | None


def beat(engine: sa.Engine, worker: str, tasks: tuple[str, ...], started_at: dt.datetime,
         now: dt.datetime, state: str = "running", last_error: str | None = None) -> None:
    values = {"worker": worker[:80], "tasks": ",".join(tasks)[:200], "state": state,
              "started_at": started_at, "beat_at": now,
              "last_error": last_error[:200] if last_error else None}
    stmt = dialect_insert(engine, t.worker_heartbeats).values(**values)
    with engine.begin() as conn:
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[t.worker_heartbeats.c.worker],
            set_={k: v for k, v in values.items() if k != "worker"}))


def listing(conn: sa.Connection) -> list[Heartbeat]:
    h = t.worker_heartbeats.c
    return [Heartbeat(r.worker, tuple(filter(None, r.tasks.split(","))), r.state,
                      as_utc(r.started_at), as_utc(r.beat_at), r.last_error)
            for r in conn.execute(sa.select(t.worker_heartbeats).order_by(h.worker))]


def forget_stopped(engine: sa.Engine, before: dt.datetime) -> int:
    """Drop stopped workers (and silent ones) last heard of before ``before``."""
    h = t.worker_heartbeats.c
    with engine.begin() as conn:
        return conn.execute(t.worker_heartbeats.delete().where(h.beat_at < before)).rowcount
