"""Several delivery workers at once (on PostgreSQL with SKIP LOCKED, on SQLite serialized)
never send one event twice and never out of order; the event log holds every change even
when no worker runs."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from fhir_bridge.store import tables as t

from . import subscription_support as support
from .subscription_support import (deliverer, dose_changes, load, subscribe, topic_subscription)

# the subscription tests' fixtures (app overrides conftest's: notifications to 127.0.0.1)
app = support.app
clock = support.clock
receiver = support.receiver


def test_two_workers_never_send_one_event_twice(app, client, receiver, clock):
    load(client, "p01")
    subs = [subscribe(client, topic_subscription(receiver.url, headers=(f"X-Sub: {n}",)))["id"]
            for n in range(4)]
    dose_changes(client, 5)
    workers = [deliverer(app, clock, worker=f"worker-{n}", seed=n) for n in range(2)]
    for worker in workers:
        worker.batch = 1  # one subscription per pass: the workers share the work
    reports = []
    start = threading.Barrier(len(workers))

    def run(worker):
        start.wait()
        for _ in range(5):
            reports.append(worker.run_once())

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r.failures for r in reports) == 0
    for n in range(4):
        mine = [r for r in receiver.notifications(None) if r.headers.get("X-Sub") == str(n)]
        assert [r.type for r in mine] == ["handshake"] + ["event-notification"] * 5
        assert [r.event_numbers for r in mine[1:]] == [[1], [2], [3], [4], [5]]
    assert sum(r.handshakes for r in reports) == 4
    assert all(r.claimed <= 1 for r in reports)
    assert sum(r.events for r in reports) == 20
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        claimed = conn.execute(sa.select(sa.func.count()).select_from(t.subscription_delivery)
                               .where(t.subscription_delivery.c.claimed_by.is_not(None))).scalar()
    assert claimed == 0  # every claim released
    assert len(subs) == 4


def test_events_are_logged_in_the_saving_transaction_without_any_worker(app, client, receiver):
    load(client, "p01")
    sub = subscribe(client, topic_subscription(receiver.url))
    dose_changes(client, 2)
    # a failed save (the prescription does not exist) logs nothing
    failed = client.post("/api/v1/prescriptions/p01-rx99/dose-changes", json={
        "id": "p01-rx100", "dose": {"value": 5, "unit": "mg"}, "effective_date": "2025-04-28",
        "reason": "x", "changed_by_id": "dr-lindqvist",
        "authored_on": "2025-04-28T09:00:00-04:00"})
    assert failed.status_code == 404
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        numbers = conn.execute(sa.select(t.subscription_events.c.event_number).where(
            t.subscription_events.c.subscription_id == sub["id"])
            .order_by(t.subscription_events.c.event_number)).scalars().all()
        count = conn.execute(sa.select(t.subscriptions.c.event_count).where(
            t.subscriptions.c.id == sub["id"])).scalar()
    assert numbers == [1, 2] and count == 2
    assert receiver.requests == []


def test_the_command_line_runs_one_delivery_pass(app, client, receiver, monkeypatch, capsys,
                                                 database_url):
    from fhir_bridge import cli

    load(client, "p01")
    subscribe(client, topic_subscription(receiver.url))
    dose_changes(client, 1)
    monkeypatch.setenv("FHIR_BRIDGE_DATABASE_URL", database_url)
    monkeypatch.setenv("FHIR_BRIDGE_SUBSCRIPTIONS__ALLOWED_ENDPOINTS", '["http://127.0.0.1:*/"]')
    assert cli.main(["subscriptions", "deliver", "--once", "--worker", "cli-test"]) == 0
    assert '"events": 1' in capsys.readouterr().out
    assert [r.type for r in receiver.notifications(None)] == ["handshake", "event-notification"]
