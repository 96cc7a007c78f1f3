"""The listener that writes the event log inside every saving transaction.

``RecordStore.save`` calls it with the resource changes of the save before it commits, so an
event exists exactly when its change does: a process that dies right after the commit loses
nothing, and a rolled-back save leaves no event. Each matching subscription's counter
(``subscriptions.event_count``) is bumped in the same transaction; on PostgreSQL the UPDATE
locks the subscription's row until commit, so concurrent saves number its events 1, 2, 3, ...
without gaps and in commit order (SQLite has one writer at a time anyway).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache

import sqlalchemy as sa

from ..facade.query import Search, parse_criteria
from ..store import tables as t
from ..store.records import ResourceEvent, as_utc, utcnow
from .repository import context_json
from .topics import Trigger, criteria_triggers, load_topics, triggers

log = logging.getLogger("fhir_bridge.subscriptions")

s, ev = t.subscriptions, t.subscription_events


@lru_cache(maxsize=1024)
def _search(criteria: str) -> Search:
    return parse_criteria(criteria)


def _searches(filters_json: str) -> list[Search]:
    return [_search(text) for text in json.loads(filters_json)]


def matching(kind: str, topic_url: str | None, filters_json: str,
             events: list[ResourceEvent], by_topic: dict[str, list[Trigger]]) -> list[Trigger]:
    """The events of one subscription among one save's changes."""
    searches = _searches(filters_json)
    if kind == "criteria":
        return criteria_triggers(searches[0], events)
    if topic_url not in by_topic:
        topic = load_topics().get(topic_url)
        by_topic[topic_url] = triggers(topic, events) if topic is not None else []
    return [trig for trig in by_topic[topic_url]
            if all(f.matches(trig.resource) for f in searches
                   if f.resource_type == trig.focus.type)]


def record_events(conn: sa.Connection, events: list[ResourceEvent]) -> None:
    """The RecordStore listener: number and store the events of every live subscription."""
    subs = conn.execute(sa.select(s.c.id, s.c.kind, s.c.topic, s.c.criteria, s.c.ends_at)
                        .where(s.c.status != "off").order_by(s.c.id)).all()
    if not subs:
        return
    now = utcnow()
    by_topic: dict[str, list[Trigger]] = {}
    for sub in subs:
        if sub.ends_at is not None and as_utc(sub.ends_at) <= now:
            continue
        found = matching(sub.kind, sub.topic, sub.criteria, events, by_topic)
        if found:
            append(conn, sub.id, found, now)


def append(conn: sa.Connection, sub_id: str, found: list[Trigger], now) -> None:
    bumped = conn.execute(s.update().where(s.c.id == sub_id).values(
        event_count=s.c.event_count + len(found)))
    if bumped.rowcount == 0:  # deleted meanwhile
        return
    last = conn.execute(sa.select(s.c.event_count).where(s.c.id == sub_id)).scalar_one()
    first = last - len(found) + 1
    conn.execute(ev.insert(), [
        dict(subscription_id=sub_id, event_number=first + i, recorded=now,
             focus_type=trig.focus.type, focus_id=trig.focus.id,
             focus_version=trig.focus.version, operation=trig.focus.operation,
             context=context_json(trig.context), patient_id=trig.patient_id,
             patient_reference=trig.patient_reference)
        for i, trig in enumerate(found)])
