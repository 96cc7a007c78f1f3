"""What each topic notifies: one event per clinical change, filtered to the subscriber's
patient; criteria-based (plain R4) subscriptions get matching changes only."""

from __future__ import annotations

import pytest

from . import subscription_support as support
from .subscription_support import (deliverer, dose_change, load, subscribe, topic_subscription)

# the subscription tests' fixtures (app overrides conftest's: notifications to 127.0.0.1)
app = support.app
clock = support.clock
receiver = support.receiver

TOPIC = "urn:fhir-bridge:topic:"


@pytest.fixture
def loaded(client):
    load(client, "p01", "p02")
    return client


def events_of(client, sub_id: str) -> list[tuple[str, list[str]]]:
    """(focus, additional context) of every event so far, as Type/id."""
    bundle = client.get(f"/fhir/Subscription/{sub_id}/$events").json
    out = []
    for p in bundle["entry"][0]["resource"]["parameter"]:
        if p["name"] != "notification-event":
            continue
        refs = {}
        for part in p["part"]:
            if "valueReference" in part:
                refs.setdefault(part["name"], []).append(
                    part["valueReference"]["reference"].split("/fhir/")[1])
        out.append((refs["focus"][0], refs.get("additional-context", [])))
    return out


def watch(client, receiver, topic: str, filters: tuple[str, ...]) -> str:
    return subscribe(client, topic_subscription(receiver.url, topic=TOPIC + topic,
                                                filters=filters))["id"]


def test_a_dose_change_and_a_discontinuation_are_medication_changes(loaded, receiver):
    sub = watch(loaded, receiver, "medication-change",
                ("MedicationRequest?patient=Patient/pat-p01",))
    dose_change(loaded, "p01-rx2", "p01-rx3")
    stop = loaded.post("/api/v1/prescriptions/p01-rx3/discontinuation", json={
        "date": "2025-05-10", "reason": "Remission", "by_id": "dr-lindqvist"})
    assert stop.status_code == 200
    assert events_of(loaded, sub) == [
        ("MedicationRequest/rx-p01-rx3", ["MedicationRequest/rx-p01-rx2"]),
        ("MedicationRequest/rx-p01-rx3", [])]


def test_an_adherence_report_is_not_a_medication_change(loaded, receiver):
    sub = watch(loaded, receiver, "medication-change",
                ("MedicationRequest?patient=Patient/pat-p01",))
    before = loaded.get("/api/v1/prescriptions/p01-rx2/fhir").json["entry"][0]["resource"]
    response = loaded.post("/api/v1/adherence-reports", json={
        "id": "p01-adh9", "patient_id": "p01", "prescription_id": "p01-rx2",
        "period_start": "2025-04-01", "period_end": "2025-04-27", "source": "self-report",
        "doses_prescribed": 27, "doses_taken": 20, "recorded_at": "2025-04-28T09:30:00-04:00",
        "reported_by": {"type": "patient", "id": "p01"}})
    assert response.status_code == 201, response.json
    after = loaded.get("/api/v1/prescriptions/p01-rx2/fhir").json["entry"][0]["resource"]
    assert after.get("extension") != before.get("extension")  # the request did change
    assert events_of(loaded, sub) == []


def test_another_patients_changes_are_never_recorded_or_sent(app, loaded, receiver, clock):
    sub = watch(loaded, receiver, "medication-change",
                ("MedicationRequest?patient=Patient/pat-p01",))
    deliverer(app, clock).run_once()
    dose_change(loaded, "p02-rx2", "p02-rx3", 900)
    deliverer(app, clock).run_once()
    assert events_of(loaded, sub) == []
    assert receiver.notifications() == []
    assert all("p02" not in str(r.body) for r in receiver.requests)


