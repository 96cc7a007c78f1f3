"""The topics as resources a client can discover what it can subscribe to with, built from
``mappings/subscription-topics.yaml`` (the trigger: focus type, interactions, the criteria the
focus must meet; the filters a subscriber may use; the notification's focus type), in two
shapes:

- ``/fhir/SubscriptionTopic``: the R4B shape, as the Subscriptions R5 Backport IG's servers
  serve it (FHIR R4 has no SubscriptionTopic), validated against the R4B model;
- ``/fhir/Basic?code=SubscriptionTopic``: the IG's R4 form, a Basic resource whose code is
  ``SubscriptionTopic`` and whose elements are cross-version extensions.

Both are read by id and searched by the /fhir engine (facade/catalog.py; parameters in
mappings/search-parameters.yaml, ``catalog``).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint

from ..auth import current_principal
from ..errors import Issue, NotFound
from ..facade import catalog
from ..fhir import jsonio
from ..fhir.validate import validate_resource
from .topics import Topic, load_topics

bp = Blueprint("subscription_topics", __name__, url_prefix="/fhir")
DEFINITION = "http://hl7.org/fhir/StructureDefinition/"

# The R4 form, as the Subscriptions R5 Backport IG's example "Backported SubscriptionTopic: R4
# Encounter Complete" writes it (HL7/fhir-subscription-backport-ig,
# input/resources/Basic-r4-encounter-complete.json): Basic.code is SubscriptionTopic of
# http://hl7.org/fhir/fhir-types; url, title, description and status are R5 cross-version
# extensions (status a modifierExtension), resourceTrigger, canFilterBy and notificationShape
# R4B ones with the element names as the urls of their parts.
FHIR_TYPES = "http://hl7.org/fhir/fhir-types"
R5 = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic."
R4B = "http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic."
TOPIC_CODE = {"coding": [{"system": FHIR_TYPES, "code": "SubscriptionTopic"}]}


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


def _part(name: str, kind: str, value) -> dict:
    return {"url": name, f"value{kind}": value}


def basic_resource(topic: Topic) -> dict:
    """The topic in the Backport IG's R4 form (Basic, code SubscriptionTopic)."""
    query = urlencode(topic.match.canonical)
    trigger = [_part("description", "Markdown", topic.description),
               _part("resource", "Uri", DEFINITION + topic.resource),
               *(_part("supportedInteraction", "Code", i) for i in sorted(topic.interactions))]
    if query:
        trigger.append({"url": "queryCriteria", "extension": [
            _part("current", "String", f"{topic.resource}?{query}")]})
    extensions = [{"url": R5 + "url", "valueUri": topic.url},
                  {"url": R5 + "title", "valueString": topic.title},
                  {"url": R5 + "description", "valueMarkdown": topic.description},
                  {"url": R4B + "resourceTrigger", "extension": trigger},
                  *({"url": R4B + "canFilterBy", "extension": [
                      _part("resource", "Uri", topic.resource),
                      _part("filterParameter", "String", name)]}
                    for name in sorted(topic.filters)),
                  {"url": R4B + "notificationShape", "extension": [
                      _part("resource", "Uri", topic.resource)]}]
    resource = {"resourceType": "Basic", "id": topic.key, "extension": extensions,
                "modifierExtension": [{"url": R5 + "status", "valueCode": "active"}],
                "code": TOPIC_CODE}
    validate_resource(resource)
    return resource


def _topics() -> list[Topic]:
    return sorted(load_topics().values(), key=lambda t: t.key)


#: (shape, id of the loaded topics) -> (those topics, {topic key: the resource as JSON})
_BUILT: dict[tuple[str, int], tuple[dict, dict[str, bytes]]] = {}


def _shaped(shape) -> dict[str, dict]:
    """Every topic in ``shape`` (topic_resource or basic_resource), built and validated once
    per loaded topics file (topics.py caches it), not once per request; each caller gets its
    own copy."""
    topics = load_topics()
    key = (shape.__name__, id(topics))
    if key not in _BUILT:
        if len(_BUILT) >= 8:
            _BUILT.clear()
        # (the value holds ``topics``, so its id cannot be reused while the entry lives)
        _BUILT[key] = (topics, {t.key: jsonio.dumpb(shape(t)) for t in _topics()})
    return {k: jsonio.loads(v) for k, v in _BUILT[key][1].items()}


def topic_resources() -> list[dict]:
    """What a SubscriptionTopic search sees (the caller may search topics)."""
    current_principal().require("SubscriptionTopic", "s")
    return list(_shaped(topic_resource).values())


def basic_resources() -> list[dict]:
    """What a Basic search sees: the topics in the R4 form (the only Basic resources)."""
    current_principal().require("Basic", "s")
    return list(_shaped(basic_resource).values())


def install(app) -> None:
    app.register_blueprint(bp)
    catalog.register(app, "SubscriptionTopic", topic_resources)
    catalog.register(app, "Basic", basic_resources)


@bp.get("/SubscriptionTopic/<topic_id>")
def read(topic_id: str):
    current_principal().require("SubscriptionTopic", "r")
    return _read(topic_id, topic_resource, "SubscriptionTopic")


@bp.get("/Basic/<basic_id>")
def read_basic(basic_id: str):
    current_principal().require("Basic", "r")
    return _read(basic_id, basic_resource, "Basic")


def _read(topic_id: str, shape, rtype: str):
    resource = _shaped(shape).get(topic_id)
    if resource is None:
        raise NotFound(f"{rtype}/{topic_id} is not known",
                       [Issue("id", f"GET /fhir/{rtype} lists the topics", "not-found")])
    return catalog.read_answer(resource)
