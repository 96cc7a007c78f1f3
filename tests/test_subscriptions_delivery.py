"""Subscriptions deliver every change to a real HTTP receiver on 127.0.0.1: handshake first,
then one notification per event in order, retried with backoff while the receiver is down,
nothing lost or doubled."""

from __future__ import annotations

import pytest

from . import subscription_support as support
from .subscription_support import (MEDICATION_CHANGE, audit_rows, delivery_row, deliverer,
                                   dose_changes, load, subscribe, topic_subscription)

# the subscription tests' fixtures (app overrides conftest's: notifications to 127.0.0.1)
app = support.app
clock = support.clock
receiver = support.receiver


@pytest.fixture
def p01(client):
    load(client, "p01")
    return client


def test_a_new_subscription_is_requested_until_its_handshake_succeeds(app, p01, receiver,
                                                                       clock):
    sub = subscribe(p01, topic_subscription(receiver.url))
    assert sub["status"] == "requested"
    assert receiver.requests == []  # nothing is sent from the request itself
    report = deliverer(app, clock).run_once()
    assert report.handshakes == 1
    [handshake] = receiver.notifications("handshake")
    assert handshake.method == "POST" and handshake.path == "/hook"
    assert handshake.headers["Content-Type"] == "application/fhir+json"
    assert handshake.body["type"] == "history"
    assert handshake.param("status") == "requested"
    assert handshake.param("topic") == MEDICATION_CHANGE
    assert handshake.param("events-since-subscription-start") == "0"
    assert handshake.param("subscription")["reference"].endswith(f"/Subscription/{sub['id']}")
    assert p01.get(f"/fhir/Subscription/{sub['id']}").json["status"] == "active"
    assert deliverer(app, clock).run_once().claimed == 0  # nothing more to do


def test_each_dose_change_is_one_notification_with_contiguous_numbers(app, p01, receiver,
                                                                     clock):
    sub = subscribe(p01, topic_subscription(receiver.url, headers=(
        "Authorization: Bearer therapist-system-key", "X-Practice: okafor")))
    deliverer(app, clock).run_once()
    new_ids = dose_changes(p01, 3)
    report = deliverer(app, clock).run_once()
    assert (report.notifications, report.events, report.failures) == (3, 3, 0)
    notes = receiver.notifications()
    assert [n.event_numbers for n in notes] == [[1], [2], [3]]
    assert [n.param("events-since-subscription-start") for n in notes] == ["3", "3", "3"]
    for note, new_id, step in zip(notes, new_ids, range(3)):
        [event] = note.events()
        prior = f"rx-p01-rx{2 + step}"
        assert [r["reference"].split("/fhir/")[1] for r in event["focus"]] == \
            [f"MedicationRequest/rx-{new_id}"]
        assert [r["reference"].split("/fhir/")[1] for r in event["additional-context"]] == \
            [f"MedicationRequest/{prior}"]
        # id-only: full URLs of focus and context, no resources
        entries = note.body["entry"][1:]
        assert [e["fullUrl"].split("/fhir/")[1] for e in entries] == \
            [f"MedicationRequest/rx-{new_id}", f"MedicationRequest/{prior}"]
        assert all("resource" not in e for e in entries)
        assert note.headers["Authorization"] == "Bearer therapist-system-key"
        assert note.headers["X-Practice"] == "okafor"
    assert p01.get(f"/fhir/Subscription/{sub['id']}").json["status"] == "active"
    assert deliverer(app, clock).run_once().notifications == 0  # nothing is sent twice


def test_a_full_resource_payload_carries_the_versions_the_events_name(app, p01, receiver,
                                                                      clock):
    subscribe(p01, topic_subscription(receiver.url, content="full-resource"))
    deliverer(app, clock).run_once()
    dose_changes(p01, 2)
    deliverer(app, clock).run_once()
    first, second = receiver.notifications()
    new, prior = (e["resource"] for e in first.body["entry"][1:])
    assert (new["id"], new["status"], new["priorPrescription"]) == \
        ("rx-p01-rx3", "active", {"reference": "MedicationRequest/rx-p01-rx2"})
    assert (prior["id"], prior["status"]) == ("rx-p01-rx2", "stopped")
    # the second change stopped rx3 later; the first notification still shows it as it was
    stopped_rx3 = second.body["entry"][2]["resource"]
    assert (stopped_rx3["id"], stopped_rx3["status"]) == ("rx-p01-rx3", "stopped")
    assert int(stopped_rx3["meta"]["versionId"]) == int(new["meta"]["versionId"]) + 1


def test_an_empty_payload_names_no_resources(app, p01, receiver, clock):
    subscribe(p01, topic_subscription(receiver.url, content="empty"))
    deliverer(app, clock).run_once()
    dose_changes(p01, 1)
    deliverer(app, clock).run_once()
    [note] = receiver.notifications()
    assert note.body["entry"][1:] == []
    assert note.events() == [{"event-number": ["1"], "timestamp": note.events()[0]["timestamp"]}]


