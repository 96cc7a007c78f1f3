"""Bad input gets a clear error naming each bad field, and the store is unchanged afterwards."""

import copy

import pytest

from .conftest import FIXTURES, read_json, snapshot

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")


def record(collection, index=0, **changes):
    out = copy.deepcopy(P01[collection][index])
    for key, value in changes.items():
        if value is DELETE:
            out.pop(key)
        else:
            out[key] = value
    return out


DELETE = object()

# (name, collection, body, the field paths the OperationOutcome must name)
BAD_RECORDS = [
    ("missing required fields", "patients", {"id": "px"},
     ["mrn", "name", "birth_date", "gender"]),
    ("unknown field", "patients", record("patients", id="px", shoe_size=9), ["shoe_size"]),
    ("wrong enum", "patients", record("patients", id="px", gender="f"), ["gender"]),
    ("bad id", "patients", record("patients", id="has space"), ["id"]),
    ("date-time without offset", "prescriptions",
     record("prescriptions", 1, id="rx-new", authored_on="2025-04-01T10:00:00"),
     ["authored_on"]),
    ("negative dose and bad unit", "prescriptions",
     record("prescriptions", 1, id="rx-new", dose={"value": -5, "unit": "spoon"}),
     ["dose.value", "dose.unit"]),
    ("end before start", "prescriptions",
     record("prescriptions", 1, id="rx-new", end_date="2025-01-01"), ["end_date"]),
    ("dose change without reason", "prescriptions",
     record("prescriptions", 1, id="rx-new", change_reason=DELETE), ["change_reason"]),
    ("unknown patient", "prescriptions",
     record("prescriptions", 1, id="rx-new", patient_id="nobody", prior_prescription_id="p01-rx1"),
     ["patient_id"]),
    ("PHQ-9 item out of range", "assessments",
     record("assessments", id="a-new",
            items=[{"number": n, "value": 3} for n in range(1, 9)] + [{"number": 9, "value": 7}]),
     ["items[8].value"]),
    ("PHQ-9 items missing", "assessments",
     record("assessments", id="a-new", items=[{"number": 1, "value": 1}]), ["items"]),
    ("PHQ-9 total that does not add up", "assessments",
     record("assessments", id="a-new", total=27), ["total"]),
    ("C-SSRS item 3 without a yes to item 2", "assessments",
     {"id": "a-new", "patient_id": "p01", "instrument": "c-ssrs-screener",
      "effective": "2025-03-03T09:50:00-05:00",
      "items": [{"number": 1, "value": 1}, {"number": 2, "value": 0},
                {"number": 3, "value": 1}, {"number": 6, "value": 0}]},
     ["items[2].number"]),
    ("dispense quantity in a unit no one can count", "prescriptions",
     record("prescriptions", 1, id="rx-new", quantity={"value": 1, "unit": "bucket"}),
     ["quantity.unit"]),
    ("unknown instrument", "assessments", record("assessments", id="a-new", instrument="phq-10"),
     ["instrument"]),
    ("measurement in the wrong unit", "measurements",
     record("measurements", id="m-new", unit="lb"), ["unit"]),
    ("adherence: more doses taken than prescribed", "adherence-reports",
     record("adherence-reports", id="ad-new", doses_taken=40), ["doses_taken"]),
    ("care plan activity naming an unknown goal", "care-plans",
     record("care-plans", id="cp-new", activities=[
         {"id": "a1", "kind": "lifestyle", "topic": "Exercise", "status": "scheduled",
          "goal_ids": ["nope"]}], goals=[]),
     ["activities[0].goal_ids"]),
    ("medication activity without prescription", "care-plans",
     record("care-plans", id="cp-new", activities=[{"id": "a1", "kind": "medication"}]),
     ["activities[0].prescription_id"]),
    ("care team without members", "care-teams", record("care-teams", id="ct-new",
                                                        participants=[]), ["participants"]),
    ("care team member role not a verified role", "care-teams",
     record("care-teams", id="ct-new", participants=[
         {"member": {"type": "practitioner", "id": "th-okafor"}, "role": "shaman"}]),
     ["participants[0].role"]),
]


