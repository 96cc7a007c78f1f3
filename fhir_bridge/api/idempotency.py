"""Idempotency keys for POST: the same key with the same body gets the first answer again;
the same key with another body is refused. The key is stored in the same transaction as the
change it made, so a retried request never writes twice."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from flask import g, request

from ..errors import Conflict, Issue
from ..store import tables as t

HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Replay:
    status: int
    body: str
    location: str | None


def request_key() -> tuple[str, str] | None:
    key = request.headers.get(HEADER)
    if not key:
        return None
    if len(key) > 200:
        raise Conflict("Idempotency-Key is too long", [Issue(HEADER, "at most 200 characters")])
    # The caller is part of the request: another token's key never replays (nor leaks) an
    # answer made for someone else.
    principal = g.get("principal")
    caller = f"{principal.issuer}|{principal.subject}|{principal.patient_id or ''}" \
        if principal is not None else ""
    digest = hashlib.sha256(caller.encode() + b"\n" + request.method.encode() + b" "
                            + request.path.encode() + b"\n"
                            + request.get_data(cache=True)).hexdigest()
    return key, digest


def lookup(engine: sa.Engine, key: str, digest: str, ttl_hours: float) -> Replay | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.idempotency_keys).where(
            t.idempotency_keys.c.key == key)).first()
    if row is None:
        return None
    created = row.created_at if row.created_at.tzinfo else \
        row.created_at.replace(tzinfo=dt.timezone.utc)
    if created < dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=ttl_hours):
        return None
    if row.request_hash != digest:
        raise Conflict("this Idempotency-Key was used for another request",
                       [Issue(HEADER, "use a new key for a new request")])
    return Replay(row.status, row.body, row.location)


def remember(conn: sa.Connection, key: str, digest: str, status: int, body: str,
             location: str | None) -> None:
    conn.execute(t.idempotency_keys.delete().where(t.idempotency_keys.c.key == key))
    conn.execute(t.idempotency_keys.insert().values(
        key=key, request_hash=digest, status=status, body=body, location=location,
        created_at=dt.datetime.now(dt.timezone.utc)))
