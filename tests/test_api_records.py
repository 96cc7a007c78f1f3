"""The internal JSON API: create, read, update, list; dose changes and discontinuations."""

import pytest

from .conftest import FIXTURES, read_json, snapshot

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")


def test_health_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"


def test_every_concept_can_be_created_read_updated_and_listed(client):
    for collection, records in P01.items():
        for record in records:
            response = client.post(f"/api/v1/{collection}", json=record)
            assert response.status_code == 201, (collection, response.json)
            assert response.headers["Location"] == f"/api/v1/{collection}/{record['id']}"
            assert response.headers["ETag"] == 'W/"1"'
    for collection, records in P01.items():
        listed = client.get(f"/api/v1/{collection}").json["items"]
        assert {r["id"] for r in listed} == {r["id"] for r in records}
        first = client.get(f"/api/v1/{collection}/{records[0]['id']}")
        assert first.status_code == 200
        assert first.json["id"] == records[0]["id"]
    note = dict(P01["diagnoses"][0], note="Sleep improving")
    updated = client.put(f"/api/v1/diagnoses/{note['id']}", json=note,
                         headers={"If-Match": 'W/"1"'})
    assert updated.status_code == 200
    assert updated.headers["ETag"] == 'W/"2"'
    assert client.get(f"/api/v1/diagnoses/{note['id']}").json["note"] == "Sleep improving"


