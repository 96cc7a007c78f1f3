"""Pull rejects as data an operator can act on: one row per resource and reason however often
a pull meets it, grouped by reason, retried after a mapping change."""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa
from alembic import command

from fhir_bridge.store import tables as t
from fhir_bridge.store.database import alembic_config
from fhir_bridge.sync import rejects
from fhir_bridge.sync.service import sync_status

CONDITION = {"resourceType": "Condition", "id": "ehr-cond-1",
             "subject": {"reference": "Patient/ehr-pat-1"}}


def rows(bridge):
    with bridge.engine.connect() as conn:
        return conn.execute(sa.select(t.sync_rejects).order_by(t.sync_rejects.c.id)).all()


def test_the_same_reject_met_again_is_counted_not_stored_twice(app):
    bridge = app.extensions["fhir_bridge"]
    for _ in range(3):
        rejects.record(bridge.engine, "ehr", CONDITION, "no code")
    rejects.record(bridge.engine, "ehr", CONDITION, "subject: unknown patient")
    stored = rows(bridge)
    assert [(r.reason, r.times_seen) for r in stored] == [("no code", 3),
                                                          ("subject: unknown patient", 1)]
    assert sync_status(bridge)["pull_rejects"] == 1  # one resource held back


def test_rejects_are_grouped_by_reason_most_resources_first(app):
    bridge = app.extensions["fhir_bridge"]
    for n in range(3):
        rejects.record(bridge.engine, "ehr", {**CONDITION, "id": f"c{n}"}, "no code")
    rejects.record(bridge.engine, "ehr", {**CONDITION, "id": "c9"}, "bad onset")
    groups = rejects.grouped(bridge.engine)
    assert [(g.reason, g.resources) for g in groups] == [
        ("no code", ["Condition/c0", "Condition/c1", "Condition/c2"]),
        ("bad onset", ["Condition/c9"])]
    assert [g.reason for g in rejects.grouped(bridge.engine, reason_contains="onset")] == \
        ["bad onset"]
    assert rejects.grouped(bridge.engine, target="other") == []


def test_a_long_reason_is_one_key_too(app):
    bridge = app.extensions["fhir_bridge"]
    reason = "x" * 5000  # longer than any index entry: the key is its hash
    rejects.record(bridge.engine, "ehr", CONDITION, reason)
    rejects.record(bridge.engine, "ehr", CONDITION, reason)
    assert [r.times_seen for r in rows(bridge)] == [2]


def test_the_migration_folds_the_duplicates_earlier_pulls_stored(database_url):
    engine = sa.create_engine(database_url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0012")
        for n, reason in enumerate(["no code", "no code", "no code", "other"]):
            conn.execute(sa.text(
                "INSERT INTO sync_rejects (target, resource_type, remote_id, reason, content, "
                "created_at) VALUES ('ehr', 'Condition', 'c1', :reason, '{}', :at)"),
                {"reason": reason, "at": f"2025-01-0{n + 1}T00:00:00+00:00"})
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        folded = conn.execute(sa.select(t.sync_rejects.c.reason, t.sync_rejects.c.times_seen)
                              .order_by(t.sync_rejects.c.reason)).all()
    engine.dispose()
    assert [tuple(r) for r in folded] == [("no code", 3), ("other", 1)]


@pytest.mark.hapi
def test_retry_takes_in_what_maps_now_and_forgets_what_is_gone(app, hapi_url):
    """Two rejects stored by an earlier pull: one resource maps today (the mapping changed),
    the other was deleted on the server."""
    bridge = app.extensions["fhir_bridge"]
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:ehr:mrn",
                                                          "value": "SYN-RETRY-1"}],
               "name": [{"family": "Retry-Synth", "given": ["Sam"]}], "gender": "female",
               "birthDate": "1990-01-01"}
    created = requests.post(f"{hapi_url}/Patient", json=patient, timeout=30).json()
    gone = requests.post(f"{hapi_url}/Patient", json=patient, timeout=30).json()
    requests.delete(f"{hapi_url}/Patient/{gone['id']}", timeout=30)
    rejects.record(bridge.engine, "test-hapi", created, "an old mapping refused it")
    rejects.record(bridge.engine, "test-hapi", gone, "an old mapping refused it")
    bridge.config["sync"] = dict(bridge.config["sync"], target="test-hapi",
                                 targets={"test-hapi": {"base_url": hapi_url}})
    report = rejects.retry(bridge, "test-hapi")
    assert (report.tried, report.taken, report.gone, report.still_rejected) == (2, 1, 1, 0), \
        report.reasons
    assert rows(bridge) == []
