"""Subscriptions: therapists' systems get notified of medication changes, side effects,
assessments and care-plan updates over rest-hook, without losing an update.

- ``topics``: the topics (``mappings/subscription-topics.yaml``) and what triggers them;
- ``resource``: reading and checking a client's Subscription resource; ``channel``: the
  endpoint allow-list and channel headers;
- ``eventlog``: the RecordStore listener that numbers events inside the saving transaction;
- ``repository``: subscriptions and the event log; ``queue``: delivery state and leases;
- ``notify``: notification Bundles and status Parameters; ``sender``: the HTTP sender;
- ``worker``: delivery passes, the loop, the background thread; ``api``: /fhir/Subscription;
  ``topic_resources``: the topics as SubscriptionTopic resources (and R4 Basic ones).

docs/subscriptions.md describes the behaviour.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from .channel import check_patterns
from .eventlog import record_events

__all__ = ["install", "record_events", "subscription_capability"]

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
OPERATIONS = [
    {"name": "status", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/"
                                     "OperationDefinition/backport-subscription-status"},
    {"name": "events", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/"
                                     "OperationDefinition/backport-subscription-events"}]


def subscription_capability() -> dict[str, Any]:
    """The CapabilityStatement.rest.resource entry for Subscription (its search parameters:
    ``catalog`` in mappings/search-parameters.yaml)."""
    from ..facade.catalog import capability_entry

    return capability_entry(
        "Subscription", "The caller's own subscriptions (R5 Backport IG on R4).",
        ("read", "update", "delete", "create", "search-type"),
        supportedProfile=[f"{BACKPORT}/backport-subscription"], operation=OPERATIONS)


def capability_entries() -> list[dict[str, Any]]:
    """Subscription (with a topic-canonical extension per topic), SubscriptionTopic (R4B
    shape) and Basic (the topics in the Backport IG's R4 form)."""
    from ..facade.catalog import capability_entry
    from .topics import load_topics

    topics = [{"url": f"{BACKPORT}/capabilitystatement-subscriptiontopic-canonical",
               "valueCanonical": t.url} for t in sorted(load_topics().values(),
                                                        key=lambda t: t.key)]
    return [{**subscription_capability(), "extension": topics},
            capability_entry("SubscriptionTopic", "The subscription topics (R4B shape)."),
            capability_entry("Basic", "The subscription topics in the Subscriptions R5 "
                             "Backport IG's R4 form: Basic?code=SubscriptionTopic.")]


def install(app: Flask) -> None:
    """Register /fhir/Subscription, /fhir/SubscriptionTopic and /fhir/Basic and announce them
    in the CapabilityStatement. The event-log listener is added to the RecordStore by build_bridge,
    so every writer (API, CLI, pull) records events."""
    from ..facade import catalog
    from . import api, topic_resources

    bridge = app.extensions["fhir_bridge"]
    check_patterns((bridge.config.get("subscriptions") or {}).get("allowed_endpoints") or [])
    app.register_blueprint(api.bp)
    catalog.register(app, "Subscription", api.searchable_subscriptions, api.searched)
    topic_resources.install(app)
    app.extensions.setdefault("fhir_capability_resources", []).extend(capability_entries())
