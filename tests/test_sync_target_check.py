"""`target check` never leaves its test Patient behind: its clean-up is retried (a 409 to the
DELETE on a just-started HAPI, 5xx) and, when the Patient cannot be deleted in the end, the
check names it and fails. The 409 and the 5xx are injected with `responses` (a settled server
does not produce them on demand); the round trip itself runs against the real HAPI server."""

import json
import re

import pytest
import responses

from fhir_bridge.cli import main
from fhir_bridge.sync import service
from fhir_bridge.sync.client import FhirClient
from fhir_bridge.sync.targets import Target

from .conftest import hapi_count

BASE = "http://127.0.0.1:8998/fhir"
PROBE = f"{BASE}/Patient/probe-1"
STATEMENT = {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
             "fhirVersion": "4.0.1", "format": ["json"],
             "rest": [{"mode": "server", "interaction": [{"code": "transaction"}],
                       "resource": [{"type": "Patient", "conditionalUpdate": True}]}]}
GONE = {"resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "deleted", "diagnostics": "deleted"}]}
NO_CLIENT_IDS = {"resourceType": "OperationOutcome", "issue": [{
    "severity": "error", "code": "not-supported", "diagnostics": "update as create refused"}]}
BUSY = {"resourceType": "OperationOutcome", "issue": [{
    "severity": "error", "code": "conflict",
    "diagnostics": "HAPI-0550: a concurrent transaction holds this resource"}]}


def fast_client(base: str = BASE) -> FhirClient:
    return FhirClient(base, max_retries=3, backoff_base=0.01, backoff_max=0.02,
                      sleep=lambda seconds: None)


class FakeServer:
    """Just enough of a FHIR server for the check: it keeps the one Patient posted."""

    def __init__(self, mock, delete_answers):
        self.patient = None
        self.deletes = 0
        self.delete_answers = list(delete_answers)  # status codes, then 200 for ever
        mock.get(f"{BASE}/metadata", json=STATEMENT)
        mock.add_callback(responses.POST, f"{BASE}/Patient", callback=self.create)
        mock.add_callback(responses.GET, PROBE, callback=self.read)
        mock.add_callback(responses.GET, f"{BASE}/Patient", callback=self.search)
        mock.add_callback(responses.DELETE, PROBE, callback=self.delete)
        # A server that refuses client-assigned ids (the check's second test Patient).
        client_id = re.compile(rf"{re.escape(BASE)}/Patient/fhir-bridge-check-[0-9a-f]+")
        mock.add(responses.PUT, client_id, status=405, json=NO_CLIENT_IDS)
        mock.add(responses.DELETE, client_id, status=404, json=GONE)

    def create(self, request):
        self.patient = dict(json.loads(request.body), id="probe-1")
        return 201, {"Location": f"{PROBE}/_history/1"}, json.dumps(self.patient)

    def read(self, request):
        if self.patient is None:
            return 410, {}, json.dumps(GONE)
        return 200, {}, json.dumps(self.patient)

    def search(self, request):
        entries = [{"resource": self.patient, "search": {"mode": "match"}}] \
            if self.patient else []
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset",
                                    "entry": entries})

    def delete(self, request):
        self.deletes += 1
        status = self.delete_answers.pop(0) if self.delete_answers else 200
        if status >= 400:
            return status, {}, json.dumps(BUSY)
        self.patient = None
        return 200, {}, ""


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def test_a_409_to_the_delete_is_retried_and_the_test_patient_is_gone(mock):
    server = FakeServer(mock, [409, 409])
    report = service.check_target(Target("fake", BASE), fast_client())
    assert server.deletes == 3 and server.patient is None
    assert report.ok and report.left_behind == []
    assert report.round_trip == "create, read, delete: ok"


def test_a_5xx_to_the_delete_is_retried_too(mock):
    server = FakeServer(mock, [503, 500])
    report = service.check_target(Target("fake", BASE), fast_client())
    assert report.ok and server.deletes == 3 and server.patient is None


def test_when_the_read_fails_the_test_patient_is_still_deleted(mock):
    server = FakeServer(mock, [])
    mock.replace(responses.GET, PROBE, status=500, json=BUSY)  # read and its retries fail
    report = service.check_target(Target("fake", BASE), fast_client())
    assert server.deletes == 1 and server.patient is None
    assert not report.ok and report.left_behind == []
    assert report.round_trip.startswith("create, read, delete: read failed: HTTP 500")


def test_a_patient_that_cannot_be_deleted_is_named_and_the_check_fails(mock):
    server = FakeServer(mock, [409] * 10)
    report = service.check_target(Target("fake", BASE), fast_client())
    assert server.deletes == 4  # the first try and three retries: bounded
    assert not report.ok and report.left_behind == ["Patient/probe-1"]
    assert "could not delete Patient/probe-1" in report.round_trip
    assert "409" in report.cleanup_error


def test_the_cli_says_which_test_resource_it_left_and_exits_non_zero(mock, monkeypatch,
                                                                   tmp_path, capsys):
    FakeServer(mock, [409] * 10)
    monkeypatch.setenv("FHIR_BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("FHIR_BRIDGE_SYNC__TARGETS", json.dumps({"fake": {"base_url": BASE}}))
    monkeypatch.setattr(service, "client_for", lambda target: fast_client(target.base_url))
    assert main(["target", "check", "fake"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["left_behind"] == ["Patient/probe-1"]
    [line] = captured.err.strip().splitlines()
    assert line.startswith("error: target check could not delete its test resource "
                           "Patient/probe-1 on fake (HTTP 409")
    assert "fhir-bridge target clean fake" in line


@pytest.mark.hapi
def test_against_hapi_the_check_leaves_no_test_patient_behind(hapi_url):
    with FhirClient(hapi_url) as client:
        for _ in range(2):
            report = service.check_target(Target("test-hapi", hapi_url), client)
            assert report.ok and report.left_behind == [], report
    assert hapi_count(hapi_url, "Patient", identifier=f"{service.PROBE_SYSTEM}|") == 0
