"""Foreign resources kept beside their record (foreign_content): what the bridge serves on
/fhir (and pushes) is the sender's resource with the practice's changes, on both databases."""

import json

import sqlalchemy as sa

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.mapping.foreign import parse_foreign
from fhir_bridge.model import concept_by_name
from fhir_bridge.store import tables as t

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
