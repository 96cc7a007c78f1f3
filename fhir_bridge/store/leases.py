"""Pull leases: one row per target and managed patient; the pull worker holding it is the only
one reading that patient's changes.

A lease is per patient, not per patient and resource type: applying a change rebuilds the
owning record from all its resources (a plan's CarePlan and MedicationRequests), so two workers
on two types of one patient could overwrite each other's rebuild. The ``_lastUpdated``
watermarks (per patient and type, ``sync_watermarks``) advance only in a transaction that
first renews the lease under the holder's token (:func:`hold`): a worker whose lease ran out
and was taken over writes no watermark, so a cursor moves only past work that was settled.

A lease lasts ``lease_seconds`` (the target's, as for outbox claims) and is renewed while the
holder works; a worker killed mid-pull simply lets it run out, and the next pass of any worker
takes the patient over from its watermarks (versions already applied are recognized and
skipped). ``pulled_at`` is when a pull of the patient last finished: a pass takes the patients
not pulled since it began, least recently pulled first, so concurrent passes share the
patients instead of each reading all of them.

On PostgreSQL a claim locks the row it takes with ``FOR UPDATE SKIP LOCKED`` (a lease is one
row, so no wider lock is needed); SQLite serializes writers, and one UPDATE claims atomically
there.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from . import tables as t
from .database import dialect_insert
from .records import utcnow

pl = t.pull_leases
#: ``pulled_at`` of a patient never pulled: first in line (a NULL would not sort by index the
#: same way on both databases).
NEVER = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class LeaseLost(Exception):
    """The lease ran out and may be another worker's now: stop working on its patient."""


@dataclass(frozen=True)
class Lease:
    target: str
    patient: str
    token: str


def _token(worker: str) -> str:
    return f"{worker}:{uuid.uuid4().hex[:12]}"


def _free(now: dt.datetime):
    return sa.or_(pl.c.claimed_until.is_(None), pl.c.claimed_until <= now)


def _key(lease: Lease):
    return sa.and_(pl.c.target == lease.target, pl.c.patient_remote_id == lease.patient)


def register(engine: sa.Engine, target: str, patients: list[str] | None = None) -> None:
    """Make sure the patients (default: every Patient the target has for a local one) have a
    lease row. Safe to run by several workers at once."""
    insert = dialect_insert(engine, pl)
    if patients is None:
        rr = t.remote_resources
        known = sa.select(sa.literal(1)).where(pl.c.target == target,
                                               pl.c.patient_remote_id == rr.c.remote_id)
        insert = insert.from_select(["target", "patient_remote_id", "pulled_at"], sa.select(
            sa.literal(target), rr.c.remote_id, sa.literal(NEVER, pl.c.pulled_at.type)).where(
            rr.c.target == target, rr.c.resource_type == "Patient", ~known.exists()))
    elif patients:
        insert = insert.values([{"target": target, "patient_remote_id": p, "pulled_at": NEVER}
                                for p in patients])
    else:
        return
    with engine.begin() as conn:
        conn.execute(insert.on_conflict_do_nothing())


def claim_next(engine: sa.Engine, target: str, worker: str, lease_seconds: float,
               pulled_before: dt.datetime, skip: frozenset[str] = frozenset()
               ) -> Lease | None:
    """Take the free lease of a managed patient not pulled since ``pulled_before`` (least
    recently pulled first) and not in ``skip``, or None when there is none."""
    rr = t.remote_resources
    now = utcnow()
    managed = sa.select(sa.literal(1)).where(
        rr.c.target == target, rr.c.resource_type == "Patient",
        rr.c.remote_id == pl.c.patient_remote_id).exists()
    wanted = sa.and_(pl.c.target == target, pl.c.pulled_at < pulled_before, _free(now),
                     managed)
    if skip:
        wanted = sa.and_(wanted, pl.c.patient_remote_id.not_in(sorted(skip)))
    return _claim(engine, target, worker, lease_seconds, now, wanted)


def claim_patient(engine: sa.Engine, target: str, patient: str, worker: str,
                  lease_seconds: float) -> Lease | None:
    """Take this patient's lease, or None while another worker holds it."""
    register(engine, target, [patient])
    now = utcnow()
    wanted = sa.and_(pl.c.target == target, pl.c.patient_remote_id == patient, _free(now))
    return _claim(engine, target, worker, lease_seconds, now, wanted)


def _claim(engine: sa.Engine, target: str, worker: str, lease_seconds: float,
           now: dt.datetime, wanted) -> Lease | None:
    token = _token(worker)
    until = now + dt.timedelta(seconds=lease_seconds)
    chosen = sa.select(pl.c.patient_remote_id).where(wanted).order_by(
        pl.c.pulled_at, pl.c.patient_remote_id).limit(1)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            patient = conn.execute(chosen.with_for_update(skip_locked=True)).scalar()
            if patient is None:
                return None
            conn.execute(pl.update().where(pl.c.target == target,
                                           pl.c.patient_remote_id == patient)
                         .values(claimed_by=token, claimed_until=until))
        else:  # one writer at a time: the UPDATE cannot race
            conn.execute(pl.update().where(
                pl.c.target == target, pl.c.patient_remote_id == chosen.scalar_subquery(),
                wanted).values(claimed_by=token, claimed_until=until))
            patient = conn.execute(sa.select(pl.c.patient_remote_id).where(
                pl.c.target == target, pl.c.claimed_by == token)).scalar()
            if patient is None:
                return None
    return Lease(target, patient, token)


def hold(conn: sa.Connection, lease: Lease, lease_seconds: float) -> None:
    """Renew the lease inside ``conn``'s transaction, or raise :class:`LeaseLost` (and so roll
    back whatever the transaction was to write) when it is no longer this holder's."""
    now = utcnow()
    renewed = conn.execute(pl.update().where(
        _key(lease), pl.c.claimed_by == lease.token, pl.c.claimed_until > now).values(
        claimed_until=now + dt.timedelta(seconds=lease_seconds))).rowcount
    if not renewed:
        raise LeaseLost(f"Patient/{lease.patient}")


def renew(engine: sa.Engine, lease: Lease, lease_seconds: float) -> None:
    with engine.begin() as conn:
        hold(conn, lease, lease_seconds)


def release(engine: sa.Engine, lease: Lease, finished: bool) -> None:
    """Give the lease back; ``finished``: every type of the patient was pulled."""
    values: dict = {"claimed_until": None}
    if finished:
        values["pulled_at"] = utcnow()
    with engine.begin() as conn:
        conn.execute(pl.update().where(_key(lease), pl.c.claimed_by == lease.token)
                     .values(**values))


def held(engine: sa.Engine) -> list[tuple[str, str, str]]:
    """(target, patient, holder's token) of each live lease: what a stopped worker must not
    leave behind."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(
            pl.c.target, pl.c.patient_remote_id, pl.c.claimed_by).where(
            pl.c.claimed_until > utcnow()).order_by(pl.c.target, pl.c.patient_remote_id))]
