"""Foreign FHIR round trip against the real HAPI: hand-written EHR resources
(fixtures/foreign/, with US Core's PHQ-9 and an AUDIT-C panel with their item Observations)
are loaded into HAPI, pulled, changed in the bridge and pushed back. Each resource on HAPI
afterwards equals the original element by element, except the elements the practice changed;
nothing is refused, and what the internal model cannot hold is noted once per element and
resource (by FHIRPath, with the reason) in the pull report and in sync_notes. What the bridge
serves of them carries its security labels and profile claims; what it pushes back does not
add them."""

import json

import pytest
import requests
import sqlalchemy as sa

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.store import tables as t

from .conftest import hapi_count
from .test_sync_pull_hapi import HEADERS, edit_on_server, make_puller
from .test_sync_push_hapi import make_pusher

pytestmark = pytest.mark.hapi
FOREIGN = PROJECT_ROOT / "fixtures" / "foreign"
#: HAPI's own bookkeeping, not the sender's content
SERVER_ELEMENTS = ("meta.versionId", "meta.lastUpdated", "meta.source")


def foreign_resources() -> dict[str, dict]:
    return {f"{r['resourceType']}/{r['id']}": r
            for r in (json.loads(p.read_text()) for p in sorted(FOREIGN.glob("*.json")))}


def load_into(base: str, resources: dict[str, dict]) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": ref}}
        for ref, r in resources.items()]}
    response = requests.post(base, data=json.dumps(bundle), headers=HEADERS, timeout=120)
    assert response.status_code == 200, response.text


