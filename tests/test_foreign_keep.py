"""Foreign resources kept beside their record (foreign_content): what the bridge serves on
/fhir (and pushes) is the sender's resource with the practice's changes, each resource of a
record kept on its own (a panel's items and total), served with the bridge's labels and pushed
back without them, on both databases."""

import json

import sqlalchemy as sa

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.fhir import references
from fhir_bridge.mapping.foreign import as_sent_meta, parse_foreign
from fhir_bridge.model import concept_by_name
from fhir_bridge.store import foreign as foreign_store, tables as t

PRACTITIONER = json.loads((PROJECT_ROOT / "fixtures" / "foreign" /
                           "Practitioner-ehr-prac-1.json").read_text())


def keep_practitioner(app, resource=None):
    bridge = app.extensions["fhir_bridge"]
    resource = dict(resource or PRACTITIONER, id="prac-ehr-prac-1")
    foreign = parse_foreign(bridge.mapper, resource, record_id="ehr-prac-1")
    bridge.store.save([(concept_by_name(foreign.concept), foreign.record)], keep=[foreign],
                      source="test")
    return foreign


def served(client):
    response = client.get("/fhir/Practitioner/prac-ehr-prac-1")
    assert response.status_code == 200, response.json
    body = response.json
    return body, {k: v for k, v in body.items() if k not in ("meta", "id")}


def test_the_served_resource_is_the_senders_with_the_practices_changes(app):
    keep_practitioner(app)
    client = app.test_client()
    _, body = served(client)
    assert body == {k: v for k, v in PRACTITIONER.items() if k != "id"}
    record = client.get("/api/v1/practitioners/ehr-prac-1").json
    record["phone"] = "555-000-1234"
    assert client.put("/api/v1/practitioners/ehr-prac-1", json=record).status_code == 200
    _, body = served(client)
    assert body["telecom"][0] == {"system": "phone", "value": "555-000-1234", "use": "work"}
    assert body["identifier"] == PRACTITIONER["identifier"]  # the NPI, as sent
    assert body["name"] == PRACTITIONER["name"]  # "Dr." and "MD"
    assert body["telecom"][1:] == PRACTITIONER["telecom"][1:]  # the fax, the e-mail


def test_a_change_only_to_what_the_record_cannot_hold_still_changes_the_resource(app):
    keep_practitioner(app)
    client = app.test_client()
    first, _ = served(client)
    changed = json.loads(json.dumps(PRACTITIONER))
    changed["name"][0]["prefix"] = ["Prof."]
    keep_practitioner(app, changed)
    second, body = served(client)
    assert body["name"][0]["prefix"] == ["Prof."]
    assert int(second["meta"]["versionId"]) == int(first["meta"]["versionId"]) + 1
    engine = app.extensions["fhir_bridge"].engine
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.foreign_content)).all()
        versions = conn.execute(sa.select(t.records.c.version).where(
            t.records.c.id == "ehr-prac-1")).scalar()
    assert len(rows) == 1 and json.loads(rows[0].original)["name"][0]["prefix"] == ["Prof."]
    assert versions == 1  # the record itself did not change


def test_a_deleted_record_leaves_nothing_kept_for_a_later_one_of_the_same_id(app):
    keep_practitioner(app)
    bridge = app.extensions["fhir_bridge"]
    concept = concept_by_name("practitioner")
    bridge.store.save([], deletions=[(concept, "ehr-prac-1")], source="test")
    with bridge.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.foreign_content)).scalar() \
            == 0
    bridge.store.save([(concept, {"id": "ehr-prac-1", "name": {"family": "New"}})])
    _, body = served(app.test_client())
    assert "prefix" not in body["name"][0] and body["identifier"][0]["system"] == \
        "urn:fhir-bridge:id:practitioner"


def foreign_fixture(name: str) -> dict:
    return json.loads((PROJECT_ROOT / "fixtures" / "foreign" / f"{name}.json").read_text())


LOCAL = {"Patient/ehr-pat-1": "Patient/pat-ehr-pat-1",
         "Practitioner/ehr-prac-1": "Practitioner/prac-ehr-prac-1"}


def localized(resource: dict, new_id: str) -> dict:
    """As the pull reads it: local id, references to the records already made local."""
    out = json.loads(json.dumps(resource))
    out["id"] = new_id
    references.rewrite(out, lambda ref: LOCAL.get(ref, ref))
    return out


