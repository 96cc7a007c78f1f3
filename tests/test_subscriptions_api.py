"""The Subscription resource at /fhir/Subscription: create, read, update, delete, list;
bad subscriptions are refused naming each bad element and store nothing; scopes and the
patient context of tokens limit who subscribes to what."""

from __future__ import annotations

import copy

import pytest

from .conftest import snapshot, token_for
from . import subscription_support as support
from .subscription_support import (BACKPORT, deliverer, load, subscribe, topic_subscription)

# the subscription tests' fixtures (app overrides conftest's: notifications to 127.0.0.1)
app = support.app
clock = support.clock
receiver = support.receiver

ENDPOINT = "http://127.0.0.1:9/hook"  # allowed (SETTINGS); nothing listens on port 9


def bearer(app, *scopes, **claims) -> dict:
    return {"Authorization": "Bearer " + token_for(app, *scopes, **claims)}


def test_a_subscription_is_created_read_updated_listed_and_deleted(client):
    body = topic_subscription(ENDPOINT, headers=("Authorization: Bearer k",))
    created = client.post("/fhir/Subscription", json=body)
    assert created.status_code == 201, created.json
    sub = created.json
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"].endswith(f"/Subscription/{sub['id']}/_history/1")
    assert (sub["status"], sub["criteria"], sub["meta"]["versionId"]) == \
        ("requested", body["criteria"], "1")
    assert sub["_criteria"] == body["_criteria"]
    assert sub["channel"] == {k: v for k, v in body["channel"].items() if k != "header"}
    read = client.get(f"/fhir/Subscription/{sub['id']}")
    assert read.status_code == 200 and read.json == sub
    changed = copy.deepcopy(sub)
    changed["reason"] = "Follow-up after discharge"
    updated = client.put(f"/fhir/Subscription/{sub['id']}", json=changed,
                         headers={"If-Match": 'W/"1"'})
    assert updated.status_code == 200, updated.json
    assert (updated.json["reason"], updated.json["meta"]["versionId"]) == \
        ("Follow-up after discharge", "2")
    stale = client.put(f"/fhir/Subscription/{sub['id']}", json=changed,
                       headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412  # FHIR's answer to a stale If-Match
    assert stale.json["issue"][0]["expression"] == ["If-Match"]
    listed = client.get("/fhir/Subscription").json
    assert listed["type"] == "searchset" and [e["resource"]["id"] for e in listed["entry"]] == \
        [sub["id"]]
    assert client.delete(f"/fhir/Subscription/{sub['id']}").status_code == 204
    assert client.get(f"/fhir/Subscription/{sub['id']}").status_code == 404


def test_a_new_endpoint_needs_a_new_handshake(app, client, receiver, clock):
    sub = subscribe(client, topic_subscription(receiver.url))
    deliverer(app, clock).run_once()
    assert client.get(f"/fhir/Subscription/{sub['id']}").json["status"] == "active"
    moved = client.get(f"/fhir/Subscription/{sub['id']}").json
    moved["channel"]["endpoint"] = receiver.url + "/v2"
    assert client.put(f"/fhir/Subscription/{sub['id']}", json=moved).json["status"] == \
        "requested"
    deliverer(app, clock).run_once()
    assert [r.path for r in receiver.notifications("handshake")] == ["/hook", "/hook/v2"]


def _with(path: str, value):
    body = topic_subscription(ENDPOINT)
    node = body
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return body


PAYLOAD = {"extension": [{"url": BACKPORT + "backport-payload-content", "valueCode": "all"}]}


@pytest.mark.parametrize("body, status, where", [
    (_with("channel.endpoint", "http://10.0.0.5:8080/hook"), 422,
     "Subscription.channel.endpoint"),
    (_with("channel.endpoint", "http://127.0.0.1:8080/admin"), 422,
     "Subscription.channel.endpoint"),
    (_with("channel.endpoint", "file:///etc/passwd"), 422, "Subscription.channel.endpoint"),
    (_with("channel.endpoint", "http://user:pw@127.0.0.1:80/hook"), 422,
     "Subscription.channel.endpoint"),
    (_with("channel._payload", PAYLOAD), 422,
     "Subscription.channel._payload.extension(backport-payload-content)"),
    (_with("criteria", "urn:fhir-bridge:topic:no-such-topic"), 422, "Subscription.criteria"),
    (_with("criteria", "MedicationRequest?nonsense=1"), 422, "Subscription.criteria"),
    (_with("criteria", "medication request?"), 422, "Subscription.criteria"),
    (_with("_criteria", {"extension": [{"url": BACKPORT + "backport-filter-criteria",
                                        "valueString": "MedicationRequest?_sort=status"}]}),
     422, "Subscription._criteria.extension[0].valueString"),
    (_with("_criteria", {"extension": [{"url": BACKPORT + "backport-filter-criteria",
                                        "valueString": "Observation?patient=pat-p01"}]}),
     422, "Subscription._criteria.extension[0].valueString"),
    (_with("channel.header", ["Host: internal.example"]), 422, "Subscription.channel.header[0]"),
    (_with("channel.header", ["Content-Type: text/plain"]), 422,
     "Subscription.channel.header[0]"),
    (_with("channel.type", "websocket"), 422, "Subscription.channel.type"),
    (_with("channel.payload", "application/fhir+xml"), 422, "Subscription.channel.payload"),
    (_with("reason", ""), 422, "Subscription.reason"),
    (_with("status", "sleeping"), 422, "Subscription.status"),
])
def test_a_bad_subscription_is_refused_and_nothing_is_stored(app, client, body, status, where):
    before = snapshot(app)
    response = client.post("/fhir/Subscription", json=body)
    assert response.status_code == status, response.json
    assert response.json["resourceType"] == "OperationOutcome"
    assert where in [e for issue in response.json["issue"] for e in issue["expression"]], \
        response.json
    after = snapshot(app)
    after.pop("audit_events", None), before.pop("audit_events", None)  # refusals are audited
    assert after == before


def test_every_bad_element_is_named_at_once(client):
    body = _with("channel.endpoint", "http://example.org/hook")
    body["criteria"] = "urn:fhir-bridge:topic:nothing"
    body["channel"]["header"] = ["Host: x"]
    response = client.post("/fhir/Subscription", json=body)
    assert response.status_code == 422
    named = {e for issue in response.json["issue"] for e in issue["expression"]}
    assert {"Subscription.channel.endpoint", "Subscription.criteria",
            "Subscription.channel.header[0]"} <= named


def test_the_scopes_decide_who_may_subscribe(app, client):
    body = topic_subscription(ENDPOINT)
    refused = client.post("/fhir/Subscription", json=body,
                          headers=bearer(app, "system/MedicationRequest.rs"))
    assert refused.status_code == 403
    blind = client.post("/fhir/Subscription", json=body,
                        headers=bearer(app, "system/Subscription.cruds"))
    assert blind.status_code == 403  # notifications would disclose MedicationRequests
    scopes = ("system/Subscription.cr", "system/MedicationRequest.r")
    allowed = client.post("/fhir/Subscription", json=body, headers=bearer(app, *scopes))
    assert allowed.status_code == 201
    no_delete = client.delete(f"/fhir/Subscription/{allowed.json['id']}",
                              headers=bearer(app, *scopes))
    assert no_delete.status_code == 403


def test_a_patient_token_subscribes_to_its_own_patient_only(app, client):
    load(client, "p01", "p02")
    mine = bearer(app, "patient/Subscription.cruds", "patient/MedicationRequest.rs",
                  patient="pat-p01")
    other = client.post("/fhir/Subscription", headers=mine, json=topic_subscription(
        ENDPOINT, filters=("MedicationRequest?patient=Patient/pat-p02",)))
    assert other.status_code == 403
    unfiltered = client.post("/fhir/Subscription", headers=mine,
                             json=topic_subscription(ENDPOINT, filters=()))
    assert unfiltered.status_code == 403
    own = client.post("/fhir/Subscription", headers=mine, json=topic_subscription(ENDPOINT))
    assert own.status_code == 201, own.json
    theirs = subscribe(client, topic_subscription(
        ENDPOINT, filters=("MedicationRequest?patient=Patient/pat-p02",)))
    assert client.get(f"/fhir/Subscription/{theirs['id']}", headers=mine).status_code == 404
    assert client.get(f"/fhir/Subscription/{theirs['id']}/$events",
                      headers=mine).status_code == 404
    listed = client.get("/fhir/Subscription", headers=mine).json
    assert [e["resource"]["id"] for e in listed["entry"]] == [own.json["id"]]


def test_the_capability_statement_announces_subscriptions(client):
    statement = client.get("/fhir/metadata").json
    [entry] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    assert {op["name"] for op in entry["operation"]} == {"status", "events"}
