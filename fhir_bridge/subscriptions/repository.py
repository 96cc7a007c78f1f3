"""The subscriptions table and the event log: create, read, update, delete, list; events by
number; resource versions the events name."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import Issue, NotFound, PreconditionFailed
from ..fhir import jsonio
from ..store import tables as t
from ..store.records import as_utc, utcnow, with_meta
from .resource import SubscriptionSpec
from .topics import ResourceRef

s, ev, d = t.subscriptions, t.subscription_events, t.subscription_delivery


@dataclass(frozen=True)
class StoredSubscription:
    id: str
    kind: str
    topic: str | None
    filters: list[str]
    patient_ref: str | None
    status: str
    event_count: int
    version_id: int
    last_updated: dt.datetime
    ends_at: dt.datetime | None
    owner: str | None
    content: dict  # as stored: channel.header included (the worker sends it)
    owner_client: str | None = None  # client_key() of the creator; None before migration 0006
    last_error: str | None = None
    delivered_through: int = 0

    def as_fhir(self) -> dict:
        """The Subscription as served: the client's resource with id, meta, status, error,
        without ``channel.header``: headers are write-only (they hold the receiver's secrets),
        so no answer ever shows them."""
        out = {"resourceType": "Subscription", "id": self.id}
        out.update(self.content)
        channel = out.get("channel")
        if isinstance(channel, dict) and "header" in channel:
            out["channel"] = {k: v for k, v in channel.items() if k != "header"}
        out["status"] = self.status
        if self.status == "error" and self.last_error:
            out["error"] = self.last_error
        return with_meta(out, self.version_id, self.last_updated)


@dataclass(frozen=True)
class Event:
    subscription_id: str
    number: int
    recorded: dt.datetime
    focus: ResourceRef
    context: tuple[ResourceRef, ...]
    patient_id: str | None
    patient_reference: str | None


def _row_to_sub(row, delivery=None) -> StoredSubscription:
    return StoredSubscription(
        id=row.id, kind=row.kind, topic=row.topic, filters=json.loads(row.criteria),
        patient_ref=row.patient_ref, status=row.status, event_count=row.event_count,
        version_id=row.version_id, last_updated=as_utc(row.last_updated),
        ends_at=as_utc(row.ends_at) if row.ends_at else None, owner=row.owner,
        content=jsonio.loads(row.content), owner_client=row.owner_client,
        last_error=delivery.last_error if delivery is not None else None,
        delivered_through=delivery.delivered_through if delivery is not None else 0)


def _values(spec: SubscriptionSpec) -> dict:
    return dict(kind=spec.kind, topic=spec.topic.url if spec.topic else None,
                criteria=json.dumps(spec.filters), patient_ref=spec.patient_ref,
                ends_at=spec.ends_at, content=jsonio.dumps(spec.resource))


def client_key(issuer: str, subject: str | None, client_id: str | None) -> str:
    """The owner of a subscription: the token's issuer, subject and client id claim."""
    return json.dumps([issuer, subject, client_id])


def create(engine: sa.Engine, spec: SubscriptionSpec, owner: str | None,
           owner_client: str | None = None) -> StoredSubscription:
    sub_id = uuid.uuid4().hex
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(s.insert().values(id=sub_id, status="off" if spec.off else "requested",
                                       event_count=0, version_id=1, last_updated=now,
                                       owner=owner, owner_client=owner_client,
                                       **_values(spec)))
        conn.execute(d.insert().values(subscription_id=sub_id, handshake_done=False,
                                       delivered_through=0, attempts=0))
    return get(engine, sub_id)


def update(engine: sa.Engine, sub_id: str, spec: SubscriptionSpec,
           expected_version: int | None = None) -> StoredSubscription:
    """Replace the subscription. A new endpoint or headers, or coming back from off, needs a
    new handshake before further notifications; events keep their numbers."""
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(sa.select(s).where(s.c.id == sub_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"no Subscription {sub_id!r}")
        if expected_version is not None and row.version_id != expected_version:
            raise PreconditionFailed(f"Subscription {sub_id!r} changed since version "
                                     f"{expected_version}",
                                     [Issue("If-Match",
                                            f"the current version is {row.version_id}")])
        old = jsonio.loads(row.content).get("channel") or {}
        new = spec.resource.get("channel") or {}
        rehandshake = (old.get("endpoint") != new.get("endpoint")
                       or old.get("header") != new.get("header")
                       or (row.status == "off" and not spec.off))
        status = "off" if spec.off else ("requested" if rehandshake else row.status)
        conn.execute(s.update().where(s.c.id == sub_id).values(
            status=status, version_id=row.version_id + 1, last_updated=now, **_values(spec)))
        if rehandshake:
            conn.execute(d.update().where(d.c.subscription_id == sub_id).values(
                handshake_done=False, attempts=0, next_attempt_at=None, last_error=None))
    return get(engine, sub_id)


def delete(engine: sa.Engine, sub_id: str) -> None:
    with engine.begin() as conn:
        if conn.execute(s.delete().where(s.c.id == sub_id)).rowcount == 0:
            raise NotFound(f"no Subscription {sub_id!r}")
        conn.execute(ev.delete().where(ev.c.subscription_id == sub_id))
        conn.execute(d.delete().where(d.c.subscription_id == sub_id))


def get(engine_or_conn, sub_id: str) -> StoredSubscription:
    query = (sa.select(s, d.c.last_error, d.c.delivered_through)
             .join(d, d.c.subscription_id == s.c.id, isouter=True).where(s.c.id == sub_id))
    if isinstance(engine_or_conn, sa.Connection):
        row = engine_or_conn.execute(query).first()
    else:
        with engine_or_conn.connect() as conn:
            row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no Subscription {sub_id!r}")
    return _row_to_sub(row, row)


def listing(engine: sa.Engine, patient_ref: str | None = None, limit: int = 100,
            after: str | None = None, owner_client: str | None = None,
            with_unowned: bool = True) -> list[StoredSubscription]:
    """Subscriptions, optionally only those of one patient and one client (``owner_client``,
    plus those without owner when ``with_unowned``)."""
    query = (sa.select(s, d.c.last_error, d.c.delivered_through)
             .join(d, d.c.subscription_id == s.c.id, isouter=True))
    if owner_client is not None:
        owned = s.c.owner_client == owner_client
        query = query.where(sa.or_(owned, s.c.owner_client.is_(None)) if with_unowned
                            else owned)
    if patient_ref is not None:
        query = query.where(s.c.patient_ref == patient_ref)
    if after is not None:
        query = query.where(s.c.id > after)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(s.c.id).limit(limit)).all()
    return [_row_to_sub(r, r) for r in rows]


# -- the event log ---------------------------------------------------------------------------

def _refs(text: str) -> tuple[ResourceRef, ...]:
    return tuple(ResourceRef(rtype, rid, int(version), op)
                 for rtype, rid, version, op in json.loads(text))


def context_json(refs) -> str:
    return json.dumps([[r.type, r.id, r.version, r.operation] for r in refs])


def events(conn: sa.Connection, sub_id: str, since: int, until: int) -> list[Event]:
    rows = conn.execute(sa.select(ev).where(
        ev.c.subscription_id == sub_id, ev.c.event_number >= since,
        ev.c.event_number <= until).order_by(ev.c.event_number)).all()
    return [Event(r.subscription_id, r.event_number, as_utc(r.recorded),
                  ResourceRef(r.focus_type, r.focus_id, r.focus_version, r.operation),
                  _refs(r.context), r.patient_id, r.patient_reference) for r in rows]


def versions(conn: sa.Connection, refs) -> dict[tuple[str, str, int], dict | None]:
    """The content of each named resource version as served (meta filled); None for a
    deletion."""
    wanted = {(r.type, r.id, r.version) for r in refs}
    if not wanted:
        return {}
    h = t.resource_history
    rows = conn.execute(sa.select(h).where(sa.or_(*[
        sa.and_(h.c.resource_type == rtype, h.c.id == rid, h.c.version_id == version)
        for rtype, rid, version in wanted]))).all()
    out: dict[tuple[str, str, int], dict | None] = {}
    for row in rows:
        key = (row.resource_type, row.id, row.version_id)
        out[key] = None if row.deleted or row.content is None else with_meta(
            jsonio.loads(row.content), row.version_id, as_utc(row.last_updated))
    return out
