"""Bad input gets a clear error naming each bad field, and the store is unchanged afterwards."""

import copy

import pytest

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.fhir import jsonio
from fhir_bridge.model.ranges import table_rows

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


def rx(**changes):
    return record("prescriptions", 1, id="rx-new", **changes)


def plan_with(**changes):
    return record("care-plans", id="cp-new", **{"goals": [], "activities": [], **changes})


def lifestyle(**schedule):
    return {"id": "a-new", "kind": "lifestyle", "topic": "Exercise", "status": "scheduled",
            "schedule": {"period": 1, "period_unit": "week", "start": "2025-03-03", **schedule}}


BP = {"id": "m-new", "patient_id": "p01", "kind": "blood-pressure", "unit": "mm[Hg]",
      "effective": "2025-03-03T09:45:00-05:00"}

# Numbers: a string, a boolean, a fraction where a whole number is meant, or a value outside
# the field's range (fhir_bridge/model/ranges.py, docs/model.md "Numbers").
BAD_NUMBERS = [
    ("dose of 1e300", "prescriptions", rx(dose={"value": 1e300, "unit": "mg"}), ["dose.value"]),
    ("dose of 2e19", "prescriptions", rx(dose={"value": 2e19, "unit": "mg"}), ["dose.value"]),
    ("dose of 20000000000000000000", "prescriptions",
     rx(dose={"value": 20000000000000000000, "unit": "mg"}), ["dose.value"]),
    ("dose of 1e-320", "prescriptions", rx(dose={"value": 1e-320, "unit": "mg"}),
     ["dose.value"]),
    ("dose as the string 50", "prescriptions", rx(dose={"value": "50", "unit": "mg"}),
     ["dose.value"]),
    ("dose as true", "prescriptions", rx(dose={"value": True, "unit": "mg"}), ["dose.value"]),
    ("frequency 1.5", "prescriptions", rx(frequency=1.5), ["frequency"]),
    ("frequency as the string 2", "prescriptions", rx(frequency="2"), ["frequency"]),
    ("frequency 2e19", "prescriptions", rx(frequency=2e19), ["frequency"]),
    ("period 0", "prescriptions", rx(period=0), ["period"]),
    ("refills as the string 1", "prescriptions", rx(refills="1"), ["refills"]),
    ("days supply 1e300", "prescriptions", rx(days_supply=1e300), ["days_supply"]),
    ("dispense quantity 1e300", "prescriptions",
     rx(quantity={"value": 1e300, "unit": "tablet"}), ["quantity.value"]),
    ("as_needed as the string yes", "prescriptions", rx(as_needed="yes"), ["as_needed"]),
    ("measurement value 1e300", "measurements", record("measurements", id="m-new", value=1e300),
     ["value"]),
    ("measurement value as a string", "measurements",
     record("measurements", id="m-new", value="68.4"), ["value"]),
    ("negative measurement value", "measurements",
     record("measurements", id="m-new", value=-1), ["value"]),
    ("blood pressure components 1e300 and a string", "measurements",
     dict(BP, components=[{"name": "systolic", "value": 1e300},
                          {"name": "diastolic", "value": "80"}]),
     ["components[0].value", "components[1].value"]),
    ("PHQ-9 answer 1.5", "assessments", record("assessments", id="a-new", items=[
        {"number": n, "value": 1.5 if n == 1 else 1} for n in range(1, 10)]),
     ["items[0].value"]),
    ("PHQ-9 item number as a string", "assessments", record("assessments", id="a-new", items=[
        {"number": "1" if n == 1 else n, "value": 1} for n in range(1, 10)]),
     ["items[0].number"]),
    ("assessment total 2e19", "assessments", record("assessments", id="a-new", total=2e19),
     ["total"]),
    ("adherence doses taken 26.5", "adherence-reports",
     record("adherence-reports", id="ad-new", doses_taken=26.5), ["doses_taken"]),
    ("adherence percent as a string", "adherence-reports",
     record("adherence-reports", id="ad-new", doses_prescribed=DELETE, doses_taken=DELETE,
            proportion_percent="90"), ["proportion_percent"]),
    ("refill days supply 2e19", "adherence-reports",
     record("adherence-reports", id="ad-new", source="refill-data", doses_prescribed=DELETE,
            doses_taken=DELETE, fills=[{"date": "2025-03-03", "days_supply": 2e19}]),
     ["fills[0].days_supply"]),
    ("goal target 1e300", "care-plans", plan_with(goals=[
        {"id": "g-new", "description": "Remission", "status": "active",
         "target": {"measure": "phq-9", "value": 1e300}}]), ["goals[0].target.value"]),
    ("schedule frequency 1.5 and period as a string", "care-plans",
     plan_with(activities=[lifestyle(frequency=1.5, period="1")]),
     ["activities[0].schedule.frequency", "activities[0].schedule.period"]),
]

