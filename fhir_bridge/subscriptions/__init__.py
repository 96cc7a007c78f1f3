"""Subscriptions: therapists' systems get notified of medication changes, side effects,
assessments and care-plan updates over rest-hook, without losing an update.

- ``topics``: the topics (``mappings/subscription-topics.yaml``) and what triggers them;
- ``resource``: reading and checking a client's Subscription resource; ``channel``: the
  endpoint allow-list and channel headers;
- ``eventlog``: the RecordStore listener that numbers events inside the saving transaction;
- ``repository``: subscriptions and the event log; ``queue``: delivery state and leases;
- ``notify``: notification Bundles and status Parameters; ``sender``: the HTTP sender;
- ``worker``: delivery passes, the loop, the background thread; ``api``: /fhir/Subscription.

docs/subscriptions.md describes the behaviour.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from .channel import check_patterns
from .eventlog import record_events

__all__ = ["install", "record_events", "CAPABILITY"]

#: The CapabilityStatement.rest.resource entry for Subscription.
CAPABILITY: dict[str, Any] = {
    "type": "Subscription",
    "supportedProfile": [
        "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"],
    "interaction": [{"code": c} for c in ("read", "update", "delete", "create", "search-type")],
    "operation": [
        {"name": "status", "definition":
         "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
         "backport-subscription-status"},
        {"name": "events", "definition":
         "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
         "backport-subscription-events"}],
}


def install(app: Flask) -> None:
    """Register /fhir/Subscription and announce it in the CapabilityStatement. The event-log
    listener is added to the RecordStore by build_bridge, so every writer (API, CLI, pull)
    records events."""
    from . import api

    bridge = app.extensions["fhir_bridge"]
    check_patterns((bridge.config.get("subscriptions") or {}).get("allowed_endpoints") or [])
    app.register_blueprint(api.bp)
    app.extensions.setdefault("fhir_capability_resources", []).append(CAPABILITY)
