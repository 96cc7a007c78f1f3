"""Notification content: the SubscriptionStatus Parameters (backport-subscription-status-r4) and
the notification Bundle (backport-subscription-notification-r4: type history, the Parameters
first), for handshakes, heartbeats, event notifications, ``$status`` and ``$events``.

Payload content decides what follows the Parameters: ``empty`` nothing and no resource
references at all; ``id-only`` one entry per focus / additional-context resource with its full
URL and no resource; ``full-resource`` those entries with the resource version the event named.
Every Bundle is validated once with fhir.resources R4B before it leaves.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Iterable

from ..fhir.validate import validate_resource
from ..store.records import instant
from .repository import Event, StoredSubscription
from .resource import BACKPORT
from .topics import ResourceRef

STATUS_PROFILE = BACKPORT + "backport-subscription-status-r4"
NOTIFICATION_PROFILE = BACKPORT + "backport-subscription-notification-r4"
TYPES = ("handshake", "heartbeat", "event-notification", "query-status", "query-event")
_RESPONSE = {"create": "201", "update": "200", "delete": "204"}
_METHOD = {"create": "POST", "update": "PUT", "delete": "DELETE"}


def full_url(base: str, ref: ResourceRef | str) -> str:
    return f"{base}/{ref.reference if isinstance(ref, ResourceRef) else ref}"


def status_parameters(sub: StoredSubscription, kind: str, events: Iterable[Event], content: str,
                      base: str, status: str | None = None) -> dict:
    if kind not in TYPES:
        raise ValueError(f"unknown notification type {kind}")
    params: list[dict] = [
        {"name": "subscription",
         "valueReference": {"reference": full_url(base, f"Subscription/{sub.id}")}}]
    if sub.topic:
        params.append({"name": "topic", "valueCanonical": sub.topic})
    params += [{"name": "status", "valueCode": status or sub.status},
               {"name": "type", "valueCode": kind},
               {"name": "events-since-subscription-start", "valueString": str(sub.event_count)}]
    for event in events:
        parts = [{"name": "event-number", "valueString": str(event.number)},
                 {"name": "timestamp", "valueInstant": instant(event.recorded)}]
        if content != "empty":
            parts.append({"name": "focus",
                          "valueReference": {"reference": full_url(base, event.focus)}})
            parts += [{"name": "additional-context",
                       "valueReference": {"reference": full_url(base, ref)}}
                      for ref in event.context]
        params.append({"name": "notification-event", "part": parts})
    pid = str(uuid.uuid4())
    return {"resourceType": "Parameters", "id": pid, "meta": {"profile": [STATUS_PROFILE]},
            "parameter": params}


def _entries(events: Iterable[Event], content: str, base: str,
             versions: dict[tuple[str, str, int], dict | None]) -> list[dict]:
    if content == "empty":
        return []
    entries, seen = [], set()
    for event in events:
        for ref in (event.focus, *event.context):
            key = (ref.type, ref.id, ref.version)
            if key in seen:
                continue
            seen.add(key)
            entry: dict = {"fullUrl": full_url(base, ref)}
            resource = versions.get(key)
            if content == "full-resource" and resource is not None:
                entry["resource"] = resource
            entry["request"] = {"method": _METHOD[ref.operation],
                                "url": ref.reference if ref.operation != "create" else ref.type}
            entry["response"] = {"status": _RESPONSE[ref.operation],
                                 "etag": f'W/"{ref.version}"'}
            entries.append(entry)
    return entries


def notification_bundle(sub: StoredSubscription, kind: str, events: list[Event], content: str,
                        base: str, now: dt.datetime,
                        versions: dict[tuple[str, str, int], dict | None] | None = None,
                        status: str | None = None) -> dict:
    """A validated notification Bundle (type history) for handshake, heartbeat,
    event-notification or query-event."""
    parameters = status_parameters(sub, kind, events, content, base, status)
    bundle = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()),
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history", "timestamp": instant(now),
        "entry": [{"fullUrl": f"urn:uuid:{parameters['id']}", "resource": parameters,
                   "request": {"method": "GET",
                               "url": full_url(base, f"Subscription/{sub.id}/$status")},
                   "response": {"status": "200"}},
                  *_entries(events, content, base, versions or {})]}
    validate_resource(bundle)
    return bundle


def status_bundle(sub: StoredSubscription, base: str, now: dt.datetime) -> dict:
    """What ``$status`` returns: a searchset Bundle with the status Parameters."""
    return statuses_bundle([sub], base, now)


def statuses_bundle(subs: list[StoredSubscription], base: str, now: dt.datetime) -> dict:
    """What type-level ``$status`` returns: one status Parameters per subscription."""
    entries = []
    for sub in subs:
        parameters = status_parameters(sub, "query-status", [], "empty", base)
        entries.append({"fullUrl": f"urn:uuid:{parameters['id']}", "resource": parameters,
                        "search": {"mode": "match"}})
    bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset",
              "timestamp": instant(now), "total": len(entries)}
    if entries:
        bundle["entry"] = entries
    validate_resource(bundle)
    return bundle
