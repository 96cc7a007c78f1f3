"""Export jobs in the database (table ``bulk_jobs``): created by the kick-off, claimed by a
worker with a lease, finished, cancelled or expired. A job whose worker died (its lease ran
out) is claimed again and run from the start, so a restart loses no job."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..store import tables as t
from ..store.records import as_utc, utcnow

J = t.bulk_jobs
#: Statuses a client can still see (cancelled and expired jobs answer 404).
VISIBLE = ("accepted", "in-progress", "completed", "failed")


@dataclass(frozen=True)
class Job:
    id: str
    owner_client: str
    status: str
    request_url: str
    params: dict[str, Any]
    transaction_time: dt.datetime
    expires_at: dt.datetime | None
    progress: str | None
    output: list[dict] | None
    errors: list[str] | None


def _job(row) -> Job:
    return Job(row.id, row.owner_client, row.status, row.request_url, json.loads(row.params),
               as_utc(row.transaction_time), as_utc(row.expires_at) if row.expires_at else None,
               row.progress, json.loads(row.output) if row.output else None,
               json.loads(row.errors) if row.errors else None)


def create(engine: sa.Engine, owner_client: str, request_url: str,
           params: dict[str, Any]) -> str:
    """A new job waiting for a worker; its id."""
    job_id = uuid.uuid4().hex
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(J.insert().values(id=job_id, owner_client=owner_client, status="accepted",
                                       request_url=request_url, params=json.dumps(params),
                                       transaction_time=now, created_at=now, updated_at=now,
                                       progress="accepted"))
    return job_id


def get(engine: sa.Engine, job_id: str) -> Job | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(J).where(J.c.id == job_id)).first()
    return _job(row) if row else None


def claim(engine: sa.Engine, worker: str, lease_seconds: float) -> Job | None:
    """The oldest job waiting (or left by a dead worker), now leased to ``worker``."""
    now = utcnow()
    waiting = sa.or_(J.c.status == "accepted",
                     sa.and_(J.c.status == "in-progress", J.c.claimed_until < now))
    with engine.begin() as conn:
        candidates = conn.execute(sa.select(J.c.id).where(waiting)
                                  .order_by(J.c.created_at, J.c.id).limit(5)).scalars().all()
        for job_id in candidates:
            # Conditional update: of two workers claiming one job, one changes the row.
            claimed = conn.execute(J.update().where(J.c.id == job_id, waiting).values(
                status="in-progress", claimed_by=worker, updated_at=now, progress="started",
                claimed_until=now + dt.timedelta(seconds=lease_seconds)))
            if claimed.rowcount == 1:
                break
        else:
            return None
    return get(engine, job_id)


def renew(engine: sa.Engine, job_id: str, worker: str, lease_seconds: float,
          progress: str) -> bool:
    """Extend the lease and note progress; False when the job is no longer this worker's
    (cancelled, or taken over after the lease ran out)."""
    now = utcnow()
    with engine.begin() as conn:
        changed = conn.execute(J.update().where(
            J.c.id == job_id, J.c.status == "in-progress", J.c.claimed_by == worker).values(
            claimed_until=now + dt.timedelta(seconds=lease_seconds), updated_at=now,
            progress=progress[:200]))
    return changed.rowcount == 1


def finish(engine: sa.Engine, job_id: str, worker: str, output: list[dict],
           ttl_seconds: float) -> bool:
    now = utcnow()
    with engine.begin() as conn:
        changed = conn.execute(J.update().where(
            J.c.id == job_id, J.c.status == "in-progress", J.c.claimed_by == worker).values(
            status="completed", output=json.dumps(output), updated_at=now, progress="completed",
            expires_at=now + dt.timedelta(seconds=ttl_seconds), claimed_by=None,
            claimed_until=None))
    return changed.rowcount == 1


def fail(engine: sa.Engine, job_id: str, worker: str, message: str,
         ttl_seconds: float) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(J.update().where(J.c.id == job_id, J.c.claimed_by == worker,
                                      J.c.status == "in-progress").values(
            status="failed", errors=json.dumps([message]), updated_at=now, progress="failed",
            expires_at=now + dt.timedelta(seconds=ttl_seconds), claimed_by=None,
            claimed_until=None))


def cancel(engine: sa.Engine, job_id: str) -> bool:
    """Mark a visible job cancelled (its worker stops at its next page); False if it was
    not visible any more."""
    with engine.begin() as conn:
        changed = conn.execute(J.update().where(J.c.id == job_id, J.c.status.in_(VISIBLE))
                               .values(status="cancelled", updated_at=utcnow(),
                                       progress="cancelled"))
    return changed.rowcount == 1


def expire(engine: sa.Engine) -> list[str]:
    """Mark finished jobs past their expiry expired; their ids (the files go next)."""
    now = utcnow()
    with engine.begin() as conn:
        ids = conn.execute(sa.select(J.c.id).where(
            J.c.status.in_(("completed", "failed")), J.c.expires_at < now)).scalars().all()
        if ids:
            conn.execute(J.update().where(J.c.id.in_(ids)).values(status="expired",
                                                                   updated_at=now))
    return list(ids)


def idle_ids(engine: sa.Engine, statuses: tuple[str, ...]) -> list[str]:
    """Jobs in these statuses that no worker holds (files of cancelled ones to remove)."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(J.c.id).where(
            J.c.status.in_(statuses), J.c.claimed_by.is_(None))).scalars())


def removed(engine: sa.Engine, job_id: str) -> None:
    """A cancelled or expired job whose files are gone."""
    with engine.begin() as conn:
        conn.execute(J.update().where(J.c.id == job_id, J.c.status.in_(("cancelled", "expired")))
                     .values(status="removed", claimed_by=None, claimed_until=None,
                             updated_at=utcnow()))
