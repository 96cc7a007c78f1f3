"""Delivery state per subscription, claimed by workers with a lease (like the outbox).

A worker claims whole subscriptions, not single events: one subscription is delivered by one
worker at a time, so its notifications go out in order. On PostgreSQL the claim takes the
delivery rows ``FOR UPDATE SKIP LOCKED`` (workers never wait on, or take, each other's rows);
on SQLite one UPDATE claims atomically. A worker that dies lets its lease run out. Progress is
written only while the claim still holds (``claimed_by`` = the token), in the same transaction
as the status change and the AuditEvent, so an event counts as delivered exactly when the
receiver acknowledged it and the worker recorded that.

Lock order: the subscriptions row before the delivery row, everywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from ..audit import AuditEntry, record
from ..store import tables as t
from ..store.records import as_utc

s, d = t.subscriptions, t.subscription_delivery


class LeaseLost(Exception):
    """Another worker holds the subscription now: stop delivering it."""


@dataclass(frozen=True)
class DeliveryState:
    subscription_id: str
    handshake_done: bool
    delivered_through: int
    attempts: int
    heartbeat_due_at: dt.datetime | None


def _due(now: dt.datetime):
    return sa.and_(
        s.c.status != "off",
        sa.or_(s.c.ends_at.is_(None), s.c.ends_at > now),
        sa.or_(d.c.claimed_until.is_(None), d.c.claimed_until <= now),
        sa.or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now),
        sa.or_(d.c.handshake_done == sa.false(), d.c.delivered_through < s.c.event_count,
               d.c.heartbeat_due_at <= now))


def claim(engine: sa.Engine, token: str, now: dt.datetime, lease_seconds: float,
          limit: int) -> list[str]:
    """Claim up to ``limit`` subscriptions with something to send; their ids."""
    until = now + dt.timedelta(seconds=lease_seconds)
    with engine.begin() as conn:
        query = (sa.select(d.c.subscription_id).join(s, s.c.id == d.c.subscription_id)
                 .where(_due(now)).order_by(d.c.next_attempt_at.is_not(None),
                                            d.c.subscription_id).limit(limit))
        if conn.dialect.name == "postgresql":
            ids = conn.execute(query.with_for_update(skip_locked=True, of=d)).scalars().all()
            if ids:
                conn.execute(d.update().where(d.c.subscription_id.in_(ids))
                             .values(claimed_by=token, claimed_until=until))
        else:
            conn.execute(d.update().where(d.c.subscription_id.in_(query.scalar_subquery()))
                         .values(claimed_by=token, claimed_until=until))
        return conn.execute(sa.select(d.c.subscription_id).where(d.c.claimed_by == token)
                            .order_by(d.c.subscription_id)).scalars().all()


def state(engine: sa.Engine, sub_id: str, token: str) -> DeliveryState:
    with engine.connect() as conn:
        row = conn.execute(sa.select(d).where(d.c.subscription_id == sub_id,
                                              d.c.claimed_by == token)).first()
    if row is None:
        raise LeaseLost(sub_id)
    return DeliveryState(row.subscription_id, row.handshake_done, row.delivered_through,
                         row.attempts,
                         as_utc(row.heartbeat_due_at) if row.heartbeat_due_at else None)


def succeeded(engine: sa.Engine, token: str, sub_id: str, now: dt.datetime,
              lease_seconds: float, heartbeat: int | None, audit: list[AuditEntry],
              delivered_through: int | None = None, handshake: bool = False) -> None:
    """Record a 2xx: progress, back to active, lease renewed, audit; LeaseLost if the claim
    is gone (nothing is written then)."""
    values = dict(attempts=0, next_attempt_at=None, last_error=None, last_sent_at=now,
                  heartbeat_due_at=(now + dt.timedelta(seconds=heartbeat)) if heartbeat
                  else None, claimed_until=now + dt.timedelta(seconds=lease_seconds))
    if delivered_through is not None:
        values["delivered_through"] = delivered_through
    if handshake:
        values["handshake_done"] = True
    with engine.begin() as conn:
        conn.execute(s.update().where(s.c.id == sub_id, s.c.status.in_(("requested", "error")))
                     .values(status="active"))
        if conn.execute(d.update().where(d.c.subscription_id == sub_id,
                                         d.c.claimed_by == token).values(**values)).rowcount != 1:
            raise LeaseLost(sub_id)
        record(conn, audit, now)


def failed(engine: sa.Engine, token: str, sub_id: str, now: dt.datetime, attempts: int,
           delay: float, error: str, audit: list[AuditEntry]) -> None:
    """Record a failure: status error, retry after ``delay`` seconds, audit."""
    with engine.begin() as conn:
        conn.execute(s.update().where(s.c.id == sub_id, s.c.status != "off")
                     .values(status="error"))
        if conn.execute(d.update().where(d.c.subscription_id == sub_id,
                                         d.c.claimed_by == token).values(
                attempts=attempts, last_error=error[:200],
                next_attempt_at=now + dt.timedelta(seconds=delay))).rowcount != 1:
            raise LeaseLost(sub_id)
        record(conn, audit, now)


def release(engine: sa.Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(d.update().where(d.c.claimed_by == token)
                     .values(claimed_by=None, claimed_until=None))
