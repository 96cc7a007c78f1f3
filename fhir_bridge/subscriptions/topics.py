"""Subscription topics as data (``mappings/subscription-topics.yaml``) and what triggers them.

``triggers(topic, events)`` turns the resource changes of one save into the topic's events: the
changes of the topic's resource type that meet its ``match`` criteria, with an interaction it
names and (for updates) a change in one of its ``changed`` elements. Resources the focus points
at through ``context_from`` that changed in the same save become additional context and are no
events of their own: a dose change (new MedicationRequest with priorPrescription, prior one
stopped) is one event.

``criteria_triggers(search, events)`` is the plain R4 rule for criteria-based subscriptions:
every created or updated resource whose new version meets the criteria, one event each;
deletions and updates out of the criteria notify nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import yaml

from .. import PROJECT_ROOT
from ..facade.match import reference_key, values
from ..facade.query import Search, parse_criteria
from ..store.records import ResourceEvent

TOPICS_FILE = PROJECT_ROOT / "mappings" / "subscription-topics.yaml"
INTERACTIONS = ("create", "update", "delete")


@dataclass(frozen=True)
class Topic:
    key: str
    url: str
    title: str
    description: str
    resource: str
    match: Search
    interactions: frozenset[str]
    changed: tuple[str, ...] | None  # None: any content change of an update
    context_from: tuple[str, ...]
    filters: frozenset[str]
    notification: str


@dataclass(frozen=True)
class ResourceRef:
    """A resource version an event names; ``operation`` is create, update or delete."""

    type: str
    id: str
    version: int
    operation: str

    @property
    def reference(self) -> str:
        return f"{self.type}/{self.id}"


@dataclass(frozen=True)
class Trigger:
    """One event before it is numbered: focus, additional context, and the focus content it was
    matched on (the new version; for a deletion the version before)."""

    focus: ResourceRef
    context: tuple[ResourceRef, ...]
    resource: dict
    patient_id: str | None

    @property
    def patient_reference(self) -> str | None:
        for element in ("subject", "patient"):
            key = reference_key(((self.resource.get(element) or {}).get("reference")) or "")
            if key is not None and key[0] == "Patient":
                return f"Patient/{key[1]}"
        return None


def _topic(key: str, spec: dict) -> Topic:
    interactions = frozenset(spec["interactions"])
    unknown = interactions - set(INTERACTIONS)
    if unknown:
        raise ValueError(f"topic {key}: unknown interactions {sorted(unknown)}")
    match = parse_criteria(spec["match"])
    if match.resource_type != spec["resource"]:
        raise ValueError(f"topic {key}: match is not about {spec['resource']}")
    changed = spec.get("changed")
    return Topic(key=key, url=spec["url"], title=spec["title"],
                 description=" ".join(str(spec["description"]).split()),
                 resource=spec["resource"], match=match, interactions=interactions,
                 changed=tuple(changed) if changed is not None else None,
                 context_from=tuple(spec.get("context_from") or ()),
                 filters=frozenset(spec.get("filters") or ()),
                 notification=" ".join(str(spec.get("notification", "")).split()))


@lru_cache(maxsize=4)
def load_topics(path: Path = TOPICS_FILE) -> dict[str, Topic]:
    """Every topic, by canonical URL."""
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    topics = [_topic(key, spec) for key, spec in (doc.get("topics") or {}).items()]
    return {t.url: t for t in topics}


def interaction(event: ResourceEvent) -> str:
    if event.operation == "delete":
        return "delete"
    return "create" if event.previous is None else "update"


def _ref(event: ResourceEvent) -> ResourceRef:
    return ResourceRef(event.resource_type, event.id, event.version_id, interaction(event))


def _differs(previous: dict, new: dict, elements: Iterable[str]) -> bool:
    return any(previous.get(name) != new.get(name) for name in elements)


def _referenced(resource: dict, paths: Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for path in paths:
        for value in values(resource, path):
            if isinstance(value, dict):
                key = reference_key(value.get("reference") or "")
                if key is not None and key[0] is not None:
                    out.append((key[0], key[1]))
    return out


def triggers(topic: Topic, events: list[ResourceEvent]) -> list[Trigger]:
    """The topic's events among one save's resource changes, in the order of the changes."""
    changed = {(e.resource_type, e.id): e for e in events}
    found: list[Trigger] = []
    absorbed: set[tuple[str, str]] = set()
    for event in events:
        if event.resource_type != topic.resource:
            continue
        kind = interaction(event)
        if kind not in topic.interactions:
            continue
        content = event.resource if event.resource is not None else event.previous
        if content is None or not topic.match.matches(content):
            continue
        if (kind == "update" and topic.changed is not None
                and not _differs(event.previous, event.resource, topic.changed)):
            continue
        context = []
        for key in _referenced(content, topic.context_from):
            other = changed.get(key)
            if other is not None and key != (event.resource_type, event.id):
                context.append(_ref(other))
                absorbed.add(key)
        found.append(Trigger(_ref(event), tuple(dict.fromkeys(context)), content,
                             event.patient_id))
    return [t for t in found if (t.focus.type, t.focus.id) not in absorbed]


def criteria_triggers(search: Search, events: list[ResourceEvent]) -> list[Trigger]:
    """R4 criteria-based subscriptions: created or updated resources whose new version
    matches, one event each."""
    return [Trigger(_ref(e), (), e.resource, e.patient_id) for e in events
            if e.operation == "upsert" and e.resource is not None and search.matches(e.resource)]
