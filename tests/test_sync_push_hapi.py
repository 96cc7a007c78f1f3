"""Push to a real HAPI FHIR server: exactly the expected resources, never twice.

With FHIR_BRIDGE_TEST_VALIDATOR_URL set (scripts/test does), these tests push to the
validating instance, which checks every write against US Core 7.0.0 and the bridge's own
package and refuses an invalid one (422): what the bridge pushes must pass the validator."""

import os

import pytest
import requests
import sqlalchemy as sa

from fhir_bridge.cli import load_demo
from fhir_bridge.store import tables as t
from fhir_bridge.sync.client import FhirClient
from fhir_bridge.sync.push import Pusher
from fhir_bridge.sync.targets import BRIDGE_TAG, target_from_config

from .conftest import HAPI_URL, expunge, hapi_count

pytestmark = pytest.mark.hapi
TYPES = ("Patient", "Practitioner", "RelatedPerson", "Condition", "MedicationRequest", "Flag",
         "DetectedIssue", "Observation", "CarePlan", "CareTeam", "Goal")


CLIENTS: list[FhirClient] = []
VALIDATOR_URL = os.environ.get("FHIR_BRIDGE_TEST_VALIDATOR_URL", "").rstrip("/")


@pytest.fixture
def hapi_url() -> str:
    """The validating HAPI instance when there is one, else the plain test server
    (conftest.HAPI_URL); emptied for each test."""
    url = VALIDATOR_URL or HAPI_URL
    if not url:
        if os.environ.get("CI"):
            pytest.fail("neither FHIR_BRIDGE_TEST_VALIDATOR_URL nor FHIR_BRIDGE_TEST_HAPI_URL "
                        "is set: a HAPI server must run in CI")
        pytest.skip("HAPI not configured (scripts/hapi-server start)")
    expunge(url)
    return url


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while CLIENTS:
        CLIENTS.pop().close()


def make_pusher(bridge, base_url, worker="worker", **target_overrides):
    """A pusher to base_url with the bridge's settings (target_overrides: batch_size, ...)."""
    config = dict(bridge.config)
    config["sync"] = dict(config["sync"], targets={"test-hapi": {"base_url": base_url,
                                                                   **target_overrides}},
                          target="test-hapi")
    target = target_from_config(config)
    client = FhirClient(base_url, backoff_base=0.05, backoff_max=0.5, max_retries=2)
    CLIENTS.append(client)
    return Pusher(bridge.engine, client, target, worker=worker)


def local_counts(bridge) -> dict[str, int]:
    with bridge.engine.connect() as conn:
        rows = conn.execute(sa.select(t.resources.c.resource_type, sa.func.count())
                            .where(t.resources.c.deleted.is_(False))
                            .group_by(t.resources.c.resource_type)).all()
    return dict(rows)


def remote_counts(base_url) -> dict[str, int]:
    return {rtype: hapi_count(base_url, rtype) for rtype in TYPES
            if hapi_count(base_url, rtype)}


def remote_versions(base_url) -> dict[str, str]:
    out = {}
    for rtype in TYPES:
        bundle = requests.get(f"{base_url}/{rtype}", params={"_count": 500, "_elements": "id"},
                              headers={"Cache-Control": "no-cache"}, timeout=60).json()
        for entry in bundle.get("entry", []):
            out[f"{rtype}/{entry['resource']['id']}"] = entry["resource"]["meta"]["versionId"]
    return out


def test_pushing_all_fixtures_creates_exactly_the_local_resources_once(app, hapi_url):
    bridge = app.extensions["fhir_bridge"]
    load_demo(app)
    report = make_pusher(bridge, hapi_url).push_all()
    assert report.dead == report.conflicts == 0, report.errors
    assert remote_counts(hapi_url) == local_counts(bridge)
    assert report.sent == sum(local_counts(bridge).values())
    tagged = hapi_count(hapi_url, "Observation", _tag=f"{BRIDGE_TAG['system']}|"
                                                      f"{BRIDGE_TAG['code']}")
    assert tagged == local_counts(bridge)["Observation"]


def test_pushing_again_changes_nothing_on_the_server(sqlite_app, hapi_url):
    bridge = sqlite_app.extensions["fhir_bridge"]
    load_demo(sqlite_app)
    make_pusher(bridge, hapi_url).push_all()
    before = remote_versions(hapi_url)
    load_demo(sqlite_app)  # the same records again: nothing new in the outbox
    second = make_pusher(bridge, hapi_url).push_all()
    assert second.sent == 0
    with bridge.engine.begin() as conn:  # even forced back into the queue: content unchanged
        conn.execute(t.outbox.update().values(status="pending"))
    third = make_pusher(bridge, hapi_url).push_all()
    assert third.sent == 0 and third.unchanged == sum(local_counts(bridge).values())
    assert remote_versions(hapi_url) == before