def leaves(value, path=""):
    """Every leaf of a resource as {FHIRPath-like path: value}."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items()
                for k, v in leaves(item, f"{path}.{key}" if path else key).items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value)
                for k, v in leaves(item, f"{path}[{i}]").items()}
    return {path: value}


def differences(before: dict, after: dict) -> set[str]:
    a, b = leaves(before), leaves(after)
    return {p for p in set(a) | set(b) if a.get(p) != b.get(p)
            and not p.startswith(SERVER_ELEMENTS)}


def changed_elements(before: dict, after: dict, elements: set[str]) -> set[str]:
    """Of these elements, those that differ; raises if anything differs outside them."""
    found = differences(before, after)
    outside = {d for d in found if not any(d == e or d.startswith((e + ".", e + "["))
                                           for e in elements)}
    assert not outside, outside
    return {e for e in elements if any(d == e or d.startswith((e + ".", e + "["))
                                       for d in found)}


@pytest.fixture
def pulled(app, hapi_url):
    """On SQLite and PostgreSQL."""
    originals = foreign_resources()
    load_into(hapi_url, originals)
    bridge = app.extensions["fhir_bridge"]
    pusher = make_pusher(bridge, hapi_url)
    report = make_puller(bridge, pusher).pull(patients=["ehr-pat-1"])
    return app, bridge, pusher, hapi_url, originals, report


def test_every_foreign_resource_is_imported_and_nothing_is_refused(pulled):
    app, bridge, pusher, base, originals, report = pulled
    assert report.rejected == 0 and report.reasons == [], report.reasons
    with bridge.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.sync_rejects)).scalar() == 0
    counts = bridge.store.counts()
    for concept in ("patient", "practitioner", "caregiver", "care-team", "care-plan",
                    "prescription", "diagnosis", "measurement"):
        assert counts.get(concept) == 1, (concept, counts)
    assert counts.get("assessment") == 2, counts
    client = app.test_client()
    phq9 = client.get("/api/v1/assessments/ehr-phq9-panel").json
    assert [i["value"] for i in phq9["items"]] == [2, 2, 2, 2, 1, 1, 2, 0, 0, 1]
    assert (phq9["total"], phq9["band"]) == (12, "moderate")
    audit = client.get("/api/v1/assessments/ehr-auditc-panel").json  # items not in its tables
    assert (audit["items"], audit["total"]) == ([], 2)
    assert [m["reference"] for m in audit["unread_members"]] == [
        f"Observation/ehr-auditc-item-{n}" for n in (1, 2, 3)]
    patient = client.get("/api/v1/patients/ehr-pat-1").json
    assert patient["mrn"] == "MRN-40021"
    assert client.get("/api/v1/caregivers/ehr-rp-mother").json["relationship"] == "mother"
    team = client.get("/api/v1/care-teams/ehr-ct-1").json
    assert [p["role"] for p in team["participants"]] == ["primary-care-physician",
                                                         "informal-caregiver"]
    plan = client.get("/api/v1/care-plans/ehr-cp-1").json
    assert [(a["kind"], a.get("topic")) for a in plan["activities"]] == [
        ("psychotherapy", "Cognitive behavioral therapy"), ("medication", None),
        ("follow-up", "Follow-up visit"), ("lifestyle", "Sleep hygiene"),
        ("referral", "Referral to psychologist")]
    assert plan["activities"][0]["schedule"]["period_unit"] == "week"
    assert plan["activities"][2]["due_by"] == "2026-10-08"
    rx = client.get("/api/v1/prescriptions/ehr-rx-1").json
    assert (rx["drug"], rx["product"]) == ("sertraline", "sertraline 50 MG Oral Tablet")


def test_what_the_record_cannot_hold_is_noted_once_by_fhirpath_with_the_reason(pulled):
    app, bridge, pusher, base, originals, report = pulled
    noted = {": ".join(n.split(": ", 2)[:2]): n for n in report.notes}
    for where in ("Practitioner/ehr-prac-1: Practitioner.identifier[0]",
                  "Practitioner/ehr-prac-1: Practitioner.name[0].prefix",
                  "Practitioner/ehr-prac-1: Practitioner.telecom[1]",
                  "Patient/ehr-pat-1: Patient.identifier[1]",
                  "Patient/ehr-pat-1: Patient.extension",
                  "Patient/ehr-pat-1: Patient.identifier[0].system",
                  "CarePlan/ehr-cp-1: CarePlan.activity[4].reference",
                  "Condition/ehr-cond-1: Condition.code.coding",
                  # each item of a panel is noted as itself, by the sender's id
                  "Observation/ehr-phq9-item-1: Observation.category[1]",
                  "Observation/ehr-phq9-item-3: Observation.valueCodeableConcept.coding[0]",
                  "Observation/ehr-phq9-total: Observation.valueString"):
        assert where in noted, (where, report.notes)
    assert "kept as an external reference" in noted[
        "CarePlan/ehr-cp-1: CarePlan.activity[4].reference"]
    assert "urn:fhir-bridge:id:mrn" in noted["Patient/ehr-pat-1: Patient.identifier[0].system"]
    assert "writes as valueQuantity" in noted["Observation/ehr-phq9-total: Observation.valueString"]
    assert "a code the bridge writes too" in noted[
        "Observation/ehr-phq9-item-3: Observation.valueCodeableConcept.coding[0]"]
    # the panel's members were read: its references to them are no loss
    assert not any(n.startswith("Observation/ehr-phq9-panel: Observation.hasMember")
                   for n in report.notes), report.notes
    assert len(noted) == len(report.notes)  # once per element
    with bridge.engine.connect() as conn:
        rows = conn.execute(sa.select(t.sync_notes)).all()
    assert len(rows) == len(report.notes)
    again = make_puller(bridge, pusher).pull(patients=["ehr-pat-1"])
    assert again.notes == [] and again.rejected == 0
    with bridge.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.sync_notes)).scalar() \
            == len(rows)


PSY_R = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY",
          "display": "psychiatry information sensitivity"},
         {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R",
          "display": "restricted"}]
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"


def test_what_is_served_of_a_pulled_resource_carries_the_bridges_labels(pulled):
    app, bridge, pusher, base, originals, report = pulled
    client = app.test_client()
    patient = client.get("/fhir/Patient/pat-ehr-pat-1").json  # sent without any meta
    assert patient["meta"]["security"] == PSY_R
    assert patient["meta"]["profile"] == [US_CORE + "us-core-patient"]
    item = client.get("/fhir/Observation/asmt-ehr-phq9-panel.item-1").json
    assert item["meta"]["security"] == PSY_R
    assert item["meta"]["profile"] == [  # the sender's claim first, then the bridge's
        US_CORE + "us-core-observation-screening-assessment|7.0.0",
        US_CORE + "us-core-observation-screening-assessment"]
    assert item["valueCodeableConcept"] == originals["Observation/ehr-phq9-item-1"][
        "valueCodeableConcept"]  # as sent, not the bridge's rendering of the answer
    panel = client.get("/fhir/Observation/asmt-ehr-phq9-panel").json
    assert [m["reference"] for m in panel["hasMember"]] == [  # the sender's order, local ids
        f"Observation/asmt-ehr-phq9-panel.{n}" for n in
        ("item-1", "item-2", "item-3", "item-4", "item-5", "item-6", "item-7", "item-8",
         "item-9", "total", "item-10")]
    search = client.get("/fhir/Observation?patient=pat-ehr-pat-1&code=http://loinc.org|44250-9")
    assert [(e["resource"]["id"], e["resource"]["meta"]["security"])
            for e in search.json["entry"]] == [("asmt-ehr-phq9-panel.item-1", PSY_R)]


def test_pulled_changed_and_pushed_back_each_resource_differs_only_where_it_was_changed(pulled):
    app, bridge, pusher, base, originals, report = pulled
    client = app.test_client()

    def change(collection, record_id, edit):
        record = client.get(f"/api/v1/{collection}/{record_id}").json
        edit(record)
        response = client.put(f"/api/v1/{collection}/{record_id}", json=record)
        assert response.status_code == 200, response.json

    change("practitioners", "ehr-prac-1", lambda r: r.update(phone="555-310-4499"))
    change("patients", "ehr-pat-1", lambda r: r.update(email="maren@example.net"))
    change("caregivers", "ehr-rp-mother", lambda r: r.update(phone="555-201-7711"))
    change("care-teams", "ehr-ct-1",
           lambda r: r["participants"][0].update(end_date="2027-01-31"))
    change("care-plans", "ehr-cp-1", lambda r: r["activities"][2].update(status="completed"))
    change("diagnoses", "ehr-cond-1", lambda r: r.update(clinical_status="remission"))
    change("prescriptions", "ehr-rx-1",
           lambda r: r.update(instructions="Take in the morning with food."))

    def answer_item_3(record):  # "Several days" instead of "More than half the days"
        record["items"][2]["value"] = 1
        for derived in ("total", "band"):
            record.pop(derived, None)

    change("assessments", "ehr-phq9-panel", answer_item_3)
    change("assessments", "ehr-auditc-panel", lambda r: r.update(note="Reviewed with patient."))
    result = pusher.push_all()
    assert result.dead == 0 and result.sent == 10, result
    expected = {
        "Practitioner/ehr-prac-1": {"telecom[0].value"},
        "Patient/ehr-pat-1": {"telecom[2].value"},
        "RelatedPerson/ehr-rp-mother": {"telecom[0].value"},
        "CareTeam/ehr-ct-1": {"participant[0].period.end"},
        "CarePlan/ehr-cp-1": {"activity[2].detail.status"},
        "Condition/ehr-cond-1": {"clinicalStatus.coding[0].code"},
        "MedicationRequest/ehr-rx-1": {"dosageInstruction[0].patientInstruction"},
        "Observation/ehr-weight-1": set(),
        "ServiceRequest/ehr-sr-1": set(),
        # the item answered anew and the total, still a valueString as sent; nothing else
        "Observation/ehr-phq9-item-3": {"valueCodeableConcept"},
        "Observation/ehr-phq9-total": {"valueString"},
        "Observation/ehr-auditc-panel": {"note"},
    }
    panels = {ref for ref in originals if ref.startswith(("Observation/ehr-phq9",
                                                          "Observation/ehr-auditc"))}
    assert len(panels) == 17
    assert set(expected) | panels == set(originals)
    for ref, original in originals.items():
        on_server = requests.get(f"{base}/{ref}", headers=HEADERS, timeout=30).json()
        changes = expected.get(ref, set())
        assert changed_elements(original, on_server, changes) == changes, (ref, on_server)
    assert requests.get(f"{base}/Patient/ehr-pat-1", headers=HEADERS, timeout=30).json()[
        "telecom"][2]["value"] == "maren@example.net"
    on_server = {ref: requests.get(f"{base}/{ref}", headers=HEADERS, timeout=30).json()
                 for ref in ("Observation/ehr-phq9-item-3", "Observation/ehr-phq9-total",
                             "Observation/ehr-auditc-panel")}
    assert on_server["Observation/ehr-phq9-item-3"]["valueCodeableConcept"]["coding"][0][
        "code"] == "LA6569-3"
    assert on_server["Observation/ehr-phq9-total"]["valueString"] == "11"
    assert on_server["Observation/ehr-auditc-panel"]["note"] == [
        {"text": "Reviewed with patient."}]
    assert hapi_count(base, "Observation") == 18  # the items were updated, none was added
    again = make_puller(bridge, pusher).pull(patients=["ehr-pat-1"])
    assert (again.applied, again.rejected, again.conflicts) == (0, 0, 0), again.reasons


def test_an_ehr_edit_of_a_foreign_resource_is_applied_and_kept_as_sent(pulled):
    app, bridge, pusher, base, originals, report = pulled

    def edit(resource):
        resource["name"][0]["prefix"] = ["Prof."]
        resource["telecom"][0]["value"] = "555-310-4000"

    edit_on_server(base, "Practitioner", "ehr-prac-1", edit)
    several_days = {"coding": [{"system": "http://loinc.org", "code": "LA6569-3",
                                "display": "Several days"}], "text": "Several days"}
    # items, not their panel: read again with the panel
    edit_on_server(base, "Observation", "ehr-phq9-item-9",
                   lambda r: r.update(valueCodeableConcept=several_days))
    edit_on_server(base, "Observation", "ehr-phq9-total", lambda r: r.update(valueString="13"))
    # the practitioner is not pulled by type: it comes back with the care plan pointing at it
    edit_on_server(base, "CarePlan", "ehr-cp-1",
                   lambda r: r["activity"][3]["detail"].update(status="in-progress"))
    puller = make_puller(bridge, pusher)
    puller.pull_one(requests.get(f"{base}/Practitioner/ehr-prac-1", headers=HEADERS,
                                 timeout=30).json())
    applied = puller.pull(patients=["ehr-pat-1"])
    assert applied.rejected == 0 and applied.applied >= 1, applied.reasons
    client = app.test_client()
    assert client.get("/api/v1/practitioners/ehr-prac-1").json["phone"] == "555-310-4000"
    served = client.get("/fhir/Practitioner/prac-ehr-prac-1").json
    assert served["name"][0]["prefix"] == ["Prof."]
    assert served["identifier"] == originals["Practitioner/ehr-prac-1"]["identifier"]
    plan = client.get("/api/v1/care-plans/ehr-cp-1").json
    assert plan["activities"][3]["status"] == "in-progress"
    phq9 = client.get("/api/v1/assessments/ehr-phq9-panel").json
    assert phq9["items"][8] == {"number": 9, "value": 1} and phq9["alerts"] == ["suicide-risk"]
    assert phq9["total"] == 13
    item = client.get("/fhir/Observation/asmt-ehr-phq9-panel.item-9").json
    assert item["valueCodeableConcept"] == several_days  # the EHR's, as it sent it


def test_a_refused_resource_is_refused_alone_and_what_points_at_it_keeps_an_external_reference(
        sqlite_app, hapi_url):
    resources = foreign_resources()
    team = resources["CareTeam/ehr-ct-1"]
    for participant in team["participant"]:  # a role no vocabulary knows: no team to hold
        participant["role"] = [{"text": "Cardiologist"}]
    load_into(hapi_url, resources)
    bridge = sqlite_app.extensions["fhir_bridge"]
    report = make_puller(bridge, make_pusher(bridge, hapi_url)).pull(patients=["ehr-pat-1"])
    assert report.rejected == 1 and report.reasons[0].startswith("CareTeam/ehr-ct-1: "), \
        report.reasons
    assert "participants[0].role" in report.reasons[0]
    plan = sqlite_app.test_client().get("/api/v1/care-plans/ehr-cp-1").json
    assert "care_team_id" not in plan and len(plan["activities"]) == 5
    assert any(n.startswith("CarePlan/ehr-cp-1: CarePlan.careTeam") and "external" in n
               for n in report.notes), report.notes


def test_two_pull_workers_importing_the_same_practitioner_at_once_keep_one_and_refuse_none(
        app, hapi_url, database_url, monkeypatch):
    """Two pull workers meet the same EHR practitioner at the same moment (the patients each
    takes name the same doctor): both find it unknown and save it; the second save loses
    the race (a unique violation, 409 inside the store). It used to be stored as a reject,
    and what pointed at it kept an external reference; now the second worker takes the first
    one's record. The race is made certain: worker A's save is held right before it writes
    until worker B has imported the practitioner and committed. PostgreSQL only: SQLite's
    write lock makes the second save wait for the first and read its record (no race)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes saves with its write lock: this race cannot happen")
    import threading

    from fhir_bridge.store import batch_writes

    practitioner = foreign_resources()["Practitioner/ehr-prac-1"]
    load_into(hapi_url, {"Practitioner/ehr-prac-1": practitioner})
    on_server = requests.get(f"{hapi_url}/Practitioner/ehr-prac-1", headers=HEADERS,
                             timeout=30).json()
    bridge = app.extensions["fhir_bridge"]
    pusher = make_pusher(bridge, hapi_url)
    worker_a, worker_b = make_puller(bridge, pusher), make_puller(bridge, pusher)
    real_flush = batch_writes.Pending.flush
    held = {"a": threading.get_ident(), "done": False}
    answers = {}

    def flush(self, conn):
        if threading.get_ident() == held["a"] and not held["done"]:
            held["done"] = True
            other = threading.Thread(target=lambda: answers.update(
                b=worker_b.pull_one(on_server)))
            other.start()
            other.join(60)
            assert not other.is_alive()
        return real_flush(self, conn)

    monkeypatch.setattr(batch_writes.Pending, "flush", flush)
    report_a = worker_a.pull_one(on_server)
    report_b = answers["b"]
    assert held["done"]
    assert (report_b.imported, report_b.rejected) == (1, 0), report_b.reasons
    assert (report_a.imported, report_a.rejected) == (0, 0), report_a.reasons
    with bridge.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.sync_rejects)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(t.records).where(
            t.records.c.concept == "practitioner")).scalar() == 1
        assert conn.execute(sa.select(t.remote_resources.c.local_id).where(
            t.remote_resources.c.remote_id == "ehr-prac-1")).scalars().all() == \
            ["prac-ehr-prac-1"]
