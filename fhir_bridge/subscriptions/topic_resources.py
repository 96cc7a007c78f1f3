"""The topics as SubscriptionTopic resources at ``/fhir/SubscriptionTopic`` (read and search by
``url``, ``resource``, ``title``, ``_id``), so a client can discover what it can subscribe to.

FHIR R4 has no SubscriptionTopic; as the Subscriptions R5 Backport IG's servers do, they are
served in the R4B shape (validated against the R4B model), built from
``mappings/subscription-topics.yaml``: the trigger (focus type, interactions, the criteria the
focus must meet), the filters a subscriber may use, and the notification's focus type.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, current_app, request

from ..auth import current_principal
from ..errors import BadRequest, Issue, NotFound
from ..facade.responses import fhir
from ..facade.urls import fhir_base
from ..fhir.validate import validate_resource
from .topics import Topic, load_topics

bp = Blueprint("subscription_topics", __name__, url_prefix="/fhir/SubscriptionTopic")
SEARCH_PARAMS = ("url", "resource", "title", "_id")
DEFINITION = "http://hl7.org/fhir/StructureDefinition/"


def topic_resource(topic: Topic) -> dict:
    query = urlencode(topic.match.canonical)
    trigger = {"description": topic.description, "resource": DEFINITION + topic.resource,
               "supportedInteraction": sorted(topic.interactions)}
    if query:
        trigger["queryCriteria"] = {"current": f"{topic.resource}?{query}"}
    resource = {"resourceType": "SubscriptionTopic", "id": topic.key, "url": topic.url,
                "title": topic.title, "status": "active", "description": topic.description,
                "resourceTrigger": [trigger],
                "canFilterBy": [{"resource": topic.resource, "filterParameter": name}
                                for name in sorted(topic.filters)],
                "notificationShape": [{"resource": topic.resource}]}
    if not resource["canFilterBy"]:
        del resource["canFilterBy"]
    validate_resource(resource)
    return resource


def _matches(topic: Topic, name: str, values: list[str]) -> bool:
    if name == "url":
        return topic.url in values
    if name == "_id":
        return topic.key in values
    if name == "resource":
        return topic.resource in values or DEFINITION + topic.resource in values
    return any(topic.title.lower().startswith(v.lower()) for v in values)  # title: string


@bp.get("")
def search():
    current_principal().require("SubscriptionTopic", "s")
    unknown = sorted(set(request.args) - {*SEARCH_PARAMS, "_format", "_pretty"})
    if unknown:
        raise BadRequest("unsupported search parameters", [Issue(
            n, f"SubscriptionTopic is searched by {', '.join(SEARCH_PARAMS)}", "not-supported")
            for n in unknown])
    topics = sorted(load_topics().values(), key=lambda t: t.key)
    for name in SEARCH_PARAMS:
        for value in request.args.getlist(name):
            wanted = [v for v in value.split(",") if v]
            topics = [t for t in topics if _matches(t, name, wanted)]
    base = fhir_base(current_app.extensions["fhir_bridge"].config)
    return fhir({"resourceType": "Bundle", "type": "searchset", "total": len(topics),
                 "entry": [{"fullUrl": f"{base}/SubscriptionTopic/{t.key}",
                            "resource": topic_resource(t), "search": {"mode": "match"}}
                           for t in topics]})


@bp.get("/<topic_id>")
def read(topic_id: str):
    current_principal().require("SubscriptionTopic", "r")
    topic = next((t for t in load_topics().values() if t.key == topic_id), None)
    if topic is None:
        raise NotFound(f"SubscriptionTopic/{topic_id} is not known")
    return fhir(topic_resource(topic))
