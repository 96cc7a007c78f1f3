"""Subscriptions: therapists' systems get notified of medication changes, side effects,
assessments and care-plan updates over rest-hook, without losing an update.

- ``topics``: the topics (``mappings/subscription-topics.yaml``) and what triggers them;
- ``resource``: reading and checking a client's Subscription resource; ``channel``: the
  endpoint allow-list and channel headers;
- ``eventlog``: the RecordStore listener that numbers events inside the saving transaction;
- ``repository``: subscriptions and the event log; ``queue``: delivery state and leases;
- ``notify``: notification Bundles and status Parameters; ``sender``: the HTTP sender;
- ``worker``: delivery passes, the loop, the background thread; ``api``: /fhir/Subscription;
  ``topic_resources``: the topics as SubscriptionTopic resources.

docs/subscriptions.md describes the behaviour.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from .channel import check_patterns
from .eventlog import record_events

__all__ = ["install", "record_events", "CAPABILITY"]

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
#: The CapabilityStatement.rest.resource entry for Subscription (install adds the Backport
#: IG's topic-canonical extension for each topic).
CAPABILITY: dict[str, Any] = {
    "type": "Subscription",
    "supportedProfile": [f"{BACKPORT}/backport-subscription"],
    "interaction": [{"code": c} for c in ("read", "update", "delete", "create", "search-type")],
    "searchParam": [{"name": "status", "type": "token"}, {"name": "url", "type": "uri",
                                                          "documentation": "channel.endpoint"}],
    "operation": [
        {"name": "status", "definition":
         "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
         "backport-subscription-status"},
        {"name": "events", "definition":
         "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
         "backport-subscription-events"}],
}


#: The CapabilityStatement.rest.resource entry for SubscriptionTopic (R4B shape).
TOPIC_CAPABILITY: dict[str, Any] = {
    "type": "SubscriptionTopic",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "searchParam": [{"name": n, "type": t} for n, t in (
        ("url", "uri"), ("resource", "uri"), ("title", "string"), ("_id", "token"))],
}


def capability_entries() -> list[dict[str, Any]]:
    """Subscription (with a topic-canonical extension per topic) and SubscriptionTopic."""
    from .topics import load_topics

    topics = [{"url": f"{BACKPORT}/capabilitystatement-subscriptiontopic-canonical",
               "valueCanonical": t.url} for t in sorted(load_topics().values(),
                                                        key=lambda t: t.key)]
    return [{**CAPABILITY, "extension": topics}, TOPIC_CAPABILITY]


def install(app: Flask) -> None:
    """Register /fhir/Subscription and /fhir/SubscriptionTopic and announce them in the
    CapabilityStatement. The event-log listener is added to the RecordStore by build_bridge,
    so every writer (API, CLI, pull) records events."""
    from . import api, topic_resources

    bridge = app.extensions["fhir_bridge"]
    check_patterns((bridge.config.get("subscriptions") or {}).get("allowed_endpoints") or [])
    app.register_blueprint(api.bp)
    app.register_blueprint(topic_resources.bp)
    app.extensions.setdefault("fhir_capability_resources", []).extend(capability_entries())
