"""Batch and transaction Bundles POSTed to /fhir: a transaction is all or nothing in one
database transaction, ``urn:uuid`` references get the ids the server assigns, parts of a
resource (a panel's items, a plan's goals) come in with it, and each entry answers with its
status, location, ETag and (safety warnings, what was kept as sent) an OperationOutcome. A
batch runs each entry on its own."""

from __future__ import annotations

import pytest

from .conftest import FIXTURES, read_json, snapshot
from .fhir_write_support import (FHIR_JSON, bridge_resources, dumps, foreign_resources,
                                 localized, pull_parse, second_ssri, served_key, stored_record)

P01 = FIXTURES / "internal" / "p01-depression-ssri-titration.json"
BASE = "http://ehr.example.org/fhir"


def send(client, bundle: dict):
    return client.post("/fhir", data=dumps(bundle), headers=FHIR_JSON)


def bundle(kind: str, entries: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def post_entry(resource: dict, full_url: str | None = None, **request) -> dict:
    entry = {"resource": resource,
             "request": {"method": "POST", "url": resource["resourceType"], **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def urn(n: int) -> str:
    return f"urn:uuid:6f1c7a52-0000-4000-8000-{n:012d}"


def test_a_fixture_sent_as_one_transaction_is_stored_as_the_records_the_pull_makes(app,
                                                                                 client):
    resources = bridge_resources()
    entries = [post_entry(r, f"{BASE}/{key}") for key, r in resources.items()]
    answer = send(client, bundle("transaction", entries))
    assert answer.status_code == 200, answer.json
    assert answer.json["type"] == "transaction-response"
    responses = [e["response"] for e in answer.json["entry"]]
    assert [r["status"] for r in responses] == ["201 Created"] * len(entries)
    assert [served_key(r["location"]) for r in responses] == list(resources)
    for key, resource in resources.items():
        mapping = app.extensions["fhir_bridge"].mapper.classify(resource)
        if mapping.child:
            continue  # an item or a goal: part of its panel's or plan's record
        concept, record = pull_parse(app, resource, resolve=resources.get)
        assert stored_record(app, concept, record["id"]) == record, key


def test_foreign_resources_in_one_transaction_are_the_records_the_pull_makes(app, client):
    originals = foreign_resources() + [second_ssri()]
    entries = [post_entry(r, f"{BASE}/{r['resourceType']}/{r['id']}") for r in originals]
    answer = send(client, bundle("transaction", entries))
    assert answer.status_code == 200, answer.json
    responses = [e["response"] for e in answer.json["entry"]]
    # AUDIT-C items of codes the bridge's tables do not hold: kept as sent in their panel
    unread = {f"ehr-auditc-item-{n}" for n in (1, 2, 3)}
    assert [r["status"] for r in responses] == [
        "200 OK" if o["id"] in unread else "201 Created" for o in originals]
    ids = {f"{r['resourceType']}/{r['id']}": served_key(done["location"])
           for r, done in zip(originals, responses) if "location" in done}
    # a panel's members, each under the id the bridge gave it (the total is not item 10)
    assert ids["Observation/ehr-phq9-total"].endswith(".total")
    assert ids["Observation/ehr-phq9-item-10"].endswith(".item-10")
    mapper = app.extensions["fhir_bridge"].mapper
    sent = {ids.get(key, key): {**localized(o, ids), "id": ids.get(key, key).split("/")[1]}
            for o in originals for key in [f"{o['resourceType']}/{o['id']}"]}
    for original in originals:
        key = ids[f"{original['resourceType']}/{original['id']}"] \
            if original["id"] not in unread else None
        mapping = mapper.classify(original)
        if key is None or mapping is None or mapping.child:
            continue  # a member: part of its panel's record
        concept, record = pull_parse(app, sent[key], resolve=sent.get)
        assert stored_record(app, concept, record["id"]) == record, key
    kept = [i for r in responses for i in (r.get("outcome") or {}).get("issue", [])]
    assert any(i["expression"] == ["Practitioner.identifier[0]"] for i in kept)
    item = responses[[o["id"] for o in originals].index("ehr-phq9-item-1")]
    assert ["Observation.category[1]"] in [  # each member says what of it was kept as sent
        i["expression"] for i in item["outcome"]["issue"] if i["severity"] == "information"]
    second = responses[-1]["outcome"]["issue"]  # the fluoxetine order beside the sertraline
    assert "duplicate.ssri" in [i["details"]["coding"][0]["code"] for i in second
                                if i["severity"] == "warning"]
    item = client.get(f"/fhir/{ids['Observation/ehr-phq9-item-10']}").json
    assert item["valueCodeableConcept"] == originals[
        [o["id"] for o in originals].index("ehr-phq9-item-10")]["valueCodeableConcept"]
    total = client.get(f"/fhir/{ids['Observation/ehr-phq9-total']}").json
    assert total["valueString"] == "12"  # as sent: each member is kept as its own resource


def test_urn_uuid_references_point_at_the_ids_the_server_assigned(sqlite_app):
    client = sqlite_app.test_client()
    resources = bridge_resources()
    patient = {**resources["Patient/pat-p01"], "identifier": [
        {"system": "urn:fhir-bridge:id:mrn", "value": "SYN-20001"}]}
    prescriber = {**resources["Practitioner/prac-dr-lindqvist"], "identifier": []}
    effect = {**resources["Observation/se-p01-se1"], "identifier": [],
              "subject": {"reference": urn(1)}, "performer": [{"reference": urn(2)}]}
    effect.pop("focus")
    answer = send(client, bundle("transaction", [
        post_entry(patient, urn(1)), post_entry(prescriber, urn(2)), post_entry(effect)]))
    assert answer.status_code == 200, answer.json
    patient_key, prescriber_key, effect_key = [served_key(e["response"]["location"])
                                               for e in answer.json["entry"]]
    served = client.get(f"/fhir/{effect_key}").json
    assert served["subject"]["reference"] == patient_key
    assert served["performer"][0]["reference"] == prescriber_key
    assert patient_key != "Patient/pat-p01"


def test_a_panel_and_its_items_come_in_together_and_answer_with_what_was_made(sqlite_app):
    client = sqlite_app.test_client()
    assert client.post("/api/v1/documents", json=read_json(P01)).status_code == 200
    resources = bridge_resources()
    panel_key = "Observation/asmt-p01-phq9-w0"
    items = [k for k in resources if k.startswith(panel_key + ".")]
    number = {k: n for n, k in enumerate([panel_key] + items, start=1)}
    def fresh(key):
        out = {**resources[key], "identifier": []}
        out.pop("id")
        if key == panel_key:
            out["hasMember"] = [{"reference": urn(number[k])} for k in items]
        return out
    entries = [post_entry(fresh(k), urn(number[k])) for k in [panel_key] + items]
    answer = send(client, bundle("transaction", entries))
    assert answer.status_code == 200, answer.json
    made = [served_key(e["response"]["location"]) for e in answer.json["entry"]]
    panel = client.get(f"/fhir/{made[0]}").json
    assert [m["reference"] for m in panel["hasMember"]] == made[1:]
    assert all(key.startswith(made[0] + ".") for key in made[1:])


@pytest.mark.parametrize("breaking, where", [
    ({"status": "bogus"}, "Bundle.entry[2].resource.status"),
    ({"subject": {"reference": "Patient/pat-nobody"}}, "Bundle.entry[2].resource.subject"),
])
def test_a_transaction_with_one_bad_entry_stores_nothing_and_names_it(app, client, breaking,
                                                                     where):
    assert client.post("/api/v1/documents", json=read_json(P01)).status_code == 200
    resources = bridge_resources()
    effect = {**resources["Observation/se-p01-se1"], "identifier": []}
    before = snapshot(app)
    answer = send(client, bundle("transaction", [
        post_entry({**resources["Patient/pat-p01"], "identifier": [
            {"system": "urn:fhir-bridge:id:mrn", "value": "SYN-20002"}]}, urn(1)),
        post_entry(effect),
        post_entry({**effect, **breaking})]))
    assert 400 <= answer.status_code < 500
    assert answer.json["resourceType"] == "OperationOutcome"
    assert where in [e for i in answer.json["issue"] for e in i["expression"]]
    assert snapshot(app) == before


def test_a_transaction_with_a_stale_update_is_412_and_stores_nothing(app, client):
    assert client.post("/api/v1/documents", json=read_json(P01)).status_code == 200
    effect = client.get("/fhir/Observation/se-p01-se1").json
    new = {**bridge_resources()["Observation/se-p01-se1"], "identifier": []}
    before = snapshot(app)
    answer = send(client, bundle("transaction", [
        post_entry(new),
        {"resource": effect, "request": {"method": "PUT", "url": "Observation/se-p01-se1",
                                         "ifMatch": 'W/"7"'}}]))
    assert answer.status_code == 412
    assert answer.json["issue"][0]["expression"] == ["Bundle.entry[1].request"]
    assert snapshot(app) == before


def test_a_transaction_answers_safety_warnings_in_the_entry_outcome(app, client):
    assert client.post("/api/v1/documents", json=read_json(P01)).status_code == 200
    rx = {**bridge_resources()["MedicationRequest/rx-p01-rx2"], "identifier": []}
    for key in ("priorPrescription", "extension", "note"):
        rx.pop(key, None)
    rx["medicationCodeableConcept"] = {"coding": [{
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "4493",
        "display": "fluoxetine"}], "text": "fluoxetine"}
    answer = send(client, bundle("transaction", [post_entry(rx)]))
    assert answer.status_code == 200, answer.json
    outcome = answer.json["entry"][0]["response"]["outcome"]
    assert "duplicate.ssri" in [i["details"]["coding"][0]["code"] for i in outcome["issue"]
                                if i["severity"] == "warning"]


def test_deletes_and_writes_of_one_transaction_happen_together(app, client):
    assert client.post("/api/v1/documents", json=read_json(P01)).status_code == 200
    effect = client.get("/fhir/Observation/se-p01-se1").json
    new = {**bridge_resources()["Observation/se-p01-se1"], "identifier": []}
    answer = send(client, bundle("transaction", [
        {"request": {"method": "DELETE", "url": "Observation/se-p01-se1"}},
        post_entry(new)]))
    assert answer.status_code == 200, answer.json
    assert [e["response"]["status"] for e in answer.json["entry"]] == ["204 No Content",
                                                                       "201 Created"]
    assert client.get("/fhir/Observation/se-p01-se1").status_code == 410
    assert effect["id"] == "se-p01-se1"


def test_batch_entries_succeed_or_fail_each_on_its_own(app, client):
    assert client.post("/api/v1/documents", json=read_json(P01)).status_code == 200
    resources = bridge_resources()
    effect = {**resources["Observation/se-p01-se1"], "identifier": []}
    answer = send(client, bundle("batch", [
        post_entry(effect),
        post_entry({**effect, "status": "bogus"}),
        post_entry({**resources["Patient/pat-p01"], "identifier": [
            {"system": "urn:fhir-bridge:id:mrn", "value": "SYN-10001"}]},
            ifNoneExist="identifier=urn:fhir-bridge:id:mrn|SYN-10001"),
        {"request": {"method": "DELETE", "url": "Patient/pat-p01"}}]))
    assert answer.status_code == 200, answer.json
    assert answer.json["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in answer.json["entry"]]
    assert statuses == ["201 Created", "422 Unprocessable Entity", "200 OK",
                        "405 Method Not Allowed"]
    bad = answer.json["entry"][1]["response"]["outcome"]
    assert bad["issue"][0]["expression"] == ["Observation.status"]
    made = served_key(answer.json["entry"][0]["response"]["location"])
    assert client.get(f"/fhir/{made}").status_code == 200
    assert served_key(answer.json["entry"][2]["response"]["location"]) == "Patient/pat-p01"


@pytest.mark.parametrize("body, where", [
    ({"resourceType": "Patient"}, "Bundle.resourceType"),
    ({"resourceType": "Bundle", "type": "collection"}, "Bundle.type"),
    (bundle("transaction", [{"request": {"method": "GET", "url": "Patient/pat-p01"}}]),
     "Bundle.entry[0].request.method"),
    (bundle("transaction", [{"request": {"method": "POST", "url": "Patient/pat-p01"},
                             "resource": {"resourceType": "Patient"}}]),
     "Bundle.entry[0].request.url"),
    (bundle("transaction", [{"request": {"method": "POST", "url": "Patient"}}]),
     "Bundle.entry[0].resource"),
])
def test_a_bundle_that_is_not_a_batch_or_transaction_of_writes_is_400(sqlite_app, body,
                                                                      where):
    client = sqlite_app.test_client()
    before = snapshot(sqlite_app)
    answer = send(client, body)
    assert answer.status_code == 400
    assert answer.json["issue"][0]["expression"] == [where]
    assert snapshot(sqlite_app) == before


def test_a_panel_that_raises_a_safety_alert_answers_it_in_the_entry_outcome(sqlite_app):
    """p06's PHQ-9 has item 9 positive: the answer says so, naming the Flag it stored, as the
    JSON API's ``alerts`` do."""
    client = sqlite_app.test_client()
    resources = bridge_resources("p06-family-caregiver")
    keys = list(resources)
    answer = send(client, bundle("transaction",
                                 [post_entry(r, f"{BASE}/{k}") for k, r in resources.items()]))
    assert answer.status_code == 200, answer.json
    outcomes = {k: e["response"].get("outcome") for k, e in zip(keys, answer.json["entry"])}
    alerts = [i for i in (outcomes["Observation/asmt-p06-phq9-w0"] or {}).get("issue", [])
              if i["severity"] == "warning"]
    assert [i["details"]["coding"][0]["code"] for i in alerts] == ["suicide-risk"]
    assert "PHQ-9 item 9 positive" in alerts[0]["details"]["text"]
    flag = alerts[0]["diagnostics"].rsplit("(", 1)[1].rstrip(")")
    assert client.get(f"/fhir/{flag}").json["status"] == "active"
    quiet = [k for k, o in outcomes.items() if k.startswith("Observation/asmt-")
             and k != "Observation/asmt-p06-phq9-w0" and "." not in k.split("/")[1]
             and any(i["severity"] == "warning" for i in (o or {}).get("issue", []))]
    assert quiet == []
