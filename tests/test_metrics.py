"""/metrics in the Prometheus text format, read back with the official client's parser;
/readyz says whether the service can do its work."""

from __future__ import annotations

import socket
import threading

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from fhir_bridge.store import counters
from fhir_bridge.store import tables as t
from fhir_bridge.sync.client import FhirClient
from fhir_bridge.sync.pull import Puller
from fhir_bridge.sync.push import Pusher
from fhir_bridge.sync.targets import target_from_config

from .conftest import FIXTURES, read_json

#: Every metric the operator documentation names (docs/operations.md).
NAMED = ("fhir_bridge_http_requests", "fhir_bridge_http_request_duration_seconds",
         "fhir_bridge_outbox_rows", "fhir_bridge_outbox_oldest_age_seconds",
         "fhir_bridge_dead_letters", "fhir_bridge_sync_conflicts",
         "fhir_bridge_sync_pull_rejects", "fhir_bridge_subscriptions",
         "fhir_bridge_subscription_backlog_events",
         "fhir_bridge_subscription_consecutive_failures", "fhir_bridge_sync_push_rows",
         "fhir_bridge_sync_pull_resources", "fhir_bridge_subscription_deliveries",
         "fhir_bridge_last_success_timestamp_seconds")


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in
            text_string_to_metric_families(response.get_data(as_text=True))}


def value(families: dict, name: str, **labels) -> float:
    """The sample of ``name`` whose labels include ``labels`` (0 when there is none)."""
    family = families[name]
    found = [s.value for s in family.samples
             if s.name in (name, f"{name}_total") and labels.items() <= s.labels.items()]
    return sum(found)


def store_fixture(client) -> None:
    doc = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")
    assert client.post("/api/v1/documents", json=doc).status_code == 200


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_target(bridge):
    base = f"http://127.0.0.1:{closed_port()}/fhir"
    config = dict(bridge.config)
    config["sync"] = dict(config["sync"], targets={"gone": {"base_url": base}}, target="gone")
    return target_from_config(config), FhirClient(base, backoff_base=0.01, backoff_max=0.02,
                                                  max_retries=0)


def test_every_named_metric_is_exposed_and_parses(client):
    families = scrape(client)
    assert set(NAMED) <= set(families), sorted(set(NAMED) - set(families))
    assert families["fhir_bridge_http_requests"].type == "counter"
    assert families["fhir_bridge_http_request_duration_seconds"].type == "histogram"
    assert families["fhir_bridge_sync_push_rows"].type == "counter"


def test_requests_are_counted_by_route_and_status_without_identifiers(client):
    client.get("/fhir/Patient/not-there-123")
    client.get("/fhir/Patient", query_string={"name": "Synthetic-Zed"})
    families = scrape(client)
    assert value(families, "fhir_bridge_http_requests", route="/fhir/<resource_type>/"
                 "<resource_id>", status="404", method="GET") == 1
    assert value(families, "fhir_bridge_http_requests", route="/fhir/<resource_type>",
                 status="200") == 1
    text = client.get("/metrics").get_data(as_text=True)
    assert "not-there-123" not in text and "Synthetic-Zed" not in text
    counts = [s for s in families["fhir_bridge_http_request_duration_seconds"].samples
              if s.name.endswith("_count") and s.labels["route"] == "/fhir/<resource_type>"]
    assert counts and counts[0].value == 1


def test_outbox_depth_by_state_follows_the_store(app, client):
    families = scrape(client)
    assert value(families, "fhir_bridge_outbox_rows", state="pending") == 0
    bridge = app.extensions["fhir_bridge"]
    store_fixture(client)
    with bridge.engine.connect() as conn:
        pending = conn.execute(sa.select(sa.func.count()).select_from(t.outbox)
                               .where(t.outbox.c.status == "pending")).scalar()
    families = scrape(client)
    assert pending > 0
    assert value(families, "fhir_bridge_outbox_rows", state="pending") == pending
    assert value(families, "fhir_bridge_outbox_oldest_age_seconds", state="pending") >= 0


def test_a_push_to_an_unreachable_server_moves_the_push_counters(app, client):
    bridge = app.extensions["fhir_bridge"]
    store_fixture(client)
    target, remote = unreachable_target(bridge)
    before = scrape(client)
    try:
        report = Pusher(bridge.engine, remote, target, worker="metrics-test").push_all()
    finally:
        remote.close()
    assert report.unavailable and report.retried > 0
    after = scrape(client)
    assert value(after, "fhir_bridge_sync_push_rows", target="gone", outcome="retried") \
        == value(before, "fhir_bridge_sync_push_rows", target="gone",
                 outcome="retried") + report.retried
    assert value(after, "fhir_bridge_sync_push_rows", target="gone", outcome="unavailable") == 1
    # no success yet: no last-success time for this target
    assert value(after, "fhir_bridge_last_success_timestamp_seconds", target="gone") == 0


def test_a_failed_pull_is_counted(app, client):
    bridge = app.extensions["fhir_bridge"]
    target, remote = unreachable_target(bridge)
    puller = Puller(bridge.engine, bridge.mapper, bridge.store, remote, target)
    with bridge.engine.begin() as conn:  # one managed patient, so the pull asks the server
        conn.execute(t.remote_resources.insert().values(
            target="gone", resource_type="Patient", local_id="p-1", remote_id="r-1",
            synced_at=sa.func.now()))
    try:
        with pytest.raises(Exception):
            puller.pull()
    finally:
        remote.close()
    assert value(scrape(client), "fhir_bridge_sync_pull_resources", target="gone",
                 outcome="failed") == 1


@pytest.mark.hapi
def test_a_push_to_hapi_moves_sent_and_last_success(app, client, hapi_url):
    bridge = app.extensions["fhir_bridge"]
    store_fixture(client)
    config = dict(bridge.config)
    config["sync"] = dict(config["sync"], targets={"test-hapi": {"base_url": hapi_url}},
                          target="test-hapi")
    remote = FhirClient(hapi_url)
    try:
        report = Pusher(bridge.engine, remote, target_from_config(config), "m").push_all()
    finally:
        remote.close()
    families = scrape(client)
    assert report.sent > 0
    assert value(families, "fhir_bridge_sync_push_rows", target="test-hapi",
                 outcome="sent") == report.sent
    assert value(families, "fhir_bridge_last_success_timestamp_seconds", target="test-hapi",
                 operation="push") > 0


def test_workers_adding_at_once_lose_no_count(app):
    engine = app.extensions["fhir_bridge"].engine
    start = threading.Barrier(4)

    def work():
        start.wait()
        for _ in range(10):
            counters.add(engine, "race", {"push_sent": 3, "push_ok": 1})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as conn:
        totals = {c.name: c.value for c in counters.read_all(conn) if c.scope == "race"}
    assert totals == {"push_sent": 120, "push_ok": 40}


def test_ready_when_the_schema_is_current(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["migrations"]["current"] == body["checks"]["migrations"]["head"]


def test_not_ready_while_migrations_are_behind(app, client):
    engine = app.extensions["fhir_bridge"].engine
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["migrations"] == {"ok": False, "current": "0001",
                                    "head": checks["migrations"]["head"]}


def test_metrics_can_be_turned_off(tmp_path):
    from fhir_bridge.app import create_app

    off = create_app({"database_url": f"sqlite:///{tmp_path / 'off.db'}",
                      "metrics": {"enabled": False}})
    assert off.test_client().get("/metrics").status_code == 404