PATIENT = P01["patients"][0]


def patient(**changes):
    return {**copy.deepcopy(PATIENT), "id": "px", **changes}


# Text: no NUL or other control characters (free text may hold tab and line breaks; names,
# ids and codes may not), and no text of spaces only.
BAD_TEXT = [
    ("NUL in a family name", "patients",
     patient(name={"family": "Test\x00person", "given": ["Avery"]}), ["name.family"]),
    ("NUL in a note", "side-effects", record("side-effects", id="se-new", note="Resolved\x00"),
     ["note"]),
    ("a bell character in a description", "diagnoses",
     record("diagnoses", id="dx-new", description="Major\x07 depressive disorder"),
     ["description"]),
    ("a C1 control character in an MRN", "patients", patient(mrn="SYN-\x85"), ["mrn"]),
    ("escape in a free-text field", "prescriptions", rx(sig="Take\x1b[31m one"), ["sig"]),
    ("a tab in a family name", "patients",
     patient(name={"family": "Test\tperson", "given": ["Avery"]}), ["name.family"]),
    ("a line break in a given name", "patients",
     patient(name={"family": "Testperson", "given": ["Avery\n"]}), ["name.given[0]"]),
    ("a line break at the end of an id", "patients", patient(id="px\n"), ["id"]),
    ("a line break at the end of a phone number", "patients", patient(phone="555-0101\n"),
     ["phone"]),
    ("NUL in a key", "patients", {**patient(), "shoe\x00size": 9}, ["shoe\x00size"]),
    ("a family name of spaces", "patients", patient(name={"family": "   ", "given": ["A"]}),
     ["name.family"]),
    ("a given name of spaces", "patients",
     patient(name={"family": "Testperson", "given": [" \u00a0 "]}), ["name.given[0]"]),
    ("an MRN of spaces", "patients", patient(mrn="  "), ["mrn"]),
    ("a phone number of spaces", "patients", patient(phone=" " * 8), ["phone"]),
    ("a plan title of spaces", "care-plans", plan_with(title="  "), ["title"]),
    ("a diagnosis description of line breaks", "diagnoses",
     record("diagnoses", id="dx-new", description="\n\n"), ["description"]),
]


ALL_BAD = BAD_RECORDS + BAD_NUMBERS + BAD_TEXT


@pytest.mark.parametrize("name,collection,body,fields", ALL_BAD,
                         ids=[case[0] for case in ALL_BAD])
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


def test_free_text_keeps_tabs_and_line_breaks(loaded_client):
    note = "Resolved by week 2.\n\tNo further nausea.\r\n"
    response = loaded_client.post("/api/v1/side-effects",
                                  json=record("side-effects", id="se-new", note=note))
    assert response.status_code == 201, response.json
    assert loaded_client.get("/api/v1/side-effects/se-new").json["note"] == note


def test_a_whole_number_written_with_a_decimal_point_is_that_number(loaded_client):
    response = loaded_client.post("/api/v1/prescriptions", json=rx(frequency=2.0, refills=1.0))
    assert response.status_code == 201, response.json
    assert (response.json["frequency"], response.json["refills"]) == (2, 1)


@pytest.mark.parametrize("body,fields", [
    (b'{"id": "A", "id": "B"}', ["id"]),
    (b'{"id": "px", "name": {"family": "A", "given": ["B"], "family": "C"}}', ["name.family"]),
], ids=["top level", "nested"])
def test_a_key_given_twice_is_refused_with_400(loaded_client, body, fields):
    before = snapshot(loaded_client.application)
    response = loaded_client.post("/api/v1/patients", data=body,
                                  content_type="application/json")
    assert response.status_code == 400
    assert [i["expression"] for i in response.json["issue"]] == [[f] for f in fields]
    assert snapshot(loaded_client.application) == before