def test_a_dose_change_touches_exactly_the_two_requests_and_the_plan(sqlite_app, hapi_url):
    bridge = sqlite_app.extensions["fhir_bridge"]
    load_demo(sqlite_app)
    make_pusher(bridge, hapi_url).push_all()
    before = remote_versions(hapi_url)
    client = sqlite_app.test_client()
    response = client.post("/api/v1/prescriptions/p01-rx2/dose-changes", json={
        "id": "p01-rx3", "dose": {"value": 150, "unit": "mg"},
        "effective_date": "2025-04-28", "reason": "PHQ-9 still 10 after 4 weeks",
        "changed_by_id": "dr-lindqvist", "authored_on": "2025-04-28T09:00:00-04:00"})
    assert response.status_code == 201
    report = make_pusher(bridge, hapi_url).push_all()
    assert report.sent == 3  # the new request, the stopped one, the plan that now names it
    after = remote_versions(hapi_url)
    changed = {ref for ref in before if after.get(ref) != before[ref]}
    added = set(after) - set(before)
    assert len(changed) == 2 and len(added) == 1
    plan_ref = next(ref for ref in changed if ref.startswith("CarePlan/"))
    (old_ref,) = changed - {plan_ref}
    old = requests.get(f"{hapi_url}/{old_ref}", timeout=30).json()
    new = requests.get(f"{hapi_url}/{added.pop()}", timeout=30).json()
    plan = requests.get(f"{hapi_url}/{plan_ref}", headers={"Cache-Control": "no-cache"},
                        timeout=30).json()
    assert {"reference": f"MedicationRequest/{new['id']}"} in [
        a["reference"] for a in plan["activity"] if "reference" in a]
    assert (old["status"], old["identifier"][0]["value"]) == ("stopped", "p01-rx2")
    assert new["priorPrescription"]["reference"] == f"MedicationRequest/{old['id']}"
    assert new["subject"]["reference"].startswith("Patient/")
    assert requests.get(f"{hapi_url}/{new['subject']['reference']}", timeout=30).ok


def test_a_server_without_transactions_gets_the_same_resources_one_by_one(sqlite_app, hapi_url):
    bridge = sqlite_app.extensions["fhir_bridge"]
    from fhir_bridge.mapping.document import load_document
    from .conftest import FIXTURES, read_json

    bridge.store.save(load_document(read_json(FIXTURES / "internal" /
                                              "p01-depression-ssri-titration.json")))
    pusher = make_pusher(bridge, hapi_url)
    pusher.transactions = False
    for _ in range(5):  # one by one, a reference waits until its target has an id
        pusher.push_all()
    assert remote_counts(hapi_url) == local_counts(bridge)
    assert pusher.push_all().sent == 0


def test_target_clean_removes_only_what_the_bridge_wrote(sqlite_app, hapi_url):
    from fhir_bridge.sync.service import clean_target

    bridge = sqlite_app.extensions["fhir_bridge"]
    load_demo(sqlite_app)
    pusher = make_pusher(bridge, hapi_url)
    pusher.push_all()
    theirs = requests.post(f"{hapi_url}/Patient", json={
        "resourceType": "Patient", "name": [{"family": "Not-Ours-Synthetic"}]},
        headers={"Content-Type": "application/fhir+json"}, timeout=30)
    assert theirs.status_code == 201
    deleted = clean_target(bridge, pusher.target, pusher.client)
    assert sum(deleted.values()) == sum(local_counts(bridge).values())
    assert remote_counts(hapi_url) == {"Patient": 1}
    with bridge.engine.connect() as conn:
        remembered = conn.execute(sa.select(sa.func.count()).select_from(t.remote_resources))
        assert remembered.scalar() == 0


def test_monitoring_items_and_safety_issues_reach_the_server(sqlite_app, hapi_url):
    """What the clinical rules add (monitoring activities, DetectedIssues) is pushed like
    everything else, with references rewritten to the server's ids."""
    bridge = sqlite_app.extensions["fhir_bridge"]
    load_demo(sqlite_app)
    pusher = make_pusher(bridge, hapi_url)
    assert pusher.push_all().dead == 0

    def remote(rtype, local_id):
        with bridge.engine.connect() as conn:
            return conn.execute(sa.select(t.remote_resources.c.remote_id).where(
                t.remote_resources.c.resource_type == rtype,
                t.remote_resources.c.local_id == local_id)).scalar()

    headers = {"Cache-Control": "no-cache"}
    issue = requests.get(f"{hapi_url}/DetectedIssue/"
                         f"{remote('DetectedIssue', 'di-p03-rx1.p03-rx3.duplicate.antipsychotics')}",
                         headers=headers, timeout=30).json()
    assert issue["patient"]["reference"] == f"Patient/{remote('Patient', 'pat-p03')}"
    assert {i["reference"] for i in issue["implicated"]} == {
        f"MedicationRequest/{remote('MedicationRequest', 'rx-p03-rx1')}",
        f"MedicationRequest/{remote('MedicationRequest', 'rx-p03-rx3')}"}
    plan = requests.get(f"{hapi_url}/CarePlan/{remote('CarePlan', 'cp-p03-plan')}",
                        headers=headers, timeout=30).json()
    monitoring = [a for a in plan["activity"] if a["id"].startswith("mon-")]
    assert monitoring and all(
        a["detail"]["extension"][0]["valueReference"]["reference"].startswith(
            "MedicationRequest/") for a in monitoring)
    assert {a["detail"]["status"] for a in monitoring} >= {"completed", "scheduled"}
