"""Medication safety checks: maximum daily dose, duplicate therapy, dangerous combinations.
Warnings never block the save; each one is an OperationOutcome warning in the response and a
stored DetectedIssue."""

import copy

import pytest

from fhir_bridge.clinical.drugs import classes, members
from fhir_bridge.clinical.safety import check, daily_mg, rules
from fhir_bridge.fhir.validate import resource_issues

from .conftest import FIXTURES, read_json, snapshot

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")
P02 = read_json(FIXTURES / "internal" / "p02-bipolar-lithium.json")


def rx(rx_id="rx-a", drug="sertraline", value=50, unit="mg", frequency=1, period=1.0,
       period_unit="day", status="active", **extra):
    return {"id": rx_id, "patient_id": "p1", "drug": drug, "dose": {"value": value, "unit": unit},
            "frequency": frequency, "period": period, "period_unit": period_unit,
            "status": status, "authored_on": "2025-05-01T09:00:00-04:00",
            "start_date": "2025-05-01", **extra}


# --- the rule tables -------------------------------------------------------------------------

def test_every_safety_rule_names_its_source():
    config = rules()
    entries = list(config["max_daily_dose"].values()) + config["duplicate_therapy"] \
        + config["interactions"]
    assert len(entries) > 30
    for entry in entries:
        assert len(entry.get("source", "")) > 20, entry  # a citation, not a placeholder
    for name, drug_class in classes().items():
        assert len(drug_class.get("source", "")) > 20, name


def test_every_class_a_rule_names_exists_and_severities_are_detected_issue_severities():
    config = rules()
    for rule in config["duplicate_therapy"]:
        assert rule["class"] in classes()
        assert rule["severity"] in ("high", "moderate", "low")
    for rule in config["interactions"]:
        assert rule["severity"] in ("high", "moderate", "low")
        for side in (rule["a"], rule["b"]):
            if isinstance(side, str) and side not in classes():
                assert side == side.lower() and " " not in side  # a drug key


# --- the checks ------------------------------------------------------------------------------

@pytest.mark.parametrize("prescription,expected", [
    (rx(value=100, frequency=2), 200.0),
    (rx(value=0.5, unit="g"), 500.0),
    (rx(value=25, frequency=1, period=8, period_unit="hour"), 75.0),  # every 8 hours
    (rx(value=400, frequency=1, period=1, period_unit="month"), 400 / 30),
    (rx(value=2, unit="tablet"), None),
])
def test_daily_dose(prescription, expected):
    found = daily_mg(prescription)
    assert found == pytest.approx(expected) if expected is not None else found is None


def test_a_dose_above_the_labeled_maximum_is_found_and_one_at_it_is_not():
    assert check(rx(value=200), []) == []
    [finding] = check(rx(value=125, frequency=2), [])
    assert (finding.rule, finding.severity) == ("max-dose.sertraline", "high")
    assert "250 mg/day" in finding.detail and "200 mg/day" in finding.detail
    assert "Zoloft" in finding.source


def test_as_needed_orders_count_every_permitted_dose():
    prn = rx(drug="hydroxyzine", value=100, frequency=1, period=4, period_unit="hour",
             as_needed=True)  # 600 mg/day possible
    assert [f.rule for f in check(prn, [])] == ["max-dose.hydroxyzine"]


def test_other_routes_are_not_held_to_the_oral_maximum():
    lai = rx(drug="aripiprazole", value=400, period_unit="month", route="intramuscular")
    assert check(dict(lai, period=1.0, period_unit="day"), []) == []


def test_two_ssris_are_duplicate_therapy_but_a_dose_change_is_not():
    old = rx("rx-old", "sertraline")
    assert [f.rule for f in check(rx("rx-new", "escitalopram", 10), [old])] == \
        ["duplicate.ssri"]
    change = rx("rx-new", "sertraline", 100, prior_prescription_id="rx-old")
    assert check(change, [old]) == []
    assert check(rx("rx-new", "escitalopram", 10), [dict(old, status="stopped")]) == []


@pytest.mark.parametrize("drug,other,rule,severity", [
    ("phenelzine", "sertraline", "interaction.maoi-serotonergic", "high"),
    ("sertraline", "phenelzine", "interaction.maoi-serotonergic", "high"),
    ("Tranylcypromine", "methylphenidate", "interaction.maoi-stimulant", "high"),
    ("lithium-carbonate", "ibuprofen", "interaction.lithium-nsaid", "moderate"),
    ("naproxen", "lithium-carbonate", "interaction.lithium-nsaid", "moderate"),
    ("hydrochlorothiazide", "lithium", "interaction.lithium-thiazide", "high"),
    ("captopril", "lithium-carbonate", "interaction.lithium-ace-inhibitor", "moderate"),
    ("pimozide", "citalopram", "interaction.pimozide-ssri", "high"),
    ("thioridazine", "paroxetine", "interaction.thioridazine-cyp2d6-inhibitor", "high"),
])
def test_dangerous_combinations(drug, other, rule, severity):
    findings = check(rx("rx-new", drug, 10), [rx("rx-other", other, 10)])
    assert [(f.rule, f.severity) for f in findings] == [(rule, severity)]
    assert set(findings[0].prescription_ids) == {"rx-new", "rx-other"}


def test_safe_combinations_raise_nothing():
    assert check(rx("rx-new", "buspirone", 10), [rx("rx-other", "escitalopram", 10)]) == []
    assert members("lithium") == {"lithium", "lithium-carbonate"}