def test_a_document_giving_a_key_twice_stores_nothing(client):
    body = jsonio.dumpb(P01).replace(b'"mrn":"SYN-10001"', b'"mrn":"SYN-10001","mrn":"X"')
    before = snapshot(client.application)
    response = client.post("/api/v1/documents", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["issue"][0]["expression"] == ["patients[0].mrn"]
    assert snapshot(client.application) == before


CHANGE = {"id": "rx-new", "dose": {"value": 150, "unit": "mg"}, "effective_date": "2025-04-28",
          "reason": "PHQ-9 still 10 after 4 weeks", "changed_by_id": "dr-lindqvist",
          "authored_on": "2025-04-28T09:00:00-04:00"}


@pytest.mark.parametrize("path,body,fields", [
    ("dose-changes", dict(CHANGE, effective_date="2025-03-01"), ["effective_date"]),
    ("discontinuation", {"date": "2025-03-01", "reason": "x", "by_id": "dr-lindqvist"},
     ["date"]),
    ("dose-changes", dict(CHANGE, dose={"value": "150", "unit": "mg"}), ["dose.value"]),
    ("dose-changes", dict(CHANGE, frequency=1.5, period=1e300),
     ["frequency", "period"]),
    ("dose-changes", dict(CHANGE, reason=" \t "), ["reason"]),
    ("dose-changes", dict(CHANGE, reason="Titrate\x00"), ["reason"]),
    ("discontinuation", {"date": "2025-06-30", "reason": "   ", "by_id": "dr-lindqvist"},
     ["reason"]),
], ids=["dose change before the prescription starts", "discontinuation before it starts",
        "dose as a string", "fractional frequency and huge period", "reason of spaces",
        "NUL in the reason", "discontinuation reason of spaces"])
def test_bad_prescription_operations_get_422_and_change_nothing(loaded_client, path, body,
                                                                fields):
    before = snapshot(loaded_client.application)
    response = loaded_client.post(f"/api/v1/prescriptions/p01-rx2/{path}", json=body)
    assert response.status_code == 422, response.json
    named = {e for issue in response.json["issue"] for e in issue["expression"]}
    assert set(fields) <= named, named
    assert snapshot(loaded_client.application) == before


# The same record paths and searches that answered 500 on PostgreSQL with %00 in them.
NUL_REQUESTS = [
    ("GET", "/api/v1/patients/p01%00", "(path)"),
    ("PUT", "/api/v1/patients/p01%00", "(path)"),
    ("GET", "/api/v1/patients?patient_id=p01%00", "patient_id"),
    ("GET", "/api/v1/prescriptions?after=%00", "after"),
    ("GET", "/api/v1/patients/p01%00/score-trends", "(path)"),
    ("GET", "/api/v1/prescriptions/p01-rx2%00/fhir", "(path)"),
    ("POST", "/api/v1/prescriptions/p01-rx2%00/dose-changes", "(path)"),
    ("POST", "/api/v1/prescriptions/p01-rx2%00/discontinuation", "(path)"),
    ("GET", "/fhir/Patient/pt-p01%00", "(path)"),
    ("GET", "/fhir/Patient/pt-p01%00/_history", "(path)"),
    ("GET", "/fhir/Patient/pt-p01/_history/1%00", "(path)"),
    ("GET", "/fhir/Patient?_id=pt-p01%00", "_id"),
    ("GET", "/fhir/Patient?family=Test%00person", "family"),
    ("GET", "/fhir/MedicationRequest?patient=Patient/pt-p01%00", "patient"),
    ("GET", "/fhir/Observation?code%00=x", "(query)"),
    ("GET", "/fhir/Patient?name=%C3%28", "name"),
    ("GET", "/api/v1/patients/%FF", "(path)"),
    ("GET", "/api/v1/patients/p01%7F", "(path)"),
]


@pytest.mark.parametrize("method,url,where", NUL_REQUESTS,
                         ids=[f"{m} {u}" for m, u, _ in NUL_REQUESTS])
def test_invalid_bytes_in_path_or_query_answer_400_and_change_nothing(loaded_client, method,
                                                                      url, where):
    before = snapshot(loaded_client.application)
    response = loaded_client.open(url, method=method, json={} if method != "GET" else None)
    assert response.status_code == 400, response.json
    assert [i["expression"] for i in response.json["issue"]] == [[where]]
    assert snapshot(loaded_client.application) == before


def test_every_number_range_is_documented_as_enforced():
    documented = (PROJECT_ROOT / "docs" / "model.md").read_text(encoding="utf-8")
    missing = [row for row in table_rows() if row not in documented]
    assert not missing, "docs/model.md, Numbers, lacks or differs in:\n" + "\n".join(missing)


def test_invalid_bytes_in_a_search_form_answer_400(loaded_client):
    response = loaded_client.post("/fhir/Patient/_search", data="family=Test%00person",
                                  content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400, response.json
    assert [i["expression"] for i in response.json["issue"]] == [["family"]]
