"""Subscriptions a client can discover (R5 Backport IG on R4): the topics as SubscriptionTopic
resources, their canonicals in the CapabilityStatement, ``Subscription?status=&url=`` and
type-level ``$status``."""

from __future__ import annotations

import pytest

from fhir_bridge.subscriptions.topics import load_topics

from . import subscription_support as support
from .conftest import token_for
from .subscription_support import BACKPORT, MEDICATION_CHANGE, topic_subscription

app = support.app

ONE, TWO = "http://127.0.0.1:9/hook", "http://127.0.0.1:10/hook"


def test_every_topic_is_served_as_a_subscription_topic(client):
    found = client.get("/fhir/SubscriptionTopic")
    assert found.status_code == 200
    topics = {e["resource"]["url"]: e["resource"] for e in found.json["entry"]}
    assert set(topics) == set(load_topics())
    change = topics[MEDICATION_CHANGE]
    assert change["status"] == "active"
    trigger = change["resourceTrigger"][0]
    assert trigger["resource"] == "http://hl7.org/fhir/StructureDefinition/MedicationRequest"
    assert set(trigger["supportedInteraction"]) == {"create", "update", "delete"}
    assert {f["filterParameter"] for f in change["canFilterBy"]} == \
        set(load_topics()[MEDICATION_CHANGE].filters)
    read = client.get(f"/fhir/SubscriptionTopic/{change['id']}")
    assert read.status_code == 200 and read.json == change
    by_url = client.get("/fhir/SubscriptionTopic", query_string={"url": MEDICATION_CHANGE})
    assert [e["resource"]["id"] for e in by_url.json["entry"]] == [change["id"]]
    by_type = client.get("/fhir/SubscriptionTopic?resource=Observation").json
    assert by_type["total"] >= 1 and all(
        e["resource"]["resourceTrigger"][0]["resource"].endswith("/Observation")
        for e in by_type["entry"])
    assert client.get("/fhir/SubscriptionTopic/nope").status_code == 404
    assert client.get("/fhir/SubscriptionTopic?code=x").status_code == 400


def test_the_capability_statement_names_every_topic_canonical(client):
    resources = client.get("/fhir/metadata").json["rest"][0]["resource"]
    [entry] = [r for r in resources if r["type"] == "Subscription"]
    canonicals = {e["valueCanonical"] for e in entry["extension"]
                  if e["url"] == BACKPORT + "capabilitystatement-subscriptiontopic-canonical"}
    assert canonicals == set(load_topics())
    assert {p["name"] for p in entry["searchParam"]} >= {"status", "url"}
    assert any(r["type"] == "SubscriptionTopic" for r in resources)


def _subscribe(client, endpoint) -> str:
    created = client.post("/fhir/Subscription", json=topic_subscription(endpoint))
    assert created.status_code == 201, created.json
    return created.json["id"]


def test_subscriptions_are_searched_by_status_and_url(client):
    first, second = _subscribe(client, ONE), _subscribe(client, TWO)

    def ids(query):
        answer = client.get(f"/fhir/Subscription?{query}")
        assert answer.status_code == 200, answer.json
        return {e["resource"]["id"] for e in answer.json.get("entry", [])}

    assert ids(f"url={ONE}") == {first}
    assert ids("status=requested") == {first, second}
    assert ids("status=active") == set()
    assert ids(f"status=requested,active&url={TWO}") == {second}
    bad = client.get("/fhir/Subscription?status=running")
    assert bad.status_code == 400 and bad.json["issue"][0]["expression"] == ["status"]


def test_type_level_status_answers_for_the_callers_own_subscriptions(app, client):
    first, second = _subscribe(client, ONE), _subscribe(client, TWO)
    other = {"Authorization": "Bearer " + token_for(app, "system/*.cruds", subject="other")}
    _subscribe_as = client.post("/fhir/Subscription", json=topic_subscription(ONE),
                                headers=other)
    assert _subscribe_as.status_code == 201

    def subscriptions(answer) -> set[str]:
        assert answer.status_code == 200, answer.json
        out = set()
        for entry in answer.json.get("entry", []):
            for part in entry["resource"]["parameter"]:
                if part["name"] == "subscription":
                    out.add(part["valueReference"]["reference"].rsplit("/", 1)[-1])
        return out

    assert subscriptions(client.get("/fhir/Subscription/$status")) == {first, second}
    assert subscriptions(client.get(f"/fhir/Subscription/$status?id={second}")) == {second}
    assert subscriptions(client.get("/fhir/Subscription/$status?status=active")) == set()
    posted = client.post("/fhir/Subscription/$status", json={
        "resourceType": "Parameters", "parameter": [{"name": "id", "valueString": first}]})
    assert subscriptions(posted) == {first}
    assert client.get("/fhir/Subscription/$status?topic=x").status_code == 400
    assert client.get(f"/fhir/Subscription/{first}/$status").status_code == 200


@pytest.mark.parametrize("path", ["/fhir/SubscriptionTopic", "/fhir/Subscription/$status"])
def test_discovery_needs_a_token_with_the_scope(app, client, path):
    no_scope = {"Authorization": "Bearer " + token_for(app, "system/Observation.rs")}
    assert client.get(path, headers=no_scope).status_code == 403
    client.environ_base.pop("HTTP_AUTHORIZATION")
    assert client.get(path).status_code == 401


def _counting_validations(monkeypatch, module) -> list:
    seen: list = []
    real = module.validate_resource

    def counted(resource):
        seen.append(resource["resourceType"])
        return real(resource)

    monkeypatch.setattr(module, "validate_resource", counted)
    return seen


def test_topics_are_built_and_validated_once_not_per_request(client, monkeypatch):
    """Regression (review): every SubscriptionTopic and Basic search rebuilt and validated
    every topic. They are built once per loaded topics file; each answer is its own copy."""
    from fhir_bridge.subscriptions import topic_resources

    topic_resources._BUILT.clear()
    built = _counting_validations(monkeypatch, topic_resources)
    first = client.get("/fhir/SubscriptionTopic").json
    topic_id = first["entry"][0]["resource"]["id"]
    for _ in range(3):
        assert client.get("/fhir/SubscriptionTopic").json["total"] == len(load_topics())
        assert client.get(f"/fhir/SubscriptionTopic/{topic_id}").status_code == 200
    assert built.count("SubscriptionTopic") == len(load_topics())
    assert client.get(f"/fhir/Basic/{topic_id}").status_code == 200
    assert client.get("/fhir/Basic?code=SubscriptionTopic").json["total"] == len(load_topics())
    assert built.count("Basic") == len(load_topics())
    copy = topic_resources._shaped(topic_resources.topic_resource)[topic_id]
    copy["title"] = "changed by one caller"
    again = client.get(f"/fhir/SubscriptionTopic/{topic_id}").json
    assert again["title"] != "changed by one caller"


def test_a_subscription_search_validates_the_page_it_answers_not_every_subscription(
        client, monkeypatch):
    """Regression (review): a search validated each of the caller's Subscriptions (up to
    500) before paging; now only the ones on the page that goes out."""
    from fhir_bridge.subscriptions import api

    for k in range(5):
        _subscribe(client, f"http://127.0.0.1:{20 + k}/hook")
    validated = _counting_validations(monkeypatch, api)
    page = client.get("/fhir/Subscription?_count=2")
    assert page.status_code == 200 and page.json["total"] == 5
    assert len(page.json["entry"]) == 2
    assert validated == ["Subscription", "Subscription"]
