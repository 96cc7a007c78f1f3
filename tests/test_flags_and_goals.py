"""Flags and goals as clinicians read them: safety alerts carry FHIR's flag-priority PH, a
goal's achievement status follows its measured target, a side effect has its resolution date
and outcome."""

import csv
import datetime as dt
import json
import tarfile

import pytest

from fhir_bridge.clinical.goals import achievement
from fhir_bridge.clinical.overdue import check_overdue
from fhir_bridge.fhir.validate import resource_issues

from .conftest import FIXTURES, SHARED_CODES, read_json

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")
PACKAGES = SHARED_CODES.parent / "fhir-packages"


@pytest.fixture
def client(app):  # SQLite and PostgreSQL
    client = app.test_client()
    assert client.post("/api/v1/documents", json=P01).status_code == 200
    return client


def phq9(assessment_id, day, answers):
    return {"id": assessment_id, "patient_id": "p01", "instrument": "phq-9",
            "effective": f"{day}T09:00:00-04:00",
            "items": [{"number": n, "value": v} for n, v in enumerate(answers, start=1)]}


def fhir_entries(client, path, resource_type):
    return [e["resource"] for e in client.get(path).json["entry"]
            if e["resource"]["resourceType"] == resource_type]


# --- flag priority ---------------------------------------------------------------------------

def package_json(package, member):
    with tarfile.open(PACKAGES / package) as archive:
        return json.load(archive.extractfile(member))


def test_the_suicide_risk_flag_has_flag_priority_ph_from_the_reference_codes(client):
    assert client.post("/api/v1/assessments", json=phq9(
        "p01-phq9-w6", "2025-04-14", [1, 1, 1, 1, 1, 1, 1, 1, 1])).status_code == 201
    flag, = fhir_entries(client, "/api/v1/assessments/p01-phq9-w6/fhir", "Flag")
    assert flag["code"]["coding"][0]["code"] == "suicide-risk"
    priority, = flag["extension"]
    coding, = priority["valueCodeableConcept"]["coding"]
    with open(SHARED_CODES, encoding="utf-8", newline="") as fh:
        rows = {(r["domain"], r["system"], r["code"]): r for r in csv.DictReader(fh)}
    row = rows[("flag-priority", coding["system"], coding["code"])]
    assert (coding["code"], coding["display"], row["status"]) == ("PH", row["display"],
                                                                   "verified")
    definition = package_json("hl7.fhir.uv.extensions.r4-5.1.0.tgz",
                              "package/StructureDefinition-flag-priority.json")
    assert priority["url"] == definition["url"]
    assert [c["expression"] for c in definition["context"]] == ["Flag"]
    assert resource_issues(flag) == []


def test_an_overdue_monitoring_flag_has_no_safety_priority(client):
    """Only the alerts of the rating scales are safety alerts; an overdue test is not."""

    assert client.post("/api/v1/prescriptions", json={
        "id": "p01-li", "patient_id": "p01", "prescriber_id": P01["prescriptions"][0][
            "prescriber_id"], "status": "active", "authored_on": "2025-04-07T10:00:00-04:00",
        "drug": "lithium-carbonate", "dose": {"value": 300, "unit": "mg"}, "frequency": 2,
        "start_date": "2025-04-07"}).status_code == 201
    check_overdue(client.application.extensions["fhir_bridge"].store, dt.date(2025, 4, 20))
    plan_id = P01["care-plans"][0]["id"]
    flags = fhir_entries(client, f"/api/v1/care-plans/{plan_id}/fhir", "Flag")
    assert flags and all("extension" not in f for f in flags)


# --- goal achievement ------------------------------------------------------------------------

def test_the_goal_phq9_below_5_is_achieved_when_the_score_reaches_4(client):
    plan_id = P01["care-plans"][0]["id"]

    def goal():
        plan = client.get(f"/api/v1/care-plans/{plan_id}").json
        return next(g for g in plan["goals"] if g["id"] == "p01-goal-remission")

    assert goal()["target"] == {"measure": "phq-9", "comparator": "<", "value": 5}
    assert goal()["achievement_status"] == "improving"  # from the baseline to 12 at week 4
    assert client.post("/api/v1/assessments", json=phq9(
        "p01-phq9-w8", "2025-04-28", [1, 1, 1, 1, 0, 0, 0, 0, 0])).status_code == 201
    assert goal()["achievement_status"] == "achieved"
    resource, = [g for g in fhir_entries(client, f"/api/v1/care-plans/{plan_id}/fhir", "Goal")
                 if g["id"] == "goal-p01-goal-remission"]
    assert resource["achievementStatus"]["coding"] == [{
        "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
        "code": "achieved", "display": "Achieved"}]
    assert resource_issues(resource) == []
    # A score of 5 again: no longer met, and worse than 4.
    assert client.post("/api/v1/assessments", json=phq9(
        "p01-phq9-w10", "2025-05-12", [1, 1, 1, 1, 1, 0, 0, 0, 0])).status_code == 201
    assert goal()["achievement_status"] == "worsening"


def test_the_goal_achievement_codes_are_those_of_the_tho_package():
    code_system = package_json("hl7.terminology.r4-7.0.1.tgz",
                               "package/CodeSystem-goal-achievement.json")
    found = set()

    def walk(concepts):
        for concept in concepts:
            found.add(concept["code"])
            walk(concept.get("concept") or [])

    walk(code_system["concept"])
    assert code_system["url"] == "http://terminology.hl7.org/CodeSystem/goal-achievement"
    assert {"achieved", "improving", "worsening", "no-change", "in-progress"} <= found