def keep_phq9(app):
    """The PHQ-9 panel with its eleven members (US Core's example, fixtures/foreign/), with
    the patient and practitioner it names."""
    bridge = app.extensions["fhir_bridge"]
    keep_practitioner(app)
    patient = parse_foreign(bridge.mapper, localized(foreign_fixture("Patient-ehr-pat-1"),
                                                     "pat-ehr-pat-1"), record_id="ehr-pat-1")
    bridge.store.save([(concept_by_name("patient"), patient.record)], keep=[patient])
    panel = foreign_fixture("Observation-ehr-phq9-panel")
    members = {m["reference"]: localized(foreign_fixture(f"Observation-{m['reference'][12:]}"),
                                         m["reference"][12:]) for m in panel["hasMember"]}
    foreign = parse_foreign(bridge.mapper, localized(panel, "asmt-ehr-phq9-panel"),
                            resolve=members.get, record_id="ehr-phq9-panel")
    bridge.store.save([(concept_by_name("assessment"), foreign.record)], keep=[foreign])
    return foreign


def as_sent(resource: dict) -> dict:
    """What is compared with the sender's resource: not its id, references or meta."""
    return {k: v for k, v in resource.items()
            if k not in ("id", "meta", "subject", "performer", "hasMember")}


def test_each_resource_of_a_panel_is_kept_as_sent_and_merged_on_every_rendering(app):
    foreign = keep_phq9(app)
    assert len(foreign.members) == 11  # ten items and the total, each paired by its code
    assert {m.sent_id: m.key[1] for m in foreign.members}["ehr-phq9-total"] == \
        "asmt-ehr-phq9-panel.total"
    client = app.test_client()
    for number in range(1, 11):
        served = client.get(f"/fhir/Observation/asmt-ehr-phq9-panel.item-{number}").json
        sent = foreign_fixture(f"Observation-ehr-phq9-item-{number}")
        assert as_sent(served) == as_sent(sent), number
    total = client.get("/fhir/Observation/asmt-ehr-phq9-panel.total").json
    assert total["valueString"] == "12" and "valueQuantity" not in total
    record = client.get("/api/v1/assessments/ehr-phq9-panel").json
    record["items"][2]["value"] = 1  # "Several days"
    for derived in ("total", "band"):
        record.pop(derived)
    assert client.put("/api/v1/assessments/ehr-phq9-panel", json=record).status_code == 200
    item = client.get("/fhir/Observation/asmt-ehr-phq9-panel.item-3").json
    assert item["valueCodeableConcept"]["coding"][0]["code"] == "LA6569-3"
    assert item["category"] == foreign_fixture("Observation-ehr-phq9-item-3")["category"]
    total = client.get("/fhir/Observation/asmt-ehr-phq9-panel.total").json
    assert total["valueString"] == "11" and "valueQuantity" not in total  # the sender's type
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        kept = conn.execute(sa.select(sa.func.count()).select_from(t.foreign_content).where(
            t.foreign_content.c.record_id == "ehr-phq9-panel")).scalar()
    assert kept == 12


def test_served_copies_carry_the_bridges_labels_and_go_back_without_them(app):
    foreign = keep_phq9(app)
    client = app.test_client()
    patient = client.get("/fhir/Patient/pat-ehr-pat-1").json  # sent without meta
    assert [s["code"] for s in patient["meta"]["security"]] == ["PSY", "R"]
    assert patient["meta"]["profile"] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]
    item = client.get("/fhir/Observation/asmt-ehr-phq9-panel.item-1").json
    assert [s["code"] for s in item["meta"]["security"]] == ["PSY", "R"]
    sent = foreign.members[0].kept
    back = as_sent_meta(json.loads(json.dumps(item)), sent)
    assert {k: v for k, v in back["meta"].items() if k in ("profile", "security")} == \
        sent.original["meta"]  # the sender's versioned profile claim, no labels
    bridge = app.extensions["fhir_bridge"]
    with bridge.engine.connect() as conn:
        kept_patient = foreign_store.stored(conn, [("Patient", "pat-ehr-pat-1")])[
            ("Patient", "pat-ehr-pat-1")]
    back = as_sent_meta(json.loads(json.dumps(patient)), kept_patient)
    assert set(back["meta"]) == {"versionId", "lastUpdated"}  # the server's own, nothing else
