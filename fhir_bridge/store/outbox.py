"""The outbox: one row per resource change, claimed by sync workers with a lease.

Rows stay ``pending`` while a worker holds them (``claimed_by`` + ``claimed_until``); a worker
that dies simply lets its lease run out and another one picks the rows up. On PostgreSQL the
claim uses ``FOR UPDATE SKIP LOCKED`` so several workers share the queue without waiting on each
other and without taking the same row twice, and claims take a transaction-scoped advisory
lock so that each sees the ones committed before it (two rows of one resource never go to two
workers); SQLite serializes writers, and a single UPDATE claims atomically there. A resource
with rows claimed by one worker is not claimed by another, so one resource's changes are sent
in order and never by two workers at once.

A row whose resource points at resources not yet on the target is *deferred*: given back with a
later ``next_attempt_at`` and the reason, without counting an attempt (waiting is no failure).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from . import tables as t
from .records import as_utc, utcnow

o = t.outbox
#: pg_advisory_xact_lock key serializing claims (short transactions) on PostgreSQL.
_CLAIM_LOCK = 0x0F4B_0C1A


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    resource_type: str
    resource_id: str
    version_id: int
    operation: str
    attempts: int


def _busy_elsewhere(now: dt.datetime):
    """Another row of the same resource is held under a live lease."""
    others = o.alias("others")
    return sa.exists().where(
        others.c.resource_type == o.c.resource_type, others.c.resource_id == o.c.resource_id,
        others.c.status == "pending", others.c.claimed_until > now)


def _due(now: dt.datetime, due_by: dt.datetime | None = None):
    return sa.and_(o.c.status == "pending",
                   sa.or_(o.c.next_attempt_at.is_(None),
                          o.c.next_attempt_at <= (now if due_by is None else due_by)),
                   sa.or_(o.c.claimed_until.is_(None), o.c.claimed_until <= now),
                   ~_busy_elsewhere(now))


def serialize_claims(conn: sa.Connection) -> None:
    """Wait for claims in flight to commit: under READ COMMITTED the next statement then sees
    their leases, which SKIP LOCKED alone would not show for another row of the same
    resource."""
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CLAIM_LOCK)))


def claim(engine: sa.Engine, worker: str, limit: int, lease_seconds: float = 120,
          due_by: dt.datetime | None = None) -> tuple[str, list[OutboxRow]]:
    """Claim up to ``limit`` due rows in order; returns (claim token, rows). With ``due_by``
    (a push pass's start), only rows due by then: a row that failed during the pass waits
    for a later pass, even when its jittered backoff is shorter than the pass."""
    now = utcnow()
    token = f"{worker}:{uuid.uuid4().hex[:12]}"
    until = now + dt.timedelta(seconds=lease_seconds)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            serialize_claims(conn)
            seqs = conn.execute(sa.select(o.c.seq).where(_due(now, due_by))
                                .order_by(o.c.seq).limit(limit)
                                .with_for_update(skip_locked=True, of=o)).scalars().all()
            if seqs:
                conn.execute(o.update().where(o.c.seq.in_(seqs))
                             .values(claimed_by=token, claimed_until=until))
        else:
            chosen = sa.select(o.c.seq).where(_due(now, due_by)).order_by(o.c.seq).limit(limit)
            conn.execute(o.update().where(o.c.seq.in_(chosen.scalar_subquery()))
                         .values(claimed_by=token, claimed_until=until))
        rows = conn.execute(sa.select(o).where(o.c.claimed_by == token).order_by(o.c.seq)).all()
    return token, [OutboxRow(r.seq, r.resource_type, r.resource_id, r.version_id, r.operation,
                             r.attempts) for r in rows]


def claim_resources(engine: sa.Engine, token: str, keys: set[tuple[str, str]],
                    lease_seconds: float = 120) -> list[OutboxRow]:
    """Add the pending rows of these resources to a claim, due or not (a bundle needs them:
    something in it points at them). A resource another worker holds (any of its rows under
    a live lease) is left alone: two workers never send one resource at once."""
    if not keys:
        return []
    now = utcnow()
    until = now + dt.timedelta(seconds=lease_seconds)
    free = sa.and_(o.c.status == "pending",
                   sa.or_(o.c.claimed_until.is_(None), o.c.claimed_until <= now),
                   ~_busy_elsewhere(now))
    wanted = sa.or_(*[sa.and_(o.c.resource_type == rtype, o.c.resource_id == rid)
                      for rtype, rid in keys])
    with engine.begin() as conn:
        query = sa.select(o.c.seq).where(free, wanted)
        if conn.dialect.name == "postgresql":
            serialize_claims(conn)
            query = query.with_for_update(skip_locked=True, of=o)
        seqs = conn.execute(query).scalars().all()
        if seqs:
            conn.execute(o.update().where(o.c.seq.in_(seqs), free)
                         .values(claimed_by=token, claimed_until=until))
        rows = conn.execute(sa.select(o).where(o.c.seq.in_(seqs), o.c.claimed_by == token)).all()
    return [OutboxRow(r.seq, r.resource_type, r.resource_id, r.version_id, r.operation,
                      r.attempts) for r in rows]


def complete(conn: sa.Connection, token: str, seqs: list[int]) -> None:
    if seqs:
        conn.execute(o.update().where(o.c.seq.in_(seqs), o.c.claimed_by == token).values(
            status="done", claimed_until=None, last_error=None))


def release(engine: sa.Engine, token: str, seqs: list[int], error: str, max_attempts: int,
            retry_after: float | None = None, base: float = 2.0, cap: float = 600.0) -> int:
    """Give rows back after a failure: retried later with exponential backoff and jitter, or
    dead-lettered with the reason after ``max_attempts``. Returns how many went dead."""
    if not seqs:
        return 0
    now = utcnow()
    dead = 0
    with engine.begin() as conn:
        for row in conn.execute(sa.select(o.c.seq, o.c.attempts).where(
                o.c.seq.in_(seqs), o.c.claimed_by == token)):
            attempts = row.attempts + 1
            delay = retry_after if retry_after is not None else \
                random.uniform(0, min(cap, base * 2 ** attempts))
            values = dict(attempts=attempts, last_error=error[:2000], claimed_until=None,
                          next_attempt_at=now + dt.timedelta(seconds=delay))
            if attempts >= max_attempts:
                values["status"] = "dead"
                dead += 1
            conn.execute(o.update().where(o.c.seq == row.seq).values(**values))
    return dead


def defer(engine: sa.Engine, token: str, waits: dict[int, tuple[dt.datetime, str]]) -> None:
    """Give rows back to wait (seq -> (due again at, why)): no attempt is counted, so a row
    that waits for others is never dead-lettered for it."""
    if not waits:
        return
    with engine.begin() as conn:
        for seq, (until, reason) in waits.items():
            conn.execute(o.update().where(o.c.seq == seq, o.c.claimed_by == token,
                                          o.c.status == "pending")
                         .values(claimed_until=None, next_attempt_at=until,
                                 last_error=reason[:2000]))


@dataclass(frozen=True)
class Holder:
    """Why a resource is not on the target yet: its unfinished row with the latest lease."""

    status: str  # pending | dead | conflict
    claimed_by: str | None
    claimed_until: dt.datetime | None  # None or past: nobody holds it now


def holders(conn: sa.Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Holder]:
    """The unfinished rows (pending, dead, conflict) of these resources, one per resource:
    a live lease first, then pending, then the others."""
    out: dict[tuple[str, str], Holder] = {}
    by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, []).append(rid)
    now = utcnow()
    rank = {"pending": 1, "conflict": 2, "dead": 3}
    for rtype, ids in by_type.items():
        for start in range(0, len(ids), 500):
            for row in conn.execute(sa.select(
                    o.c.resource_id, o.c.status, o.c.claimed_by, o.c.claimed_until).where(
                    o.c.resource_type == rtype, o.c.resource_id.in_(ids[start:start + 500]),
                    o.c.status.in_(tuple(rank)))):
                until = as_utc(row.claimed_until) if row.claimed_until else None
                live = row.status == "pending" and until is not None and until > now
                holder = Holder(row.status, row.claimed_by if live else None,
                                until if live else None)
                key = (rtype, row.resource_id)
                old = out.get(key)
                if old is None or _holder_rank(holder, rank) < _holder_rank(old, rank):
                    out[key] = holder
    return out


def _holder_rank(holder: Holder, rank: dict[str, int]) -> tuple[int, float]:
    if holder.claimed_until is not None:
        return 0, -holder.claimed_until.timestamp()
    return rank[holder.status], 0.0


def unclaim(engine: sa.Engine, token: str) -> None:
    """Give claimed rows back untouched (not tried, so no attempt is counted)."""
    with engine.begin() as conn:
        conn.execute(o.update().where(o.c.claimed_by == token, o.c.status == "pending")
                     .values(claimed_until=None))


def mark(engine: sa.Engine, token: str, seqs: list[int], status: str, error: str) -> None:
    """Set a final status other than done (``dead`` or ``conflict``) with the reason."""
    if seqs:
        with engine.begin() as conn:
            conn.execute(o.update().where(o.c.seq.in_(seqs), o.c.claimed_by == token).values(
                status=status, last_error=error[:2000], claimed_until=None))


def retry(target: sa.Engine | sa.Connection, seqs: list[int] | None = None) -> int:
    """Operators: put dead rows (all, or the given ones) back in the queue (with a
    Connection: in its transaction)."""
    query = o.update().where(o.c.status == "dead")
    if seqs:
        query = query.where(o.c.seq.in_(seqs))
    query = query.values(status="pending", attempts=0, next_attempt_at=None, claimed_by=None,
                         claimed_until=None)
    if isinstance(target, sa.Connection):
        return target.execute(query).rowcount
    with target.begin() as conn:
        return conn.execute(query).rowcount


def status_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {status: n for status, n in conn.execute(
            sa.select(o.c.status, sa.func.count()).group_by(o.c.status))}


def listing(engine: sa.Engine, status: str, limit: int = 100) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(o).where(o.c.status == status).order_by(o.c.seq)
                            .limit(limit)).all()
    return [{"seq": r.seq, "resource": f"{r.resource_type}/{r.resource_id}",
             "version": r.version_id, "operation": r.operation, "attempts": r.attempts,
             "last_error": r.last_error,
             "next_attempt_at": as_utc(r.next_attempt_at).isoformat()
             if r.next_attempt_at else None} for r in rows]
