"""A Subscription belongs to the client that created it (token issuer, subject and client id):
no other client, and a patient-context token least of all, can see, list, change or delete
it; and ``channel.header``, which holds the receiver's secrets, is write-only: it is sent to
the endpoint and appears in no answer."""

from __future__ import annotations

import copy

import sqlalchemy as sa

from fhir_bridge.store import tables as t

from . import subscription_support as support
from .conftest import token_for
from .subscription_support import deliverer, dose_changes, load, topic_subscription

# the subscription tests' fixtures (app overrides conftest's: notifications to 127.0.0.1)
app = support.app
clock = support.clock
receiver = support.receiver

SECRET = "Bearer therapist-secret-4711"
CLINIC = ("system/Subscription.cruds", "system/MedicationRequest.rs")


def bearer(app, *scopes, **claims) -> dict:
    return {"Authorization": "Bearer " + token_for(app, *scopes, **claims)}


def clinic(app, subject="okafor-practice", **claims) -> dict:
    return bearer(app, *CLINIC, subject=subject, **claims)


def patient_app(app, patient="pat-p01") -> dict:
    return bearer(app, "patient/Subscription.cruds", "patient/MedicationRequest.rs",
                  patient=patient, subject="patient-portal")


def create(client, headers, endpoint, **kwargs) -> dict:
    body = topic_subscription(endpoint, headers=(f"Authorization: {SECRET}",), **kwargs)
    response = client.post("/fhir/Subscription", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def attempts(client, sub: dict, headers: dict) -> dict[str, int]:
    """What another client gets for every interaction on ``sub``."""
    url = f"/fhir/Subscription/{sub['id']}"
    changed = copy.deepcopy(sub)
    changed["channel"]["endpoint"] = sub["channel"]["endpoint"] + "/stolen"
    listed = client.get("/fhir/Subscription", headers=headers).json
    return {
        "read": client.get(url, headers=headers).status_code,
        "status": client.get(url + "/$status", headers=headers).status_code,
        "events": client.get(url + "/$events", headers=headers).status_code,
        "update": client.put(url, json=changed, headers=headers).status_code,
        "delete": client.delete(url, headers=headers).status_code,
        "listed": sum(e["resource"]["id"] == sub["id"] for e in listed.get("entry", [])),
    }


NOTHING = {"read": 404, "status": 404, "events": 404, "update": 404, "delete": 404,
           "listed": 0}


def test_a_patient_token_cannot_see_change_or_delete_a_clinicians_subscription(app, client,
                                                                                receiver):
    """Even a subscription about the token's own patient: it is the clinician's."""
    load(client, "p01")
    sub = create(client, clinic(app), receiver.url)
    assert attempts(client, sub, patient_app(app)) == NOTHING
    mine = client.get(f"/fhir/Subscription/{sub['id']}", headers=clinic(app))
    assert mine.status_code == 200
    assert (mine.json["meta"]["versionId"], mine.json["channel"]["endpoint"]) == \
        ("1", receiver.url)


def test_another_client_cannot_either(app, client, receiver):
    load(client, "p01")
    sub = create(client, clinic(app), receiver.url)
    assert attempts(client, sub, clinic(app, subject="another-practice")) == NOTHING
    # the same subject through another client (client_id claim) is another client
    assert attempts(client, sub, clinic(app, client_id="another-app")) == NOTHING
    assert client.get(f"/fhir/Subscription/{sub['id']}", headers=clinic(app)).status_code == \
        200


def test_a_patient_token_manages_its_own_subscriptions(app, client, receiver):
    load(client, "p01")
    create(client, clinic(app), receiver.url)
    own = create(client, patient_app(app), receiver.url)
    listed = client.get("/fhir/Subscription", headers=patient_app(app)).json
    assert [e["resource"]["id"] for e in listed["entry"]] == [own["id"]]
    changed = dict(own, reason="My own reminders")
    assert client.put(f"/fhir/Subscription/{own['id']}", json=changed,
                      headers=patient_app(app)).status_code == 200
    assert client.delete(f"/fhir/Subscription/{own['id']}",
                         headers=patient_app(app)).status_code == 204


def test_subscriptions_older_than_ownership_are_seen_by_system_tokens_only(app, client,
                                                                           receiver):
    load(client, "p01")
    sub = create(client, clinic(app), receiver.url)
    with app.extensions["fhir_bridge"].engine.begin() as conn:
        conn.execute(t.subscriptions.update().values(owner_client=None))
    assert attempts(client, sub, patient_app(app)) == NOTHING
    other_system = clinic(app, subject="another-practice")
    assert client.get(f"/fhir/Subscription/{sub['id']}", headers=other_system).status_code == \
        200
    listed = client.get("/fhir/Subscription", headers=other_system).json
    assert [e["resource"]["id"] for e in listed["entry"]] == [sub["id"]]


def test_channel_header_appears_in_no_answer(app, client, receiver, clock):
    """Create, read, search, update, $status, $events and the notifications themselves: the
    header goes to the endpoint as an HTTP header and nowhere else."""
    load(client, "p01")
    headers = clinic(app)
    answers = []
    created = client.post("/fhir/Subscription", headers=headers, json=topic_subscription(
        receiver.url, headers=(f"Authorization: {SECRET}",), content="full-resource"))
    assert created.status_code == 201
    sub_id = created.json["id"]
    url = f"/fhir/Subscription/{sub_id}"
    answers.append(created)
    answers.append(client.get(url, headers=headers))
    answers.append(client.get("/fhir/Subscription", headers=headers))
    deliverer(app, clock).run_once()  # the handshake
    dose_changes(client, 1)
    deliverer(app, clock).run_once()  # the event
    answers.append(client.get(url + "/$status", headers=headers))
    answers.append(client.get(url + "/$events", headers=headers))
    answers.append(client.get(url + "/$events?content=full-resource", headers=headers))
    changed = dict(client.get(url, headers=headers).json, reason="Changed reason")
    answers.append(client.put(url, json=changed, headers=headers))
    assert [a.status_code for a in answers] == [201, 200, 200, 200, 200, 200, 200]
    for answer in answers:
        text = answer.get_data(as_text=True)
        assert "therapist-secret" not in text and '"header"' not in text, text[:300]
    notes = receiver.notifications(None)
    assert [n.body["entry"][0]["resource"]["resourceType"] for n in notes[:1]] == \
        ["Parameters"]
    assert len(notes) >= 2 and all(n.headers["Authorization"] == SECRET for n in notes)
    assert all("therapist-secret" not in str(n.body) for n in notes)


def test_an_update_without_headers_keeps_them_unless_the_endpoint_changes(app, client,
                                                                          receiver, clock):
    load(client, "p01")
    headers = clinic(app)
    sub = create(client, headers, receiver.url)
    url = f"/fhir/Subscription/{sub['id']}"
    deliverer(app, clock).run_once()
    kept = client.put(url, json=dict(sub, reason="Still following"), headers=headers)
    assert kept.status_code == 200 and kept.json["status"] == "active"  # no new handshake
    dose_changes(client, 1)
    deliverer(app, clock).run_once()
    assert [n.headers.get("Authorization") for n in receiver.notifications()] == [SECRET]
    moved = copy.deepcopy(kept.json)
    moved["channel"]["endpoint"] = receiver.url + "/v2"
    assert client.put(url, json=moved, headers=headers).status_code == 200
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        content = conn.execute(sa.select(t.subscriptions.c.content)).scalar_one()
    assert "therapist-secret" not in content  # the secret did not follow the new endpoint