def test_an_unreachable_receiver_gets_every_missed_notification_in_order(app, p01, receiver,
                                                                        clock):
    sub = subscribe(p01, topic_subscription(receiver.url))
    deliverer(app, clock).run_once()
    receiver.stop()  # the therapist's system goes down
    dose_changes(p01, 3)
    delays = []
    for _ in range(4):
        report = deliverer(app, clock).run_once()
        assert (report.failures, report.notifications) == (1, 0)
        row = delivery_row(app, sub["id"])
        assert row.delivered_through == 0 and row.last_error == "ConnectionError"
        wait = (row.next_attempt_at.replace(tzinfo=clock.now.tzinfo) - clock.now) \
            .total_seconds()
        delays.append(wait)
        assert deliverer(app, clock).run_once().claimed == 0  # not due before the backoff
        clock.advance(wait + 0.001)
    assert p01.get(f"/fhir/Subscription/{sub['id']}").json["status"] == "error"
    assert 1 <= delays[0] <= 2 and 2 <= delays[1] <= 4 and 4 <= delays[2] <= 8 \
        and 8 <= delays[3] <= 16, delays
    receiver.start()  # back, on the same port
    receiver.status = 503  # but answering errors
    deliverer(app, clock).run_once()
    assert delivery_row(app, sub["id"]).last_error == "HTTP 503"
    receiver.status = 200
    clock.advance(60)
    report = deliverer(app, clock).run_once()
    assert (report.notifications, report.failures) == (3, 0)
    delivered = [n.event_numbers for n in receiver.notifications()]
    assert delivered[-3:] == [[1], [2], [3]]
    assert delivered == [[1]] + [[1], [2], [3]]  # the 503 answer was the only repeat
    assert p01.get(f"/fhir/Subscription/{sub['id']}").json["status"] == "active"
    outcomes = [row.outcome for row in audit_rows(app)]
    assert outcomes.count("4") == 5 and outcomes.count("0") == 4  # handshake + 3 events
    failed = [row for row in audit_rows(app) if row.outcome == "4"]
    assert {row.patient_id for row in failed} == {"p01"}


def test_a_receiver_recovers_a_gap_through_status_and_events(app, p01, receiver, clock):
    sub = subscribe(p01, topic_subscription(receiver.url))
    deliverer(app, clock).run_once()
    dose_changes(p01, 3)
    status = p01.get(f"/fhir/Subscription/{sub['id']}/$status")
    assert status.status_code == 200
    [entry] = status.json["entry"]
    params = {p["name"]: p for p in entry["resource"]["parameter"]}
    assert params["events-since-subscription-start"]["valueString"] == "3"
    assert params["type"]["valueCode"] == "query-status"
    events = p01.get(f"/fhir/Subscription/{sub['id']}/$events"
                     "?eventsSinceNumber=2&eventsUntilNumber=3&content=full-resource")
    assert events.status_code == 200, events.json
    bundle = events.json
    assert bundle["type"] == "history"
    numbers = [part["valueString"] for p in bundle["entry"][0]["resource"]["parameter"]
               if p["name"] == "notification-event" for part in p["part"]
               if part["name"] == "event-number"]
    assert numbers == ["2", "3"]
    assert [e["resource"]["id"] for e in bundle["entry"][1:]] == \
        ["rx-p01-rx4", "rx-p01-rx3", "rx-p01-rx5", "rx-p01-rx4"]
    posted = p01.post(f"/fhir/Subscription/{sub['id']}/$events", json={
        "resourceType": "Parameters",
        "parameter": [{"name": "eventsSinceNumber", "valueString": "3"}]})
    assert posted.status_code == 200
    assert "resource" not in posted.json["entry"][1]  # the subscription's own id-only
    for nonsense in ("x", "²", "9" * 30):  # a superscript two is a digit to Python
        bad = p01.get(f"/fhir/Subscription/{sub['id']}/$events",
                      query_string={"eventsSinceNumber": nonsense})
        assert bad.status_code == 400
        assert bad.json["issue"][0]["expression"] == ["eventsSinceNumber"]


def test_heartbeats_are_sent_when_idle_for_the_heartbeat_period(app, p01, receiver, clock):
    subscribe(p01, topic_subscription(receiver.url, heartbeat=60))
    deliverer(app, clock).run_once()
    clock.advance(59)
    assert deliverer(app, clock).run_once().heartbeats == 0
    clock.advance(2)
    assert deliverer(app, clock).run_once().heartbeats == 1
    [beat] = receiver.notifications("heartbeat")
    assert beat.param("status") == "active" and beat.events() == []
    dose_changes(p01, 1)
    clock.advance(30)
    report = deliverer(app, clock).run_once()
    assert (report.notifications, report.heartbeats) == (1, 0)
    clock.advance(59)
    assert deliverer(app, clock).run_once().heartbeats == 0  # the notification reset it


def test_max_count_batches_several_events_in_one_notification(app, p01, receiver, clock):
    subscribe(p01, topic_subscription(receiver.url, max_count=2))
    deliverer(app, clock).run_once()
    dose_changes(p01, 3)
    deliverer(app, clock).run_once()
    assert [n.event_numbers for n in receiver.notifications()] == [[1, 2], [3]]