def test_a_side_effect_report_is_one_event(loaded, receiver):
    sub = watch(loaded, receiver, "side-effect-reported", ("Observation?patient=pat-p01",))
    response = loaded.post("/api/v1/side-effects", json={
        "id": "p01-se9", "patient_id": "p01", "effect": "nausea", "severity": "moderate",
        "onset_date": "2025-04-02", "recorded_at": "2025-04-03T10:00:00-04:00",
        "suspected_prescription_id": "p01-rx2", "action_taken": "monitor",
        "reported_by": {"type": "patient", "id": "p01"}})
    assert response.status_code == 201, response.json
    dose_change(loaded, "p01-rx2", "p01-rx3")  # not a side effect
    assert events_of(loaded, sub) == [("Observation/se-p01-se9", [])]


def test_an_assessment_is_one_event_for_its_panel_with_its_items_as_context(loaded, receiver):
    sub = watch(loaded, receiver, "assessment-recorded", ("Observation?patient=pat-p01",))
    response = loaded.post("/api/v1/assessments", json={
        "id": "p01-gad7-w8", "patient_id": "p01", "instrument": "gad-7",
        "effective": "2025-04-28T09:20:00-04:00", "administered_by_id": "dr-lindqvist",
        "items": [{"number": n, "value": 1} for n in range(1, 8)]})
    assert response.status_code == 201, response.json
    [(focus, context)] = events_of(loaded, sub)
    assert focus == "Observation/asmt-p01-gad7-w8"
    items = [f"Observation/asmt-p01-gad7-w8.item-{n}" for n in range(1, 8)]
    assert sorted(context) == sorted(items + ["Observation/asmt-p01-gad7-w8.total"])


def test_a_care_plan_update_is_an_event(loaded, receiver):
    sub = watch(loaded, receiver, "care-plan-update", ("CarePlan?patient=pat-p01",))
    plan = loaded.get("/api/v1/care-plans/p01-plan").json
    plan["description"] = "Sertraline titration, weekly CBT, sleep hygiene and walking."
    response = loaded.put("/api/v1/care-plans/p01-plan", json=plan)
    assert response.status_code == 200, response.json
    assert events_of(loaded, sub) == [("CarePlan/cp-p01-plan", [])]


def test_a_criteria_based_subscription_gets_matching_changes_only(app, loaded, receiver, clock):
    sub = subscribe(loaded, {
        "resourceType": "Subscription", "status": "requested", "reason": "Active medications",
        "criteria": "MedicationRequest?patient=pat-p01&status=active",
        "channel": {"type": "rest-hook", "endpoint": receiver.url,
                    "payload": "application/fhir+json", "header": ["X-Key: k1"]}})
    deliverer(app, clock).run_once()
    [ping] = receiver.requests
    assert (ping.method, ping.path, ping.body) == ("POST", "/hook", None)  # R4 ping
    dose_change(loaded, "p01-rx2", "p01-rx3")  # rx3 active (matches), rx2 stopped (does not)
    dose_change(loaded, "p02-rx2", "p02-rx3", 900)  # another patient
    deliverer(app, clock).run_once()
    puts = receiver.requests[1:]
    assert [(r.method, r.path) for r in puts] == [("PUT", "/hook/MedicationRequest/rx-p01-rx3")]
    assert puts[0].body["status"] == "active" and puts[0].headers["X-Key"] == "k1"
    assert loaded.get(f"/fhir/Subscription/{sub['id']}").json["status"] == "active"


def test_a_criteria_based_subscription_without_payload_gets_empty_posts(app, loaded, receiver,
                                                                          clock):
    subscribe(loaded, {
        "resourceType": "Subscription", "status": "requested", "reason": "Ping me",
        "criteria": "MedicationRequest?patient=pat-p01",
        "channel": {"type": "rest-hook", "endpoint": receiver.url}})
    deliverer(app, clock).run_once()
    dose_change(loaded, "p01-rx2", "p01-rx3")  # two matching resources: R4 sends two pings
    deliverer(app, clock).run_once()
    assert [(r.method, r.body) for r in receiver.requests] == [("POST", None)] * 3