def test_a_conditional_read_answers_304_when_nothing_changed(loaded_client):
    first = loaded_client.get("/api/v1/patients/p01")
    again = loaded_client.get("/api/v1/patients/p01",
                              headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_an_update_against_a_stale_version_is_refused(loaded_client):
    record = dict(P01["diagnoses"][0], note="first")
    assert loaded_client.put("/api/v1/diagnoses/p01-dx1", json=record).status_code == 200
    stale = loaded_client.put("/api/v1/diagnoses/p01-dx1", json=dict(record, note="second"),
                              headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 409
    assert stale.json["resourceType"] == "OperationOutcome"


def test_lists_page_with_a_next_link_and_filter_by_patient(loaded_client):
    page = loaded_client.get("/api/v1/assessments?limit=2&patient_id=p01").json
    assert len(page["items"]) == 2 and page["next"]
    rest = loaded_client.get(page["next"]).json
    assert [r["id"] for r in rest["items"]] == ["p01-phq9-w4"]
    assert rest["next"] is None
    assert loaded_client.get("/api/v1/assessments?patient_id=nobody").json["items"] == []


def test_a_dose_change_makes_a_new_prescription_and_stops_the_old_one(loaded_client):
    change = {"id": "p01-rx3", "dose": {"value": 150, "unit": "mg"},
              "effective_date": "2025-04-28", "reason": "PHQ-9 still 10 after 4 weeks",
              "changed_by_id": "dr-lindqvist", "authored_on": "2025-04-28T09:00:00-04:00",
              "product": "sertraline 150 mg (100 mg + 50 mg tablets)"}
    response = loaded_client.post("/api/v1/prescriptions/p01-rx2/dose-changes", json=change)
    assert response.status_code == 201, response.json
    new = response.json
    assert (new["prior_prescription_id"], new["dose"], new["status"], new["start_date"]) == \
        ("p01-rx2", {"value": 150.0, "unit": "mg"}, "active", "2025-04-28")
    assert new["drug"] == "sertraline" and new["indication_diagnosis_id"] == "p01-dx1"
    assert new["product"] == change["product"]
    assert "sig" not in new  # "Take 1 tablet" described the old strength
    old = loaded_client.get("/api/v1/prescriptions/p01-rx2").json
    assert (old["status"], old["end_date"]) == ("stopped", "2025-04-28")
    fhir = loaded_client.get("/api/v1/prescriptions/p01-rx3/fhir").json
    request = fhir["entry"][0]["resource"]
    assert request["priorPrescription"] == {"reference": "MedicationRequest/rx-p01-rx2"}
    again = loaded_client.post("/api/v1/prescriptions/p01-rx2/dose-changes",
                               json=dict(change, id="p01-rx4"))
    assert again.status_code == 409  # a stopped prescription cannot change again


def test_after_a_dose_change_the_care_plan_names_the_new_prescription(loaded_client):
    change = {"id": "p01-rx3", "dose": {"value": 150, "unit": "mg"},
              "effective_date": "2025-04-28", "reason": "PHQ-9 still 10 after 4 weeks",
              "changed_by_id": "dr-lindqvist", "authored_on": "2025-04-28T09:00:00-04:00"}
    assert loaded_client.post("/api/v1/prescriptions/p01-rx2/dose-changes",
                              json=change).status_code == 201
    plan = loaded_client.get("/api/v1/care-plans/p01-plan").json
    assert [a["prescription_id"] for a in plan["activities"] if a["kind"] == "medication"] \
        == ["p01-rx3"]
    fhir = loaded_client.get("/fhir/CarePlan/cp-p01-plan").json
    assert {"reference": "MedicationRequest/rx-p01-rx3"} in [
        a["reference"] for a in fhir["activity"] if "reference" in a]


def test_a_discontinuation_stops_the_prescription_with_when_why_and_who(loaded_client):
    response = loaded_client.post("/api/v1/prescriptions/p01-rx2/discontinuation", json={
        "date": "2025-05-10", "reason": "Patient preference after remission",
        "by_id": "dr-lindqvist"})
    assert response.status_code == 200, response.json
    assert response.json["status"] == "stopped"
    assert response.json["discontinuation"]["by_id"] == "dr-lindqvist"
    fhir = loaded_client.get("/api/v1/prescriptions/p01-rx2/fhir").json["entry"][0]["resource"]
    assert fhir["status"] == "stopped"
    assert fhir["statusReason"] == {"text": "Patient preference after remission"}


def test_a_repeated_post_with_the_same_idempotency_key_is_answered_once(loaded_client):
    change = {"id": "p01-rx9", "dose": {"value": 75, "unit": "mg"},
              "effective_date": "2025-04-20", "reason": "Nausea at 100 mg",
              "changed_by_id": "dr-lindqvist", "authored_on": "2025-04-20T09:00:00-04:00"}
    headers = {"Idempotency-Key": "abc-123"}
    first = loaded_client.post("/api/v1/prescriptions/p01-rx2/dose-changes", json=change,
                               headers=headers)
    second = loaded_client.post("/api/v1/prescriptions/p01-rx2/dose-changes", json=change,
                                headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json == first.json
    assert len(loaded_client.get("/api/v1/prescriptions").json["items"]) == 3
    other = loaded_client.post("/api/v1/prescriptions/p01-rx2/dose-changes",
                               json=dict(change, reason="else"), headers=headers)
    assert other.status_code == 422
    assert other.json["issue"][0]["expression"] == ["Idempotency-Key"]


def test_an_idempotency_key_over_200_characters_is_a_bad_request_naming_the_header(
        loaded_client, app):
    before = snapshot(app)
    response = loaded_client.post("/api/v1/patients", json=dict(P01["patients"][0], id="p99"),
                                  headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 400
    assert response.json["resourceType"] == "OperationOutcome"
    assert response.json["issue"][0]["expression"] == ["Idempotency-Key"]
    assert snapshot(app) == before
    accepted = loaded_client.post("/api/v1/patients", json=dict(P01["patients"][0], id="p99"),
                                  headers={"Idempotency-Key": "k" * 200})
    assert accepted.status_code == 201


def test_the_openapi_document_is_valid_and_lists_every_collection(client):
    from openapi_spec_validator import validate

    spec = client.get("/api/v1/openapi.json").json
    validate(spec)
    for collection in P01:
        assert f"/api/v1/{collection}" in spec["paths"]
        assert f"/api/v1/{collection}/{{record_id}}" in spec["paths"]
    assert "/api/v1/prescriptions/{record_id}/dose-changes" in spec["paths"]


@pytest.mark.parametrize("collection", sorted(P01))
def test_importing_a_document_twice_creates_no_new_versions(client, collection):
    client.post("/api/v1/documents", json=P01)
    before = snapshot(client.application)
    assert client.post("/api/v1/documents", json=P01).status_code == 200
    assert snapshot(client.application) == before


# --- documents never replace a record changed since --------------------------------------------

DOSE_CHANGE = {"id": "p01-rx3", "dose": {"value": 150, "unit": "mg"},
               "effective_date": "2025-04-28", "reason": "PHQ-9 still 10 after 4 weeks",
               "changed_by_id": "dr-lindqvist", "authored_on": "2025-04-28T09:00:00-04:00"}


def _conflicts(response) -> dict[str, str]:
    return {i["expression"][0]: i["diagnostics"] for i in response.json["issue"]}


def test_reposting_a_document_after_a_dose_change_is_refused_naming_the_records(loaded_client,
                                                                                 app):
    """The intake document still says p01-rx2 is active: importing it again would make the
    replaced prescription active beside its successor."""
    assert loaded_client.post("/api/v1/prescriptions/p01-rx2/dose-changes",
                              json=DOSE_CHANGE).status_code == 201
    before = snapshot(app)
    response = loaded_client.post("/api/v1/documents", json=P01)
    assert response.status_code == 409
    assert response.json["resourceType"] == "OperationOutcome"
    named = _conflicts(response)
    assert "prescriptions[1].version" in named  # p01-rx2
    assert "prescription 'p01-rx2' is at version 2" in named["prescriptions[1].version"]
    assert "prescriptions[0].version" not in named  # p01-rx1 is unchanged: not a conflict
    assert snapshot(app) == before
    assert loaded_client.get("/api/v1/prescriptions/p01-rx2").json["status"] == "stopped"


def test_a_document_that_states_the_version_it_replaces_replaces_it(loaded_client):
    patient = dict(P01["patients"][0], phone="555-0199")
    assert loaded_client.put("/api/v1/patients/p01", json=patient,
                             headers={"If-Match": 'W/"1"'}).status_code == 200
    renamed = dict(P01["patients"][0], phone="555-0142")
    silent = loaded_client.post("/api/v1/documents", json={"patients": [renamed]})
    assert silent.status_code == 409
    assert list(_conflicts(silent)) == ["patients[0].version"]
    stale = loaded_client.post("/api/v1/documents",
                               json={"patients": [dict(renamed, version=1)]})
    assert stale.status_code == 409 and "states version 1" in \
        _conflicts(stale)["patients[0].version"]
    stated = loaded_client.post("/api/v1/documents",
                                json={"patients": [dict(renamed, version=2)]})
    assert stated.status_code == 200, stated.json
    read = loaded_client.get("/api/v1/patients/p01")
    assert (read.json["phone"], read.headers["ETag"]) == ("555-0142", 'W/"3"')
    assert "version" not in read.json
    again = loaded_client.post("/api/v1/documents",  # the same document: a no-op
                               json={"patients": [dict(renamed, version=2)]})
    assert again.status_code == 200
    assert loaded_client.get("/api/v1/patients/p01").headers["ETag"] == 'W/"3"'


def test_a_stated_version_of_a_record_that_does_not_exist_is_a_conflict(client, app):
    before = snapshot(app)
    response = client.post("/api/v1/documents",
                           json={"patients": [dict(P01["patients"][0], version=4)]})
    assert response.status_code == 409
    assert list(_conflicts(response)) == ["patients[0].version"]
    assert snapshot(app) == before


@pytest.mark.parametrize("version", [0, "2", 1.5, True, None])
def test_a_stated_version_is_a_whole_number(client, version):
    response = client.post("/api/v1/documents",
                           json={"patients": [dict(P01["patients"][0], version=version)]})
    assert response.status_code == 422
    assert ["patients[0].version"] in [i["expression"] for i in response.json["issue"]]
