"""FHIR writes on /fhir, one resource at a time: create, update with If-Match, conditional
create and update, delete where the record allows it, $validate, bad input, SMART write
scopes and the patient context, audit and the CapabilityStatement. Every write becomes the
same internal record the pull makes of the same resource (its parser, parse_foreign), through
the records' save path: safety checks, outbox, audit."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from fhir_bridge.store import tables as t

from .conftest import FIXTURES, read_json, snapshot, token_for
from .fhir_write_support import (FHIR_JSON, bridge_resources, dumps, foreign_resources,
                                 is_panel_part, localized, outbox_rows, pull_parse,
                                 second_ssri, served_key, stored_record)

P01 = FIXTURES / "internal" / "p01-depression-ssri-titration.json"
P02 = FIXTURES / "internal" / "p02-bipolar-lithium.json"
#: p01's resources a client can send one at a time (panels and plans need their parts, see
#: test_fhir_transaction.py).
SINGLE = ["Patient/pat-p01", "Practitioner/prac-dr-lindqvist", "Practitioner/prac-th-okafor",
          "Practitioner/prac-pcp-reyes", "Condition/cond-p01-dx1",
          "MedicationRequest/rx-p01-rx1", "MedicationRequest/rx-p01-rx2",
          "Observation/se-p01-se1", "Observation/adh-p01-adh1", "Observation/meas-p01-wt1",
          "CareTeam/ct-p01-team"]


def post(client, path: str, body, **headers):
    return client.post(f"/fhir/{path}", data=dumps(body), headers={**FHIR_JSON, **headers})


def put(client, path: str, body, **headers):
    return client.put(f"/fhir/{path}", data=dumps(body), headers={**FHIR_JSON, **headers})


def load(client, *documents):
    for path in documents:
        assert client.post("/api/v1/documents", json=read_json(path)).status_code == 200


def new_ssri(resources: dict) -> dict:
    """A second active SSRI for p01 (fluoxetine beside sertraline): a duplicate therapy."""
    rx = dict(resources["MedicationRequest/rx-p01-rx2"])
    for key in ("id", "identifier", "priorPrescription", "extension", "note"):
        rx.pop(key, None)
    rx["medicationCodeableConcept"] = {"coding": [{
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "4493",
        "display": "fluoxetine"}], "text": "fluoxetine"}
    return rx


# -- the same records as the pull ------------------------------------------------------------

def test_each_resource_posted_is_stored_as_the_record_the_pull_makes_of_it(app, client):
    resources = bridge_resources()
    for key in SINGLE:
        response = post(client, key.split("/")[0], resources[key])
        assert response.status_code == 201, (key, response.json)
        assert served_key(response.headers["Location"]) == key  # the bridge's identifier
        assert response.headers["Location"].endswith("/_history/1")
        assert response.headers["ETag"] == 'W/"1"'
        concept, record = pull_parse(app, {**resources[key], "id": key.split("/")[1]},
                                     resolve=resources.get)
        assert stored_record(app, concept, record["id"]) == record, key
        assert outbox_rows(app, *key.split("/")) == ["upsert"]


def test_foreign_ehr_resources_posted_one_by_one_are_the_records_the_pull_makes(app, client):
    ids: dict[str, str] = {}
    for original in foreign_resources():
        if original["resourceType"] == "CarePlan" or is_panel_part(original):
            continue  # parts come with what they belong to, in a transaction
        resource = localized(original, ids)
        response = post(client, original["resourceType"], resource,
                        Prefer="return=OperationOutcome")
        assert response.status_code == 201, (original["id"], response.json)
        key = served_key(response.headers["Location"])
        ids[f"{original['resourceType']}/{original['id']}"] = key
        concept, record = pull_parse(app, {**resource, "id": key.split("/")[1]})
        assert stored_record(app, concept, record["id"]) == record, key
        outcome = response.json
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][-1]["diagnostics"] == f"{key} created"
    patient = client.get(f"/fhir/{ids['Patient/ehr-pat-1']}").json  # sent without meta
    assert "PSY" in [label["code"] for label in patient["meta"]["security"]]
    assert patient["meta"]["profile"] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]
    practitioner = client.get(f"/fhir/{ids['Practitioner/ehr-prac-1']}").json
    assert {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"} in [
        {k: i[k] for k in ("system", "value")} for i in practitioner["identifier"]]
    second = post(client, "MedicationRequest", localized(second_ssri(), ids),
                  Prefer="return=OperationOutcome")  # the EHR orders fluoxetine beside it
    assert second.status_code == 201, second.json
    assert "duplicate.ssri" in [i["details"]["coding"][0]["code"] for i in
                                second.json["issue"] if i["severity"] == "warning"]
    assert any(i["severity"] == "information" and i.get("expression") == [  # kept as sent
        "MedicationRequest.identifier[0].system"] for i in second.json["issue"])


def test_an_item_of_a_foreign_panel_alone_is_refused_and_named(client):
    item = next(r for r in foreign_resources() if r["id"] == "ehr-phq9-item-1")
    response = post(client, "Observation", item)
    assert response.status_code == 422
    assert response.json["issue"][0]["expression"] == ["Observation.code"]
    assert "can store on its own" in response.json["issue"][0]["diagnostics"]


# -- create -----------------------------------------------------------------------------------

def test_a_duplicate_ssri_is_created_with_its_safety_warning_in_an_operation_outcome(app,
                                                                                      client):
    load(client, P01)
    created = post(client, "MedicationRequest", new_ssri(bridge_resources()))
    assert created.status_code == 201, created.json
    assert created.json["resourceType"] == "MedicationRequest"
    outcome = json.loads(created.headers["X-FHIR-Outcome"])
    rules = [i["details"]["coding"][0]["code"] for i in outcome["issue"]
             if i["severity"] == "warning"]
    assert "duplicate.ssri" in rules
    asked = post(client, "MedicationRequest", new_ssri(bridge_resources()),
                 Prefer="return=OperationOutcome")
    assert asked.status_code == 201
    assert "duplicate.ssri" in [i["details"]["coding"][0]["code"]
                                for i in asked.json["issue"] if i["severity"] == "warning"]
    minimal = post(client, "MedicationRequest", new_ssri(bridge_resources()),
                   Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.data == b""
    assert "X-FHIR-Outcome" in minimal.headers
    issues = client.get("/fhir/DetectedIssue?patient=pat-p01").json
    assert any(served_key(created.headers["Location"]) in [i["reference"] for i in
               e["resource"].get("implicated", [])] for e in issues.get("entry", []))


def test_a_write_is_audited_as_the_api_audits_it(app, client):
    load(client, P01)
    created = post(client, "Observation", {**bridge_resources()["Observation/se-p01-se1"],
                                           "identifier": []})
    key = served_key(created.headers["Location"])
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        rows = conn.execute(sa.select(t.audit_events.c.action, t.audit_events.c.subtype,
                                      t.audit_events.c.content)
                            .where(t.audit_events.c.action == "C")).all()
    assert any(r.subtype == "create" and key in r.content for r in rows)


def test_a_write_reaches_the_subscriptions_that_follow_it(database_url):
    from .subscription_support import make_app, subscribe, topic_subscription

    app = make_app(database_url)
    try:
        client = app.test_client()
        load(client, P01)
        sub = subscribe(client, topic_subscription("http://127.0.0.1:9/hook"))
        created = post(client, "MedicationRequest", new_ssri(bridge_resources()))
        assert created.status_code == 201
        with app.extensions["fhir_bridge"].engine.connect() as conn:
            events = conn.execute(sa.select(t.subscription_events.c.focus_type,
                                            t.subscription_events.c.focus_id,
                                            t.subscription_events.c.operation).where(
                t.subscription_events.c.subscription_id == sub["id"])).all()
        key = served_key(created.headers["Location"]).split("/")
        assert (key[0], key[1], "create") in [tuple(e) for e in events]
    finally:
        app.extensions["fhir_bridge"].engine.dispose()


# -- update -----------------------------------------------------------------------------------

def test_an_update_needs_the_current_version_in_if_match_or_gets_412(app, client):
    load(client, P01)
    current = client.get("/fhir/MedicationRequest/rx-p01-rx2")
    body = {**current.json, "note": [{"text": "Take with food"}]}
    version = current.headers["ETag"]
    updated = put(client, "MedicationRequest/rx-p01-rx2", body, **{"If-Match": version})
    assert updated.status_code == 200, updated.json
    assert updated.headers["ETag"] != version
    before = snapshot(app)
    stale = put(client, "MedicationRequest/rx-p01-rx2", body, **{"If-Match": version})
    assert stale.status_code == 412
    assert stale.json["issue"][0]["expression"] == ["If-Match"]
    assert snapshot(app) == before
    without = put(client, "MedicationRequest/rx-p01-rx2", body)
    assert without.status_code == 200


@pytest.mark.parametrize("path, change, status, where", [
    ("MedicationRequest/rx-p01-rx2", {"id": "rx-p01-rx1"}, 400, "MedicationRequest.id"),
    ("MedicationRequest/rx-nobody", {"id": "rx-nobody"}, 404, "(id)"),
    ("Goal/goal-p01-goal-sleep", {"resourceType": "Goal", "id": "goal-p01-goal-sleep"}, 405,
     "(type)"),
    ("Observation/asmt-p01-phq9-w0.item-1", None, 405, "(id)"),
    ("Observation/meas-p01-wt1", "side-effect", 422, "Observation.code"),
])
def test_an_update_that_cannot_be_made_says_why_and_changes_nothing(sqlite_app, path, change,
                                                                    status, where):
    client = sqlite_app.test_client()
    load(client, P01)
    if change == "side-effect":
        body = {**client.get("/fhir/Observation/se-p01-se1").json, "id": "meas-p01-wt1"}
    elif change is None:
        body = client.get(f"/fhir/{path}").json
    else:
        body = {**client.get("/fhir/MedicationRequest/rx-p01-rx2").json, **change}
    before = snapshot(sqlite_app)
    response = put(client, path, body)
    assert response.status_code == status, response.json
    assert response.json["issue"][0]["expression"] == [where]
    assert snapshot(sqlite_app) == before


# -- conditional create and update ------------------------------------------------------------

MRN = "identifier=urn:fhir-bridge:id:mrn|SYN-10001"


def test_if_none_exist_answers_the_one_match_creates_for_none_and_refuses_several(app,
                                                                                  client):
    load(client, P01)
    patient = bridge_resources()["Patient/pat-p01"]
    before = snapshot(app)
    found = post(client, "Patient", {**patient, "identifier": patient["identifier"][1:]},
                 **{"If-None-Exist": MRN})
    assert found.status_code == 200
    assert found.json["id"] == "pat-p01"
    assert snapshot(app) == before
    other = {**patient, "identifier": [{"system": "urn:fhir-bridge:id:mrn",
                                        "value": "SYN-10099"}]}
    made = post(client, "Patient", other,
                **{"If-None-Exist": "identifier=urn:fhir-bridge:id:mrn|SYN-10099"})
    assert made.status_code == 201
    several = post(client, "MedicationRequest", new_ssri(bridge_resources()),
                   **{"If-None-Exist": "patient=pat-p01"})
    assert several.status_code == 412
    assert several.json["issue"][0]["expression"] == ["If-None-Exist"]


def test_a_conditional_update_by_identifier_updates_the_match_or_creates(app, client):
    load(client, P01)
    patient = client.get("/fhir/Patient/pat-p01").json
    patient.pop("id")
    patient["telecom"] = [{"system": "phone", "value": "555-0199"}]
    updated = put(client, f"Patient?{MRN}", patient)
    assert updated.status_code == 200, updated.json
    assert served_key(updated.headers["Location"]) == "Patient/pat-p01"
    assert stored_record(app, "patient", "p01")["phone"] == "555-0199"
    new = {**patient, "identifier": [{"system": "urn:fhir-bridge:id:mrn",
                                      "value": "SYN-10077"}]}
    created = put(client, "Patient?identifier=urn:fhir-bridge:id:mrn|SYN-10077", new)
    assert created.status_code == 201
    assert put(client, "MedicationRequest?patient=pat-p01",
               new_ssri(bridge_resources())).status_code == 412


# -- delete -----------------------------------------------------------------------------------

def test_delete_removes_a_record_nothing_names_and_refuses_the_others_with_the_reason(app,
                                                                                     client):
    load(client, P01)
    gone = client.delete("/fhir/Observation/se-p01-se1")
    assert gone.status_code == 204
    assert client.get("/fhir/Observation/se-p01-se1").status_code == 410
    assert stored_record(app, "side-effect", "p01-se1") is None
    assert outbox_rows(app, "Observation", "se-p01-se1")[-1] == "delete"
    history = client.get("/fhir/Observation/se-p01-se1/_history").json
    assert history["entry"][0]["request"]["method"] == "DELETE"
    assert client.delete("/fhir/Observation/se-p01-se1").status_code == 204  # idempotent
    before = snapshot(app)
    named = client.delete("/fhir/CareTeam/ct-p01-team")
    assert named.status_code == 409
    assert "care-plan p01-plan: care_team_id" in named.json["issue"][0]["expression"]
    for path in ("Patient/pat-p01", "MedicationRequest/rx-p01-rx2",
                 "Observation/asmt-p01-phq9-w0", "DetectedIssue/x"):
        refused = client.delete(f"/fhir/{path}")
        assert refused.status_code == 405, path
        assert refused.json["issue"][0]["code"] == "not-supported"
    assert snapshot(app) == before


def test_a_deleted_resource_can_be_written_again(sqlite_app):
    client = sqlite_app.test_client()
    load(client, P01)
    body = client.get("/fhir/Observation/se-p01-se1").json
    assert client.delete("/fhir/Observation/se-p01-se1").status_code == 204
    again = put(client, "Observation/se-p01-se1", body)
    assert again.status_code == 201
    assert again.headers["ETag"] == 'W/"3"'


# -- $validate ------------------------------------------------------------------------------

def test_validate_answers_an_operation_outcome_and_never_stores(app, client):
    load(client, P01)
    before = snapshot(app)
    fine = post(client, "Observation/$validate", bridge_resources()["Observation/se-p01-se1"])
    assert fine.status_code == 200
    assert [i["severity"] for i in fine.json["issue"]] == ["information"]
    bad = post(client, "Observation/$validate",
               {**bridge_resources()["Observation/se-p01-se1"], "status": "bogus"})
    assert bad.status_code == 200
    assert bad.json["issue"][0]["severity"] == "error"
    assert bad.json["issue"][0]["expression"] == ["Observation.status"]
    warned = post(client, "MedicationRequest/$validate",
                  {"resourceType": "Parameters", "parameter": [
                      {"name": "resource", "resource": new_ssri(bridge_resources())}]})
    assert "duplicate.ssri" in [i["details"]["coding"][0]["code"] for i in
                                warned.json["issue"] if i["severity"] == "warning"]
    assert snapshot(app) == before


# -- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("body, status, where", [
    (b"{not json", 400, None),
    ({"resourceType": "Patient"}, 422, "resourceType"),
    ("status", 422, "MedicationRequest.status"),
    ("subject", 422, "MedicationRequest.subject"),
    ("requester", 422, "MedicationRequest.requester"),
])
def test_bad_input_is_a_4xx_outcome_naming_the_element_and_stores_nothing(sqlite_app, body,
                                                                          status, where):
    client = sqlite_app.test_client()
    load(client, P01)
    rx = new_ssri(bridge_resources())
    if body == "status":
        body = {**rx, "status": "bogus"}
    elif body == "subject":
        body = {**rx, "subject": {"reference": "Patient/pat-nobody"}}
    elif body == "requester":
        body = {**rx, "requester": {"reference": "Patient/pat-p01"}, "reportedBoolean": True}
    before = snapshot(sqlite_app)
    response = client.post("/fhir/MedicationRequest", headers=FHIR_JSON,
                           data=body if isinstance(body, bytes) else dumps(body))
    assert response.status_code == status, response.json
    assert response.json["resourceType"] == "OperationOutcome"
    if where:
        assert where in [e for i in response.json["issue"] for e in i["expression"]]
    assert snapshot(sqlite_app) == before


# -- SMART write scopes --------------------------------------------------------------------------

@pytest.mark.parametrize("scopes, allowed", [
    (("system/MedicationRequest.rs",), set()),
    (("system/MedicationRequest.c",), {"create"}),
    (("system/MedicationRequest.u",), {"update"}),
    (("system/MedicationRequest.cu",), {"create", "update"}),
    (("system/MedicationRequest.write",), {"create", "update"}),
    (("system/Observation.d",), {"delete"}),
    (("system/Observation.write",), {"delete"}),
    (("user/*.cud",), {"create", "update", "delete"}),
])
def test_write_scopes_allow_create_update_and_delete_by_letter(sqlite_app, scopes, allowed):
    client = sqlite_app.test_client()
    load(client, P01)
    auth = {"Authorization": "Bearer " + token_for(sqlite_app, *scopes)}
    rx = client.get("/fhir/MedicationRequest/rx-p01-rx2").json
    answers = {
        "create": post(client, "MedicationRequest", new_ssri(bridge_resources()), **auth),
        "update": put(client, "MedicationRequest/rx-p01-rx2", rx, **auth),
        "delete": client.delete("/fhir/Observation/se-p01-se1", headers=auth)}
    for name, response in answers.items():
        assert (response.status_code < 300) == (name in allowed), (name, response.json)
        if name not in allowed:
            assert response.status_code == 403


def test_a_patient_token_writes_only_its_own_patients_resources(sqlite_app):
    client = sqlite_app.test_client()
    load(client, P01, P02)
    auth = {"Authorization": "Bearer " + token_for(sqlite_app, "patient/Observation.cruds",
                                                   patient="pat-p01")}
    mine = {**bridge_resources()["Observation/se-p01-se1"], "identifier": []}
    assert post(client, "Observation", mine, **auth).status_code == 201
    theirs = {**mine, "subject": {"reference": "Patient/pat-p02"},
              "performer": [{"reference": "Patient/pat-p02"}]}
    theirs.pop("focus")
    before = snapshot(sqlite_app)
    assert post(client, "Observation", theirs, **auth).status_code == 403
    p02_effect = client.get("/fhir/Observation?patient=pat-p02&code=medication-side-effect"
                            ).json["entry"][0]["resource"]["id"]
    assert client.delete(f"/fhir/Observation/{p02_effect}", headers=auth).status_code == 404
    assert snapshot(sqlite_app) == before


# -- what the server says it does ------------------------------------------------------------

def test_the_capability_statement_lists_exactly_the_writes_served(sqlite_app):
    statement = sqlite_app.test_client().get("/fhir/metadata").json
    rest = statement["rest"][0]
    assert {"transaction", "batch"} <= {i["code"] for i in rest["interaction"]}
    by_type = {r["type"]: r for r in rest["resource"]}
    codes = {rtype: {i["code"] for i in r["interaction"]} for rtype, r in by_type.items()}
    for rtype in ("Patient", "MedicationRequest"):
        assert {"create", "update"} <= codes[rtype] and "delete" not in codes[rtype]
    for rtype in ("Observation", "CarePlan", "CareTeam", "Condition", "RelatedPerson",
                  "Practitioner"):
        assert {"create", "update", "delete"} <= codes[rtype], rtype
    for rtype in ("Goal", "Flag", "DetectedIssue", "Provenance", "AuditEvent"):
        assert not {"create", "update", "delete"} & codes[rtype], rtype
        assert "operation" not in by_type[rtype]
    assert by_type["Patient"]["conditionalCreate"] is True
    assert by_type["Patient"]["conditionalUpdate"] is True
    assert by_type["Patient"]["updateCreate"] is False
    assert by_type["Patient"]["operation"][0]["name"] == "validate"
