"""Read a client's Subscription resource into a SubscriptionSpec, refusing bad input.

Two kinds, told apart by ``criteria``:

- topic-based (R5 Backport IG 1.1 on R4): ``criteria`` is a topic canonical of
  ``mappings/subscription-topics.yaml``; filters in ``_criteria`` extensions
  ``backport-filter-criteria`` (``MedicationRequest?patient=Patient/pat-p01``), payload content
  in ``channel._payload`` ``backport-payload-content``, heartbeat, timeout and max count as
  channel extensions;
- criteria-based (plain R4): ``criteria`` is ``Type?query``, read with the /fhir search
  parameters.

Every problem is reported at once, each naming its element (422); the resource is first
validated with fhir.resources R4B.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import BridgeError, InvalidInput, Issue
from ..facade.query import Search, parse_criteria
from ..fhir.validate import resource_issues
from .channel import endpoint_problem, parse_headers
from .topics import Topic, load_topics

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
PROFILE = BACKPORT + "backport-subscription"
FILTER_CRITERIA = BACKPORT + "backport-filter-criteria"
PAYLOAD_CONTENT = BACKPORT + "backport-payload-content"
HEARTBEAT_PERIOD = BACKPORT + "backport-heartbeat-period"
TIMEOUT = BACKPORT + "backport-timeout"
MAX_COUNT = BACKPORT + "backport-max-count"
CHANNEL_TYPE = BACKPORT + "backport-channel-type"

CONTENTS = ("empty", "id-only", "full-resource")
JSON_TYPES = ("application/fhir+json", "application/json")
STATUSES = ("requested", "active", "error", "off")  # R4 subscription-status
MAX_FILTERS = 10


@dataclass
class SubscriptionSpec:
    kind: str  # topic | criteria
    topic: Topic | None
    filters: list[str]  # topic: backport-filter-criteria values; criteria: [the criteria]
    endpoint: str
    headers: list[tuple[str, str]]
    payload: str | None  # the MIME type, None for an R4 ping without body
    content: str  # empty | id-only | full-resource
    heartbeat: int | None
    timeout: int | None
    max_count: int
    patient_ref: str | None  # the Patient id the filters name (one), if any
    ends_at: dt.datetime | None
    off: bool  # the client asked for status off
    resource: dict = field(repr=False)  # what is stored: the input without id, meta and status

    def searches(self) -> list[Search]:
        return [parse_criteria(text) for text in self.filters]


def _ext(element: Any, url: str) -> list[dict]:
    if not isinstance(element, dict):
        return []
    return [e for e in element.get("extension") or [] if isinstance(e, dict)
            and e.get("url") == url]


def _one_int(element: Any, url: str, path: str, low: int, issues: list[Issue]) -> int | None:
    found = _ext(element, url)
    if not found:
        return None
    value = next((v for k, v in found[0].items() if k.startswith("value")), None)
    if len(found) > 1 or not isinstance(value, int) or isinstance(value, bool) or value < low:
        issues.append(Issue(path, f"must be one whole number of at least {low}"))
        return None
    return value


def _patient_named(searches: list[Search]) -> tuple[str | None, bool]:
    """(patient id, ambiguous): the one Patient a patient/subject filter names."""
    named: set[str] = set()
    for search in searches:
        for criterion in search.criteria:
            if criterion.param.name in ("patient", "subject") and criterion.modifier is None:
                named.update(rid for _, rid in criterion.values)
    if len(named) == 1:
        return next(iter(named)), False
    return None, len(named) > 1


def _criterion_patients(search: Search) -> list[set[str]]:
    return [{rid for _, rid in c.values} for c in search.criteria
            if c.param.name in ("patient", "subject") and c.modifier is None]


def _issues_of(exc: BridgeError, path: str) -> list[Issue]:
    if not exc.issues:
        return [Issue(path, exc.message)]
    return [Issue(path, f"{i.path}: {i.message}", i.code) for i in exc.issues]


def _instant(text: Any) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def parse_subscription(doc: Any, settings: Mapping[str, Any]) -> SubscriptionSpec:
    """The spec of a Subscription resource; InvalidInput naming every bad element."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "Subscription":
        raise InvalidInput("the body must be a Subscription resource",
                           [Issue("resourceType", "must be Subscription")])
    issues = [i for i in resource_issues(doc)]
    status = doc.get("status")
    if status is not None and status not in STATUSES:
        issues.append(Issue("Subscription.status", f"must be one of {', '.join(STATUSES)}"))
    if not isinstance(doc.get("reason"), str) or not doc["reason"].strip():
        issues.append(Issue("Subscription.reason", "is required"))
    ends_at = None
    if doc.get("end") is not None:
        ends_at = _instant(doc["end"])
        if ends_at is None:
            issues.append(Issue("Subscription.end", "must be an instant with a time zone"))
    channel = doc.get("channel") if isinstance(doc.get("channel"), dict) else {}
    if channel.get("type") != "rest-hook" or _ext(channel.get("_type"), CHANNEL_TYPE):
        issues.append(Issue("Subscription.channel.type", "only rest-hook is supported",
                            "not-supported"))
    endpoint = channel.get("endpoint")
    problem = endpoint_problem(endpoint, settings.get("allowed_endpoints") or [])
    if problem:
        issues.append(Issue("Subscription.channel.endpoint", problem, "security"
                            if "allowed" in problem else "invalid"))
    header_values = channel.get("header") or []
    if not isinstance(header_values, list):
        header_values = [header_values]
    headers, header_problems = parse_headers(header_values)
    issues.extend(Issue(f"Subscription.channel.header[{i}]", p) for i, p in header_problems)
    payload = channel.get("payload")
    if payload is not None and payload not in JSON_TYPES:
        issues.append(Issue("Subscription.channel.payload",
                            "only application/fhir+json is supported", "not-supported"))

    criteria = doc.get("criteria")
    topic: Topic | None = None
    filters: list[str] = []
    content = "empty"
    heartbeat = timeout = None
    max_count = 1
    searches: list[Search] = []
    if not isinstance(criteria, str) or not criteria.strip():
        issues.append(Issue("Subscription.criteria", "is required"))
        kind = "criteria"
    elif "?" not in criteria and (":" in criteria or "/" in criteria):
        kind = "topic"
        topic = load_topics().get(criteria)
        if topic is None:
            issues.append(Issue("Subscription.criteria", f"{criteria!r} is not a topic of this "
                                "server (see GET /fhir/Subscription topics in "
                                "docs/subscriptions.md)", "not-found"))
        filter_exts = _ext(doc.get("_criteria"), FILTER_CRITERIA)
        if len(filter_exts) > MAX_FILTERS:
            issues.append(Issue("Subscription._criteria", f"at most {MAX_FILTERS} filters"))
        for index, ext in enumerate(filter_exts):
            path = f"Subscription._criteria.extension[{index}].valueString"
            text = ext.get("valueString")
            if not isinstance(text, str) or "?" not in text:
                issues.append(Issue(path, "must be Type?parameter=value"))
                continue
            try:
                search = parse_criteria(text)
            except BridgeError as exc:
                issues.extend(_issues_of(exc, path))
                continue
            if topic is not None and search.resource_type != topic.resource:
                issues.append(Issue(path, f"the topic is about {topic.resource}, not "
                                          f"{search.resource_type}"))
                continue
            names = {name.partition(":")[0] for name, _ in search.canonical}
            bad = sorted(n for n in names if topic is not None and n not in topic.filters)
            if bad or search.count != 50 or search.summary_count:
                allowed = ", ".join(sorted(topic.filters)) if topic else "none"
                issues.append(Issue(path, f"{', '.join(bad) or 'paging'} cannot filter this "
                                          f"topic (allowed: {allowed})"))
                continue
            filters.append(text)
            searches.append(search)
        payload = payload or "application/fhir+json"
        content_exts = _ext(channel.get("_payload"), PAYLOAD_CONTENT)
        content = "id-only"
        if content_exts:
            code = content_exts[0].get("valueCode")
            if len(content_exts) > 1 or code not in CONTENTS:
                issues.append(Issue("Subscription.channel._payload.extension"
                                    "(backport-payload-content)",
                                    f"must be one of {', '.join(CONTENTS)}"))
            else:
                content = code
        heartbeat = _one_int(channel, HEARTBEAT_PERIOD,
                             "Subscription.channel.extension(backport-heartbeat-period)", 1,
                             issues)
        timeout = _one_int(channel, TIMEOUT, "Subscription.channel.extension(backport-timeout)",
                           1, issues)
        max_count = _one_int(channel, MAX_COUNT,
                             "Subscription.channel.extension(backport-max-count)", 1,
                             issues) or 1
    else:
        kind = "criteria"
        try:
            search = parse_criteria(criteria)
        except BridgeError as exc:
            issues.extend(_issues_of(exc, "Subscription.criteria"))
        else:
            if search.count != 50 or search.summary_count:
                issues.append(Issue("Subscription.criteria", "takes filters only"))
            filters, searches = [criteria], [search]
        content = "full-resource" if payload else "empty"
        for url, name in ((HEARTBEAT_PERIOD, "heartbeat-period"), (MAX_COUNT, "max-count")):
            if _ext(channel, url):
                issues.append(Issue(f"Subscription.channel.extension(backport-{name})",
                                    "applies to topic-based subscriptions only"))
        timeout = _one_int(channel, TIMEOUT, "Subscription.channel.extension(backport-timeout)",
                           1, issues)

    patient_ref, ambiguous = _patient_named(searches)
    if ambiguous:
        issues.append(Issue("Subscription.criteria", "may name one patient only"))
    if issues:
        raise InvalidInput("the Subscription cannot be accepted as written", issues)
    stored = copy.deepcopy({k: v for k, v in doc.items()
                            if k not in ("id", "meta", "status", "error")})
    return SubscriptionSpec(kind=kind, topic=topic, filters=filters, endpoint=endpoint,
                            headers=headers, payload=payload, content=content,
                            heartbeat=heartbeat, timeout=timeout, max_count=max_count,
                            patient_ref=patient_ref, ends_at=ends_at, off=status == "off",
                            resource=stored)


def limited_to(spec: SubscriptionSpec, patient_id: str) -> bool:
    """Whether every filter (or the criteria) names this patient and no other: what a
    patient-context token may subscribe to."""
    searches = spec.searches()
    return bool(searches) and spec.patient_ref == patient_id and all(
        {patient_id} in _criterion_patients(s) for s in searches)


def spec_from_stored(content: dict, settings: Mapping[str, Any]) -> SubscriptionSpec:
    """The spec of a stored subscription (already accepted; the allow-list is checked again,
    so narrowing it stops deliveries to endpoints no longer allowed)."""
    return parse_subscription({"resourceType": "Subscription", **content,
                               "status": "requested"}, settings)


def payload_content(stored: dict, kind: str) -> str:
    """The payload content of an accepted subscription (as parse_subscription decided it)."""
    channel = stored.get("channel") or {}
    if kind == "criteria":
        return "full-resource" if channel.get("payload") else "empty"
    found = _ext(channel.get("_payload"), PAYLOAD_CONTENT)
    return found[0].get("valueCode", "id-only") if found else "id-only"