@pytest.mark.parametrize("name,collection,body,fields", BAD_RECORDS,
                         ids=[case[0] for case in BAD_RECORDS])
def test_bad_records_get_422_naming_each_field_and_change_nothing(loaded_client, name,
                                                                  collection, body, fields):
    before = snapshot(loaded_client.application)
    response = loaded_client.post(f"/api/v1/{collection}", json=body)
    assert response.status_code == 422, response.json
    outcome = response.json
    assert outcome["resourceType"] == "OperationOutcome"
    named = {expr for issue in outcome["issue"] for expr in issue["expression"]}
    assert set(fields) <= named, named
    assert snapshot(loaded_client.application) == before


def test_a_document_with_one_bad_record_stores_nothing(client):
    doc = copy.deepcopy(P01)
    doc["measurements"][0]["unit"] = "lb"
    before = snapshot(client.application)
    response = client.post("/api/v1/documents", json=doc)
    assert response.status_code == 422
    assert [i["expression"] for i in response.json["issue"]] == [["measurements[0].unit"]]
    assert snapshot(client.application) == before


def test_a_document_naming_a_missing_record_stores_nothing(client):
    doc = copy.deepcopy(P01)
    doc["care-plans"][0]["care_team_id"] = "no-such-team"
    before = snapshot(client.application)
    response = client.post("/api/v1/documents", json=doc)
    assert response.status_code == 422
    assert ["care-plans[0].care_team_id"] in [i["expression"] for i in response.json["issue"]]
    assert snapshot(client.application) == before


@pytest.mark.parametrize("body,content_type,status", [
    (b"{not json", "application/json", 400),
    (b'{"id": NaN}', "application/json", 400),
    (b"[]", "application/json", 422),
    (b"{}", "text/plain", 415),
])
def test_malformed_bodies_are_refused_before_anything_is_written(loaded_client, body,
                                                                 content_type, status):
    before = snapshot(loaded_client.application)
    response = loaded_client.post("/api/v1/patients", data=body, content_type=content_type)
    assert response.status_code == status
    assert response.json["resourceType"] == "OperationOutcome"
    assert snapshot(loaded_client.application) == before


def test_a_body_over_the_size_limit_is_refused(sqlite_app):
    client = sqlite_app.test_client()
    big = b'{"id": "' + b"x" * (sqlite_app.config["MAX_CONTENT_LENGTH"] + 10) + b'"}'
    response = client.post("/api/v1/patients", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.json["resourceType"] == "OperationOutcome"


def test_creating_an_existing_record_is_a_conflict_and_changes_nothing(loaded_client):
    before = snapshot(loaded_client.application)
    response = loaded_client.post("/api/v1/patients", json=dict(P01["patients"][0],
                                                                 mrn="changed"))
    assert response.status_code == 409
    assert snapshot(loaded_client.application) == before


def test_a_goal_id_used_by_another_plan_is_a_conflict_and_changes_nothing(loaded_client):
    other = record("care-plans", id="p01-plan-2")
    before = snapshot(loaded_client.application)
    response = loaded_client.post("/api/v1/care-plans", json=other)
    assert response.status_code == 409
    assert "Goal/goal-p01-goal-remission" in response.json["issue"][0]["diagnostics"] or \
        "Goal/goal-p01-goal-remission" in response.json["text"]["div"]
    assert snapshot(loaded_client.application) == before


def test_unknown_collections_and_query_parameters_are_refused(loaded_client):
    assert loaded_client.get("/api/v1/unicorns").status_code == 404
    response = loaded_client.get("/api/v1/patients?sort=name")
    assert response.status_code == 400
    assert response.json["issue"][0]["expression"] == ["sort"]