def goal(comparator, value, start=None):
    out = {"id": "g", "description": "d", "status": "active",
           "target": {"measure": "phq-9", "value": value}}
    if comparator:
        out["target"]["comparator"] = comparator
    if start:
        out["start_date"] = start
    return out


def scores(*totals, status="final"):
    return [{"id": f"a{n}", "instrument": "phq-9", "effective": f"2025-0{n + 1}-01T09:00:00Z",
             "total": total, "status": status} for n, total in enumerate(totals)]


@pytest.mark.parametrize("target,totals,expected", [
    (("<", 5), (12, 4), "achieved"),
    (("<", 5), (12, 5), "improving"),
    (("<", 5), (8, 11), "worsening"),
    (("<", 5), (9, 9), "no-change"),
    (("<", 5), (9,), "in-progress"),
    (("<=", 7), (7,), "achieved"),
    ((">=", 10), (4, 6), "improving"),
    ((">", 10), (6, 4), "worsening"),
    ((None, 10), (14, 12), "improving"),
    ((None, 10), (9, 10), "achieved"),
    ((None, 10), (8, 12), "no-change"),  # as far from 10 as before
])
def test_achievement_from_the_latest_result_against_the_one_before(target, totals, expected):
    assert achievement(goal(*target), scores(*totals), []) == expected


def test_no_result_no_target_or_only_results_before_the_start_give_no_status():
    assert achievement(goal("<", 5), [], []) is None
    assert achievement({"id": "g", "description": "d", "status": "active"}, scores(3), []) \
        is None
    assert achievement(goal("<", 5, start="2025-12-01"), scores(12, 4), []) is None
    assert achievement(goal("<", 5), scores(3, status="preliminary"), []) is None


def test_a_measurement_target_reads_measurement_values():
    target = {"id": "g", "description": "d", "status": "active",
              "target": {"measure": "lithium", "comparator": ">=", "value": 0.6}}
    levels = [{"id": "m1", "kind": "lithium", "effective": "2025-04-13T08:00:00Z", "value": 0.4},
              {"id": "m2", "kind": "lithium", "effective": "2025-04-27T08:00:00Z", "value": 0.7}]
    assert achievement(target, [], levels) == "achieved"
    assert achievement(target, [], levels[:1]) == "in-progress"


def test_a_goal_sent_with_a_status_and_no_result_keeps_it(client):
    plan = client.get(f"/api/v1/care-plans/{P01['care-plans'][0]['id']}").json
    plan["goals"].append({"id": "p01-goal-gad", "description": "GAD-7 below 5",
                          "status": "active", "achievement_status": "not-attainable",
                          "start_date": "2025-06-01",
                          "target": {"measure": "gad-7", "comparator": "<", "value": 5}})
    response = client.put(f"/api/v1/care-plans/{plan['id']}", json=plan)
    assert response.status_code == 200, response.json
    saved = client.get(f"/api/v1/care-plans/{plan['id']}").json
    assert next(g for g in saved["goals"] if g["id"] == "p01-goal-gad")[
        "achievement_status"] == "not-attainable"


# --- side-effect resolution ------------------------------------------------------------------

SIDE_EFFECT = dict(P01["side-effects"][0], id="p01-se9")


def test_a_side_effect_with_its_resolution_date_and_outcome(client):
    body = dict(SIDE_EFFECT, outcome="resolved", resolution_date="2025-03-17")
    assert client.post("/api/v1/side-effects", json=body).status_code == 201
    assert client.get("/api/v1/side-effects/p01-se9").json == dict(body, status="final")
    observation, = fhir_entries(client, "/api/v1/side-effects/p01-se9/fhir", "Observation")
    assert observation["effectivePeriod"] == {"start": "2025-03-05", "end": "2025-03-17"}
    outcome = next(c for c in observation["component"]
                   if c["code"]["coding"][0]["code"] == "outcome")
    assert outcome["valueCodeableConcept"]["coding"][0]["code"] == "resolved"
    assert resource_issues(observation) == []


def test_an_ongoing_side_effect_has_no_resolution_date(client):
    body = dict(SIDE_EFFECT, outcome="ongoing")
    assert client.post("/api/v1/side-effects", json=body).status_code == 201
    observation, = fhir_entries(client, "/api/v1/side-effects/p01-se9/fhir", "Observation")
    assert observation["effectivePeriod"] == {"start": "2025-03-05"}


@pytest.mark.parametrize("changes,field", [
    ({"outcome": "resolved", "resolution_date": "2025-03-01"}, "resolution_date"),  # < onset
    ({"outcome": "ongoing", "resolution_date": "2025-03-17"}, "resolution_date"),
    ({"resolution_date": "2025-03-17"}, "resolution_date"),
    ({"outcome": "resolved-with-sequelae"}, "resolution_date"),
    ({"outcome": "gone"}, "outcome"),
    ({"outcome": "resolved", "resolution_date": "17/03/2025"}, "resolution_date"),
])
def test_a_bad_resolution_is_422_naming_the_field(client, changes, field):
    response = client.post("/api/v1/side-effects", json=dict(SIDE_EFFECT, **changes))
    assert response.status_code == 422, response.json
    assert [field] in [i["expression"] for i in response.json["issue"]]
    assert client.get("/api/v1/side-effects/p01-se9").status_code == 404
