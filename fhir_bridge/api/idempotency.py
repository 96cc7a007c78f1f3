"""Idempotency keys for POST: the same key with the same body gets the first answer again;
the same key with another body is refused (422).

A key is claimed inside the transaction that saves the change, before anything is read: the
key is the table's primary key, so of two concurrent requests with one key the second waits
for the first one's transaction (PostgreSQL: on the unique index; SQLite: on the write lock)
and then fails to claim it. Its save is rolled back, nothing of it is written, and the view
looks the key up again and answers with the first request's answer, or 422. The answer is
stored under the key in the same transaction, so a retried request never writes twice."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from flask import g, request

from ..errors import BadRequest, InvalidInput, Issue
from ..store import tables as t

HEADER = "Idempotency-Key"
MAX_LENGTH = 200  # the key column's size


@dataclass(frozen=True)
class Replay:
    status: int
    body: str
    location: str | None


def request_key() -> tuple[str, str] | None:
    key = request.headers.get(HEADER)
    if not key:
        return None
    if len(key) > MAX_LENGTH:
        raise BadRequest(f"{HEADER} is too long",
                         [Issue(HEADER, f"at most {MAX_LENGTH} characters")])
    # The caller is part of the request: another token's key never replays (nor leaks) an
    # answer made for someone else.
    principal = g.get("principal")
    caller = f"{principal.issuer}|{principal.subject}|{principal.patient_id or ''}" \
        if principal is not None else ""
    digest = hashlib.sha256(caller.encode() + b"\n" + request.method.encode() + b" "
                            + request.path.encode() + b"\n"
                            + request.get_data(cache=True)).hexdigest()
    return key, digest


def _cutoff(ttl_hours: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=ttl_hours)


def lookup(engine: sa.Engine, key: str, digest: str, ttl_hours: float) -> Replay | None:
    """The stored answer for this key and request; None if the key is new (or expired);
    422 if the key was used for another request."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.idempotency_keys).where(
            t.idempotency_keys.c.key == key)).first()
    if row is None:
        return None
    created = row.created_at if row.created_at.tzinfo else \
        row.created_at.replace(tzinfo=dt.timezone.utc)
    if created < _cutoff(ttl_hours):
        return None
    if row.request_hash != digest:
        raise InvalidInput("this Idempotency-Key was used for another request",
                           [Issue(HEADER, "use a new key for a new request")])
    return Replay(row.status, row.body, row.location)


def claim(conn: sa.Connection, key: str, digest: str, ttl_hours: float) -> None:
    """Take the key in the saving transaction (an expired use of it is forgotten first). A
    key held by another request raises a unique violation, which the store turns into a
    Conflict; it blocks until that request's transaction ends if it is still running."""
    k = t.idempotency_keys
    conn.execute(k.delete().where(k.c.key == key, k.c.created_at < _cutoff(ttl_hours)))
    conn.execute(k.insert().values(key=key, request_hash=digest, status=0, body="",
                                   location=None,
                                   created_at=dt.datetime.now(dt.timezone.utc)))


def remember(conn: sa.Connection, key: str, status: int, body: str,
             location: str | None) -> None:
    """Store the answer under the key claimed in the same transaction."""
    conn.execute(t.idempotency_keys.update().where(t.idempotency_keys.c.key == key).values(
        status=status, body=body, location=location))
