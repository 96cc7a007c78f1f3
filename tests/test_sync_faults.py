"""Faults a real server cannot be made to produce on demand, injected with `responses`:
429 with Retry-After, 503, a reset connection, a garbage body, a refused bundle. Nothing is
lost: rows wait with backoff or are dead-lettered with the reason, and operators can retry."""

import datetime as dt
import threading

import pytest
import requests
import responses
import sqlalchemy as sa

from fhir_bridge.mapping.document import load_document
from fhir_bridge.store import outbox
from fhir_bridge.store import tables as t
from fhir_bridge.sync.client import FhirClient
from fhir_bridge.sync.push import Pusher
from fhir_bridge.sync.targets import Target

from .conftest import FIXTURES, read_json

BASE = "http://127.0.0.1:8999/fhir"
P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")


@pytest.fixture
def pusher(sqlite_app):
    bridge = sqlite_app.extensions["fhir_bridge"]
    bridge.store.save(load_document({"patients": P01["patients"]}))
    client = FhirClient(BASE, max_retries=1, backoff_base=0.01, backoff_max=0.05,
                        sleep=lambda s: None)
    yield Pusher(bridge.engine, client, Target("faulty", BASE, max_attempts=3,
                                               retry_base_seconds=0.01), worker="w")
    client.close()


OK_BODY = ('{"resourceType": "Bundle", "type": "transaction-response", "entry": '
           '[{"response": {"status": "201 Created", "location": "Patient/remote-1/_history/1"}}]}')


def rows(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(t.outbox)).all()


def make_due(engine):
    with engine.begin() as conn:
        conn.execute(t.outbox.update().values(next_attempt_at=None))


@responses.activate
def test_429_with_retry_after_is_honoured_and_the_row_waits(pusher):
    responses.add(responses.POST, BASE, status=429, headers={"Retry-After": "120"})
    report = pusher.push_all()
    assert report.unavailable and report.sent == 0
    [row] = rows(pusher.engine)
    assert row.status == "pending" and row.attempts == 1
    wait = row.next_attempt_at.replace(tzinfo=dt.timezone.utc) - \
        dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(seconds=100) < wait <= dt.timedelta(seconds=120)


@pytest.mark.parametrize("fault", [
    dict(status=503),
    dict(body=requests.exceptions.ConnectionError("connection reset by peer")),
    dict(status=200, body="<html>proxy error</html>", content_type="text/html"),
    dict(status=200, body='{"resourceType": "Bundle", "entry": [',
         content_type="application/fhir+json"),
], ids=["503", "reset", "html", "truncated"])
@responses.activate
def test_transient_faults_are_retried_then_the_row_goes_through(pusher, fault):
    responses.add(responses.POST, BASE, **fault)
    first = pusher.push_all()
    assert first.sent == 0 and first.retried == 1
    assert rows(pusher.engine)[0].status == "pending"
    responses.replace(responses.POST, BASE, body=OK_BODY, status=200,
                      content_type="application/fhir+json")
    make_due(pusher.engine)
    second = pusher.push_all()
    assert second.sent == 1
    assert [r.status for r in rows(pusher.engine)] == ["done"]
    with pusher.engine.connect() as conn:
        assert conn.execute(sa.select(t.remote_resources.c.remote_id)).scalar() == "remote-1"


@responses.activate
def test_a_row_that_fails_during_a_pass_waits_for_the_next_pass_even_with_no_backoff(
        pusher, monkeypatch):
    # CI saw the reset case above send its row twice in one pass: the jittered backoff
    # (uniform from 0) ran out before the next batch was claimed. Here it is always 0, and
    # each claim after a pass's first waits until the bundle in flight has been answered.
    monkeypatch.setattr(outbox.random, "uniform", lambda low, high: 0.0)
    answered = threading.Event()
    claim, release = outbox.claim, outbox.release

    def claim_after_the_answer(*args, **kwargs):
        if claims:  # not the pass's first
            assert answered.wait(10)
        claims.append(args)
        return claim(*args, **kwargs)

    def released(*args, **kwargs):
        try:
            return release(*args, **kwargs)
        finally:
            answered.set()

    monkeypatch.setattr(outbox, "claim", claim_after_the_answer)
    monkeypatch.setattr(outbox, "release", released)
    claims: list = []
    responses.add(responses.POST, BASE, status=200, content_type="application/fhir+json",
                  body='{"resourceType": "Bundle", "type": "transaction-response", "entry": []}')
    report = pusher.push_all()
    assert (report.sent, report.retried, report.dead) == (0, 1, 0)
    assert len(responses.calls) == 1
    [row] = rows(pusher.engine)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "does not match" in row.last_error
    answered.clear()
    claims.clear()
    assert pusher.push_all().retried == 1  # the next pass takes it again
    assert rows(pusher.engine)[0].attempts == 2


@responses.activate
def test_a_refused_bundle_is_dead_lettered_with_the_reason_and_can_be_retried(pusher):
    responses.add(responses.POST, BASE, status=400, json={
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad birthDate"}]})
    report = pusher.push_all()
    assert report.dead == 1
    [row] = rows(pusher.engine)
    assert row.status == "dead" and "bad birthDate" in row.last_error
    assert outbox.listing(pusher.engine, "dead")[0]["resource"] == "Patient/pat-p01"
    assert outbox.retry(pusher.engine) == 1
    responses.replace(responses.POST, BASE, body=OK_BODY, status=200,
                      content_type="application/fhir+json")
    assert pusher.push_all().sent == 1


@responses.activate
def test_after_max_attempts_an_unreachable_target_dead_letters_the_row(pusher):
    responses.add(responses.POST, BASE, status=503)
    for _ in range(3):
        make_due(pusher.engine)
        pusher.push_all()
    [row] = rows(pusher.engine)
    assert (row.status, row.attempts) == ("dead", 3)
    assert "503" in row.last_error