# --- through the API -------------------------------------------------------------------------

@pytest.fixture
def client(sqlite_app):
    client = sqlite_app.test_client()
    assert client.post("/api/v1/documents", json=P02).status_code == 200
    return client


def nsaid(**changes):
    return {"id": "p02-rx-ibu", "patient_id": "p02", "prescriber_id": "dr-moreau-synth",
            "status": "active", "authored_on": "2025-05-05T10:00:00-04:00", "drug": "ibuprofen",
            "dose": {"value": 400, "unit": "mg"}, "route": "oral", "frequency": 3,
            "start_date": "2025-05-05", **changes}


def test_a_combination_is_a_warning_in_the_response_and_a_stored_detected_issue(client):
    prescriber = P02["prescriptions"][1]["prescriber_id"]
    response = client.post("/api/v1/prescriptions", json=nsaid(prescriber_id=prescriber))
    assert response.status_code == 201, response.json  # a warning never blocks the save
    body = response.json
    warnings = body.pop("warnings")
    assert body == client.get("/api/v1/prescriptions/p02-rx-ibu").json  # the record, unchanged
    assert resource_issues(warnings) == []
    [issue] = warnings["issue"]
    assert (issue["severity"], issue["code"], issue["expression"]) == ("warning",
                                                                       "informational", ["drug"])
    assert issue["details"]["coding"][0]["code"] == "interaction.lithium-nsaid"
    assert "lithium-carbonate (p02-rx2)" in issue["diagnostics"]
    stored = client.get("/api/v1/detected-issues?patient_id=p02").json["items"]
    assert [(d["rule"], d["prescription_ids"]) for d in stored] == [
        ("interaction.lithium-nsaid", ["p02-rx-ibu", "p02-rx2"])]
    assert f"DetectedIssue/di-{stored[0]['id']}" in issue["diagnostics"]
    bundle = client.get(f"/api/v1/detected-issues/{stored[0]['id']}/fhir").json
    resource = bundle["entry"][0]["resource"]
    assert resource_issues(resource) == []
    assert (resource["status"], resource["severity"], resource["patient"]) == (
        "final", "moderate", {"reference": "Patient/pat-p02"})
    assert resource["identifiedDateTime"] == "2025-05-05T10:00:00-04:00"
    assert {r["reference"] for r in resource["implicated"]} == {
        "MedicationRequest/rx-p02-rx-ibu", "MedicationRequest/rx-p02-rx2"}
    assert resource["code"]["coding"][0]["system"] == \
        "urn:fhir-bridge:codesystem:medication-safety-rule"


def test_a_dose_change_above_the_maximum_warns_and_the_idempotent_replay_warns_again(client):
    prescriber = P02["prescriptions"][1]["prescriber_id"]
    assert client.post("/api/v1/prescriptions", json={
        "id": "p02-rx-q", "patient_id": "p02", "prescriber_id": prescriber, "status": "active",
        "authored_on": "2025-05-05T10:00:00-04:00", "drug": "quetiapine",
        "dose": {"value": 300, "unit": "mg"}, "frequency": 2,
        "start_date": "2025-05-05"}).status_code == 201
    change = {"id": "p02-rx-q2", "dose": {"value": 450, "unit": "mg"},
              "effective_date": "2025-05-19", "reason": "Partial response",
              "changed_by_id": prescriber, "authored_on": "2025-05-19T09:00:00-04:00"}
    headers = {"Idempotency-Key": "q-up"}
    first = client.post("/api/v1/prescriptions/p02-rx-q/dose-changes", json=change,
                        headers=headers)
    assert first.status_code == 201
    rules_found = [i["details"]["coding"][0]["code"] for i in first.json["warnings"]["issue"]]
    assert rules_found == ["max-dose.quetiapine"]
    assert first.json["warnings"]["issue"][0]["expression"] == ["dose"]
    again = client.post("/api/v1/prescriptions/p02-rx-q/dose-changes", json=change,
                        headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["warnings"] == first.json["warnings"]


def test_a_prescription_without_findings_has_no_warnings_member(client):
    body = nsaid(id="p02-rx-x", drug="buspirone", dose={"value": 10, "unit": "mg"},
                 prescriber_id=P02["prescriptions"][1]["prescriber_id"])
    response = client.post("/api/v1/prescriptions", json=body)
    assert response.status_code == 201 and "warnings" not in response.json


def test_a_rejected_prescription_writes_no_detected_issue(client):
    before = snapshot(client.application)
    response = client.post("/api/v1/prescriptions", json=nsaid(prescriber_id="nobody"))
    assert response.status_code == 422
    assert snapshot(client.application) == before


def test_a_document_import_returns_its_warnings(sqlite_app):
    doc = copy.deepcopy(P01)
    extra = dict(doc["prescriptions"][1], id="p01-rx9", drug="escitalopram",
                 dose={"value": 10, "unit": "mg"})
    extra.pop("prior_prescription_id")
    extra.pop("change_reason")
    doc["prescriptions"].append(extra)
    response = sqlite_app.test_client().post("/api/v1/documents", json=doc)
    assert response.status_code == 200, response.json
    assert response.json["saved"]["detected-issue"] == 1
    assert [i["details"]["coding"][0]["code"] for i in response.json["warnings"]["issue"]] == \
        ["duplicate.ssri"]
