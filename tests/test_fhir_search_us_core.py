"""US Core 7.0.0 server searches, read from the package's own CapabilityStatement: every SHALL
and SHOULD search parameter and combination of the types the bridge serves answers 200 with
the right resources (each expected set is computed from the whole stored set by a plain
predicate, so what should match does and what should not does not) and is listed in the
bridge's CapabilityStatement; then the date prefixes (``ap`` included), _include and
``_revinclude=Provenance:target``, chains, ``_has``, compartment and system search, system
history and ``Patient/$everything``, each on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import tarfile
from urllib.parse import parse_qsl

import pytest
import requests
import sqlalchemy as sa

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.app import create_app
from fhir_bridge.facade import indexing, parameters
from fhir_bridge.fhir import jsonio
from fhir_bridge.store import tables

from .conftest import PG_URL, TEST_SECRET, _reset_postgres, fixture_documents, read_json, token_for
from .live_server import serving

PACKAGE = (PROJECT_ROOT.parent / "shared" / "reference" / "fhir-packages"
           / "hl7.fhir.us.core-7.0.0.tgz")
EXPECTATION = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-expectation"
COMBINATION = ("http://hl7.org/fhir/StructureDefinition/"
               "capabilitystatement-search-parameter-combination")
SNOMED, LOINC = "http://snomed.info/sct", "http://loinc.org"
WEIGHT_INCREASED = {"coding": [{"system": SNOMED, "code": "262286000",  # codes.csv side-effect
                                "display": "Weight increased"}], "text": "Weight increased"}
ASSERTED = "http://hl7.org/fhir/StructureDefinition/condition-assertedDate"

#: What the fixtures lack for some US Core parameters (an abatement, an encounter, a death,
#: a coded condition and goal, a Provenance): stored as the sync's Provenance is, a row of
#: resources plus its index entries. (FHIR resource, internal patient id)
EXTRA = [
    ({"resourceType": "Condition", "id": "cond-syn-p05",
      "subject": {"reference": "Patient/pat-p05"},
      "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                          "condition-category", "code": "problem-list-item"}]}],
      "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                               "condition-clinical", "code": "resolved"}]},
      "code": WEIGHT_INCREASED, "abatementDateTime": "2024-06-01", "recordedDate": "2024-05-20",
      "encounter": {"reference": "Encounter/enc-syn-1"},
      "extension": [{"url": ASSERTED, "valueDateTime": "2024-05-20"}]}, "p05"),
    ({"resourceType": "Goal", "id": "goal-syn-p05", "lifecycleStatus": "active",
      "description": WEIGHT_INCREASED, "subject": {"reference": "Patient/pat-p05"}}, "p05"),
    ({"resourceType": "MedicationRequest", "id": "rx-syn-p05", "status": "active",
      "intent": "order", "subject": {"reference": "Patient/pat-p05"},
      "medicationReference": {"reference": "Medication/med-syn-1"},
      "encounter": {"reference": "Encounter/enc-syn-1"}, "authoredOn": "2024-05-20"}, "p05"),
    ({"resourceType": "Patient", "id": "pat-syn-d", "gender": "female", "birthDate": "1940-01-01",
      "deceasedDateTime": "2024-12-01", "name": [{"family": "Deceased-Synth",
                                                   "given": ["Ilse"]}]}, "syn-d"),
    *[({"resourceType": "QuestionnaireResponse", "id": rid, "status": status,
        "questionnaire": f"urn:fhir-bridge:questionnaire:{key}|1", "authored": authored,
        "subject": {"reference": f"Patient/pat-{patient}"}}, patient)
      for rid, status, key, authored, patient in [
          ("qr-syn-a", "completed", "gad-7", "2025-06-30T10:00:00Z", "p05"),
          ("qr-syn-b", "in-progress", "phq-9", "2025-01-02T10:00:00Z", "p05"),
          ("qr-syn-c", "completed", "gad-7", "2025-06-30T10:00:00Z", "p01")]],
    ({"resourceType": "Provenance", "id": "prov-syn-1", "recorded": "2025-03-04T10:00:00Z",
      "target": [{"reference": "CarePlan/cp-p01-plan"}, {"reference": "Patient/pat-p01"}],
      "agent": [{"who": {"reference": "Practitioner/prac-dr-lindqvist"}}]}, "p01"),
]


def store_extra(engine: sa.Engine) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    with engine.begin() as conn:
        for resource, patient_id in EXTRA:
            content = jsonio.dumps(resource)
            conn.execute(tables.resources.insert().values(
                resource_type=resource["resourceType"], id=resource["id"], concept="test",
                record_id=resource["id"], patient_id=patient_id, version_id=1, last_updated=now,
                content_hash=jsonio.content_hash(resource), content=content, deleted=False))
            conn.execute(tables.resource_history.insert().values(
                resource_type=resource["resourceType"], id=resource["id"], version_id=1,
                last_updated=now, content=content, deleted=False, source="test"))
            indexing.reindex(conn, resource["resourceType"], resource["id"], resource)


class Fhir:
    def __init__(self, base: str, token: str):
        self.base, self.session = f"{base}/fhir", requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, params=None) -> requests.Response:
        return self.session.get(f"{self.base}/{path}", params=params, timeout=60)

    def bundle(self, path: str, params=None) -> dict:
        response = self.get(path, params)
        assert response.status_code == 200, response.text
        return response.json()

    def ids(self, path: str, params=None, mode: str = "match") -> set[str]:
        return {e["resource"]["id"] for e in self.bundle(path, params).get("entry", [])
                if e["search"]["mode"] == mode}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fhir(request, tmp_path_factory):
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("PostgreSQL not configured (FHIR_BRIDGE_TEST_DATABASE_URL)")
        _reset_postgres(PG_URL)
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('us-core') / 'bridge.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FHIR_BRIDGE_DEV_SECRET", TEST_SECRET)
        app = create_app({"database_url": url})
        token = token_for(app, "system/*.rs", ttl_seconds=3600)
        client = app.test_client()
        for path in fixture_documents():
            response = client.post("/api/v1/documents", json=read_json(path), headers={
                "Authorization": "Bearer " + token_for(app, ttl_seconds=600)})
            assert response.status_code == 200, response.json
        store_extra(app.extensions["fhir_bridge"].engine)
        with serving(app) as base:
            yield Fhir(base, token), app
    app.extensions["fhir_bridge"].engine.dispose()


# -- what US Core asks for ------------------------------------------------------------------------

def us_core_server() -> dict:
    with tarfile.open(PACKAGE) as package:
        member = package.extractfile("package/CapabilityStatement-us-core-server.json")
        return json.load(member)


def _expectation(node: dict) -> str | None:
    return next((e["valueCode"] for e in node.get("extension", []) if e["url"] == EXPECTATION),
                None)


def us_core_searches() -> list[tuple[str, tuple[str, ...], str]]:
    """(type, parameters, SHALL|SHOULD) of every single parameter and combination US Core's
    server names for a type the bridge serves."""
    out = []
    for resource in us_core_server()["rest"][0]["resource"]:
        if parameters.for_type(resource["type"]) is None:
            continue
        for param in resource.get("searchParam", []):
            if _expectation(param) in ("SHALL", "SHOULD"):
                out.append((resource["type"], (param["name"],), _expectation(param)))
        for ext in resource.get("extension", []):
            if ext["url"] == COMBINATION and _expectation(ext) in ("SHALL", "SHOULD"):
                names = tuple(e["valueString"] for e in ext["extension"] if e["url"] == "required")
                out.append((resource["type"], names, _expectation(ext)))
    return out


# -- predicates the expected sets are computed with ------------------------------------------------

def codes(node) -> set[str]:
    items = node if isinstance(node, list) else [node] if node else []
    return {c.get("code") for item in items for c in item.get("coding", [])}


def subject(r) -> str:
    return (r.get("subject") or r.get("patient") or {}).get("reference", "")


def name_parts(r, part=None) -> list[str]:
    out = []
    for name in r.get("name", []):
        for key in ([part] if part else ["family", "given", "text"]):
            value = name.get(key)
            out += value if isinstance(value, list) else [value] if value else []
    return [p.casefold() for p in out]


def starts(r, prefix, part=None) -> bool:
    return any(p.startswith(prefix) for p in name_parts(r, part))


def effective_end(r) -> str:
    """The latest instant of an Observation's effective[x] as text (open Period: far future)."""
    if "effectiveDateTime" in r:
        return r["effectiveDateTime"]
    return (r.get("effectivePeriod") or {}).get("end") or "9999"


def p(patient: str):
    return lambda r: subject(r) == f"Patient/{patient}"


PROBLEM = "http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
EVER = "ge2000-01-01T00:00:00Z"

#: (type, parameters) -> [(query, predicate)]: the first query's predicate holds for some but
#: not all stored resources of the type; any further query checks more (often: nothing).
EXAMPLES = {
    ("Patient", ("_id",)): [([("_id", "pat-p02")], lambda r: r["id"] == "pat-p02")],
    ("Patient", ("identifier",)): [
        ([("identifier", "urn:fhir-bridge:id:mrn|SYN-10003")], lambda r: r["id"] == "pat-p03"),
        ([("identifier", "urn:fhir-bridge:id:patient|SYN-10003")], lambda r: False)],
    ("Patient", ("name",)): [([("name", "thorn")], lambda r: starts(r, "thorn")),
                             ([("name", "margit")], lambda r: starts(r, "margit"))],
    ("Patient", ("birthdate", "name")): [
        ([("birthdate", "1988-04-12"), ("name", "avery")],
         lambda r: r.get("birthDate") == "1988-04-12" and starts(r, "avery")),
        ([("birthdate", "1988-04-13"), ("name", "avery")], lambda r: False)],
    ("Patient", ("gender", "name")): [
        ([("gender", "male"), ("name", "Marwick")],
         lambda r: r.get("gender") == "male" and starts(r, "marwick"))],
    ("Patient", ("family", "gender")): [
        ([("family", "quenneville"), ("gender", "female")],
         lambda r: r.get("gender") == "female" and starts(r, "quenneville", "family"))],
    ("Patient", ("birthdate", "family")): [
        ([("birthdate", "ge1990"), ("family", "b")],
         lambda r: r.get("birthDate", "") >= "1990" and starts(r, "b", "family"))],
    ("Patient", ("death-date", "family")): [
        ([("death-date", "le2025"), ("family", "deceased")],
         lambda r: r.get("deceasedDateTime", "9999") < "2026" and starts(r, "deceased")),
        ([("death-date", "lt2024-12-01"), ("family", "deceased")], lambda r: False)],
    ("Practitioner", ("_id",)): [([("_id", "prac-dr-lindqvist")],
                                  lambda r: r["id"] == "prac-dr-lindqvist")],
    ("Practitioner", ("identifier",)): [
        ([("identifier", "urn:fhir-bridge:id:practitioner|th-okafor")],
         lambda r: r["id"] == "prac-th-okafor")],
    ("Practitioner", ("name",)): [([("name", "lindq")], lambda r: starts(r, "lindq"))],
    ("RelatedPerson", ("_id",)): [([("_id", "rp-p04-cg1")], lambda r: r["id"] == "rp-p04-cg1")],
    ("RelatedPerson", ("name",)): [([("name", "walter")], lambda r: starts(r, "walter"))],
    ("RelatedPerson", ("patient",)): [([("patient", "pat-p04")], p("pat-p04"))],
    ("RelatedPerson", ("patient", "name")): [
        ([("patient", "Patient/pat-p06"), ("name", "thornbury")],
         lambda r: p("pat-p06")(r) and starts(r, "thornbury")),
        ([("patient", "Patient/pat-p04"), ("name", "thornbury")], lambda r: False)],
    ("Condition", ("patient",)): [([("patient", "pat-p05")], p("pat-p05"))],
    ("Condition", ("patient", "category")): [
        ([("patient", "pat-p03"), ("category", PROBLEM)],
         lambda r: p("pat-p03")(r) and "problem-list-item" in codes(r.get("category")))],
    ("Condition", ("patient", "category", "clinical-status")): [
        ([("patient", "pat-p05"), ("category", "problem-list-item"),
          ("clinical-status", "remission")],
         lambda r: p("pat-p05")(r) and codes(r.get("clinicalStatus")) == {"remission"})],
    ("Condition", ("patient", "clinical-status")): [
        ([("patient", "pat-p06"), ("clinical-status", f"{CLINICAL}|recurrence")],
         lambda r: p("pat-p06")(r) and codes(r.get("clinicalStatus")) == {"recurrence"})],
    ("Condition", ("patient", "onset-date")): [
        ([("patient", "pat-p05"), ("onset-date", "ge2020")],
         lambda r: p("pat-p05")(r) and r.get("onsetDateTime", "") >= "2020")],
    ("Condition", ("patient", "abatement-date")): [
        ([("patient", "pat-p05"), ("abatement-date", "lt2025")],
         lambda r: p("pat-p05")(r) and "abatementDateTime" in r),
        ([("patient", "pat-p05"), ("abatement-date", "gt2024-06-01")], lambda r: False)],
    ("Condition", ("patient", "asserted-date")): [
        ([("patient", "pat-p05"), ("asserted-date", "2024-05")],
         lambda r: r["id"] == "cond-syn-p05"),
        ([("patient", "pat-p05"), ("asserted-date", "2024-06")], lambda r: False)],
    ("Condition", ("patient", "code")): [
        ([("patient", "pat-p05"), ("code", f"{SNOMED}|262286000")],
         lambda r: p("pat-p05")(r) and "262286000" in codes(r.get("code")))],
    ("Condition", ("patient", "category", "encounter")): [
        ([("patient", "pat-p05"), ("category", PROBLEM), ("encounter", "Encounter/enc-syn-1")],
         lambda r: r.get("encounter", {}).get("reference") == "Encounter/enc-syn-1")],
    ("Condition", ("patient", "_lastUpdated")): [
        ([("patient", "pat-p01"), ("_lastUpdated", EVER)], p("pat-p01")),
        ([("patient", "pat-p01"), ("_lastUpdated", "lt2000-01-01T00:00:00Z")], lambda r: False)],
    ("Condition", ("patient", "recorded-date")): [
        ([("patient", "pat-p03"), ("recorded-date", "2025-05-05")],
         lambda r: p("pat-p03")(r) and r.get("recordedDate") == "2025-05-05")],
    ("Goal", ("patient",)): [([("patient", "pat-p02")], p("pat-p02"))],
    ("Goal", ("patient", "target-date")): [
        ([("patient", "pat-p03"), ("target-date", "ge2025-09")],
         lambda r: p("pat-p03")(r) and any((t.get("dueDate") or "") >= "2025-09"
                                           for t in r.get("target", [])))],
    ("Goal", ("patient", "lifecycle-status")): [
        ([("patient", "pat-p03"), ("lifecycle-status", "proposed,accepted")],
         lambda r: p("pat-p03")(r) and r["lifecycleStatus"] in ("proposed", "accepted"))],
    ("Goal", ("patient", "description")): [
        ([("patient", "pat-p05"), ("description", f"{SNOMED}|262286000")],
         lambda r: r["id"] == "goal-syn-p05")],
    ("MedicationRequest", ("patient", "intent")): [
        ([("patient", "pat-p04"), ("intent", "order")],
         lambda r: p("pat-p04")(r) and r["intent"] == "order")],
    ("MedicationRequest", ("patient", "intent", "status")): [
        ([("patient", "pat-p04"), ("intent", "order"), ("status", "active")],
         lambda r: p("pat-p04")(r) and r["status"] == "active"),
        ([("patient", "pat-p04"), ("intent", "plan"), ("status", "active")], lambda r: False)],
    ("MedicationRequest", ("patient", "intent", "authoredon")): [
        ([("patient", "pat-p04"), ("intent", "order"), ("authoredon", "ge2025-09-01")],
         lambda r: p("pat-p04")(r) and r["authoredOn"] >= "2025-09-01")],
    ("MedicationRequest", ("patient", "intent", "encounter")): [
        ([("patient", "pat-p05"), ("intent", "order"), ("encounter", "Encounter/enc-syn-1")],
         lambda r: r["id"] == "rx-syn-p05")],
    ("Observation", ("patient", "code")): [
        ([("patient", "pat-p02"), ("code", f"{LOINC}|14334-7")],
         lambda r: p("pat-p02")(r) and "14334-7" in codes(r["code"])),
        ([("patient", "pat-p02"), ("code", f"{SNOMED}|14334-7")], lambda r: False)],
    ("Observation", ("patient", "category", "date")): [
        ([("patient", "pat-p03"), ("category", "laboratory"), ("date", "ge2025-04")],
         lambda r: p("pat-p03")(r) and "laboratory" in codes(r.get("category"))
         and effective_end(r) >= "2025-04")],
    ("Observation", ("patient", "code", "date")): [
        ([("patient", "pat-p02"), ("code", f"{LOINC}|14334-7"), ("date", "ge2025-05")],
         lambda r: p("pat-p02")(r) and "14334-7" in codes(r["code"])
         and effective_end(r) >= "2025-05")],
    ("Observation", ("patient", "category", "status")): [
        ([("patient", "pat-p01"), ("category", "survey"), ("status", "final")],
         lambda r: p("pat-p01")(r) and "survey" in codes(r.get("category"))
         and r["status"] == "final")],
    ("Observation", ("patient", "category", "_lastUpdated")): [
        ([("patient", "pat-p01"), ("category", "vital-signs"), ("_lastUpdated", EVER)],
         lambda r: p("pat-p01")(r) and "vital-signs" in codes(r.get("category")))],
    ("Observation", ("patient", "category")): [
        ([("patient", "pat-p04"), ("category", "vital-signs")],
         lambda r: p("pat-p04")(r) and "vital-signs" in codes(r.get("category")))],
    ("CarePlan", ("patient", "category")): [
        ([("patient", "pat-p01"), ("category", "assess-plan")], p("pat-p01"))],
    ("CarePlan", ("patient", "category", "status")): [
        ([("patient", "pat-p02"), ("category", "assess-plan"), ("status", "active")],
         p("pat-p02")),
        ([("patient", "pat-p02"), ("category", "assess-plan"), ("status", "draft")],
         lambda r: False)],
    ("CarePlan", ("patient", "category", "date")): [
        ([("patient", "pat-p04"), ("category", "assess-plan"), ("date", "ge2025-12")],
         p("pat-p04")),
        ([("patient", "pat-p04"), ("category", "assess-plan"), ("date", "lt2025-08")],
         lambda r: False)],
    ("CarePlan", ("patient", "category", "status", "date")): [
        ([("patient", "pat-p03"), ("category", "assess-plan"), ("status", "active"),
          ("date", "ap2025-06")], p("pat-p03"))],
    ("QuestionnaireResponse", ("_id",)): [([("_id", "qr-syn-b")], lambda r: r["id"] == "qr-syn-b")],
    ("QuestionnaireResponse", ("patient",)): [([("patient", "pat-p05")], p("pat-p05"))],
    ("QuestionnaireResponse", ("patient", "questionnaire")): [
        ([("patient", "pat-p05"), ("questionnaire", "urn:fhir-bridge:questionnaire:gad-7")],
         lambda r: r["id"] == "qr-syn-a"),
        ([("patient", "pat-p05"), ("questionnaire", "urn:fhir-bridge:questionnaire:gad-7|1")],
         lambda r: r["id"] == "qr-syn-a"),
        ([("patient", "pat-p05"), ("questionnaire", "urn:fhir-bridge:questionnaire:gad")],
         lambda r: False)],
    ("QuestionnaireResponse", ("patient", "authored")): [
        ([("patient", "pat-p05"), ("authored", "ge2025-06")], lambda r: r["id"] == "qr-syn-a")],
    ("QuestionnaireResponse", ("patient", "status")): [
        ([("patient", "pat-p05"), ("status", "completed")], lambda r: r["id"] == "qr-syn-a")],
    ("CareTeam", ("patient", "status")): [
        ([("patient", "pat-p01"), ("status", "active")], p("pat-p01")),
        ([("patient", "pat-p01"), ("status", "inactive")], lambda r: False)],
    ("CareTeam", ("patient", "role")): [
        ([("patient", "pat-p03"), ("role", f"{SNOMED}|224598009")], p("pat-p03")),
        ([("patient", "pat-p01"), ("role", f"{SNOMED}|224598009")], lambda r: False)],
    ("CareTeam", ("role",)): [
        ([("role", f"{SNOMED}|768820003")],
         lambda r: any("768820003" in codes(part.get("role")) for part in r["participant"]))],
}


def everything_of(fhir: Fhir, rtype: str) -> list[dict]:
    bundle = fhir.bundle(rtype, [("_count", "500")])
    assert bundle["total"] <= 500
    return [e["resource"] for e in bundle.get("entry", [])]


@pytest.mark.parametrize("rtype, names, expectation", us_core_searches(),
                         ids=lambda v: v if isinstance(v, str) else "+".join(v))
def test_each_us_core_search_answers_with_what_matches_and_nothing_else(fhir, rtype, names,
                                                                       expectation):
    client, _ = fhir
    examples = EXAMPLES.get((rtype, names))
    assert examples, f"no example for the US Core {expectation} search {rtype}?{names}"
    stored = everything_of(client, rtype)
    for number, (query, predicate) in enumerate(examples):
        assert sorted({name for name, _ in query}) == sorted(names)
        expected = {r["id"] for r in stored if predicate(r)}
        if number == 0:
            assert expected and len(expected) < len(stored), "the example must discriminate"
        assert client.ids(rtype, query) == expected, query


def test_the_capability_statement_instantiates_us_core_and_lists_each_of_its_searches(fhir):
    client, _ = fhir
    statement = client.bundle("metadata")
    assert "http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server" in statement[
        "instantiates"]
    ours = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for rtype, names, _ in us_core_searches():
        entry = ours[rtype]
        listed = {p["name"] for p in entry["searchParam"]}
        assert set(names) <= listed, (rtype, names)
        if len(names) > 1:
            combinations = [tuple(e["valueString"] for e in ext["extension"])
                            for ext in entry.get("extension", []) if ext["url"] == COMBINATION]
            assert names in combinations, (rtype, names)
    for resource in us_core_server()["rest"][0]["resource"]:
        if resource["type"] in ours:
            for key in ("searchInclude", "searchRevInclude"):
                assert set(resource.get(key, [])) <= set(ours[resource["type"]].get(key, [])), (
                    resource["type"], key)
    interactions = {i["code"] for i in statement["rest"][0]["interaction"]}
    assert {"search-system", "history-system"} <= interactions
    assert {"name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"} in ours[
        "Patient"]["operation"]


# -- prefixes, or and and, includes ----------------------------------------------------------------

def test_date_prefixes_agree_with_each_other_ap_included(fhir):
    client, _ = fhir
    base = [("patient", "pat-p02"), ("code", f"{LOINC}|14334-7")]
    every = client.ids("Observation", base)
    day = client.bundle("Observation", base + [("_sort", "date")])["entry"][1]["resource"][
        "effectiveDateTime"][:10]
    got = {prefix: client.ids("Observation", base + [("date", f"{prefix}{day}")])
           for prefix in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")}
    assert len(every) == 3 and len(got["eq"]) == 1
    assert got["ne"] == every - got["eq"]
    assert got["ge"] == got["eq"] | got["gt"] and got["le"] == got["eq"] | got["lt"]
    assert got["gt"] and got["lt"] and not got["gt"] & got["lt"]
    assert got["sa"] <= got["gt"] and got["eb"] <= got["lt"]
    assert got["eq"] <= got["ap"] <= every
    assert client.ids("Observation", base + [("date", "ap1990-01-01")]) == set()


def test_or_within_a_parameter_and_and_across_repeats(fhir):
    client, _ = fhir
    both = client.ids("MedicationRequest", [("patient", "pat-p04"), ("status", "active,stopped")])
    assert both == {"rx-p04-rx1", "rx-p04-rx2", "rx-p04-rx3"}
    window = client.ids("MedicationRequest", [("patient", "pat-p04"),
                                              ("authoredon", "ge2025-09-01"),
                                              ("authoredon", "lt2025-09-10")])
    assert window == {"rx-p04-rx2"}


def test_us_core_includes_and_the_provenance_revinclude(fhir):
    client, _ = fhir
    plan = client.bundle("CarePlan", [("patient", "pat-p01"),
                                      ("_revinclude", "Provenance:target")])
    modes = {(e["resource"]["id"], e["search"]["mode"]) for e in plan["entry"]}
    assert modes == {("cp-p01-plan", "match"), ("prov-syn-1", "include")}
    patient = client.ids("Patient", [("_id", "pat-p01"), ("_revinclude", "Provenance:target")],
                         mode="include")
    assert patient == {"prov-syn-1"}
    assert client.ids("Condition", [("patient", "pat-p01"),
                                    ("_revinclude", "Provenance:target")], "include") == set()
    team = client.ids("CareTeam", [("patient", "pat-p01"),
                                   ("_include", "CareTeam:participant:Practitioner")], "include")
    assert team and all(i.startswith("prac-") for i in team)
    people = client.ids("CareTeam", [("patient", "pat-p04"),
                                     ("_include", "CareTeam:participant:RelatedPerson")],
                        "include")
    assert people == {"rp-p04-cg1"}
    medication = client.get("MedicationRequest", [("patient", "pat-p05"),
                                                  ("_include", "MedicationRequest:medication")])
    assert medication.status_code == 200  # Medication is not served: nothing to include


# -- chains and _has -------------------------------------------------------------------------------

def test_chained_search_one_level_deep(fhir):
    client, _ = fhir
    by_mrn = client.ids("Observation", [("patient.identifier", "urn:fhir-bridge:id:mrn|SYN-10002"),
                                        ("code", f"{LOINC}|14334-7")])
    assert len(by_mrn) == 3 and by_mrn == client.ids(
        "Observation", [("patient", "pat-p02"), ("code", f"{LOINC}|14334-7")])
    typed = client.ids("CarePlan", [("subject:Patient.name", "marwick")])
    assert typed == {"cp-p03-plan"}
    exact = client.ids("Goal", [("patient.family:exact", "Belcourt-Synth")])
    assert exact == {"goal-p02-goal-level", "goal-p02-goal-stable", "goal-p02-goal-sleep"}
    assert client.ids("Goal", [("patient.family:exact", "belcourt-synth")]) == set()
    teams = client.ids("CareTeam", [("participant:Practitioner.name", "lindqvist")])
    assert teams == {r["id"] for r in everything_of(client, "CareTeam") if any(
        m["member"]["reference"] == "Practitioner/prac-dr-lindqvist" for m in r["participant"])}
    assert teams and len(teams) < 6
    assert client.ids("Observation", [("patient.name", "nobody-by-that-name")]) == set()


@pytest.mark.parametrize("name, value, code", [
    ("patient.general-practitioner.name", "x", "not-supported"),   # two levels
    ("patient.colour", "x", "not-supported"),                       # no such parameter there
    ("status.name", "x", "not-supported"),                          # not a reference
    ("performer.name", "x", "invalid"),                             # several targets: name one
    ("performer:Device.name", "x", "invalid"),                      # not a target
    ("patient._has:Goal:patient:lifecycle-status", "active", "not-supported"),
])
def test_a_chain_it_cannot_run_gets_an_outcome_naming_it(fhir, name, value, code):
    client, _ = fhir
    response = client.get("Observation", [(name, value)])
    assert response.status_code == 400, response.text
    issues = response.json()["issue"]
    assert [(i["expression"], i["code"]) for i in issues] == [([name], code)]


def test_has_finds_what_the_named_resources_point_at(fhir):
    client, _ = fhir
    lithium = client.ids("Patient", [("_has:Observation:patient:code", f"{LOINC}|14334-7")])
    assert lithium == {"pat-p02"}
    proposed = client.ids("Patient", [("_has:Goal:patient:lifecycle-status", "proposed")])
    assert proposed == {"pat-p03"}
    both = client.ids("Patient", [("_has:Goal:patient:lifecycle-status", "proposed"),
                                  ("_has:Observation:patient:code", f"{LOINC}|14334-7")])
    assert both == set()
    members = client.ids("Practitioner", [("_has:CareTeam:participant:patient", "pat-p01")])
    team = client.bundle("CareTeam", [("patient", "pat-p01")])["entry"][0]["resource"]
    assert members == {m["member"]["reference"].split("/")[1] for m in team["participant"]
                       if m["member"]["reference"].startswith("Practitioner/")}
    refused = client.get("Patient", [("_has:Observation:focus:code", "x")])
    assert refused.status_code == 400  # Observation:focus does not point at Patient


def test_a_patient_token_cannot_chain_or_has_its_way_to_another_patient(fhir):
    client, app = fhir
    mine = Fhir(client.base.removesuffix("/fhir"),
                token_for(app, "patient/*.rs", patient="pat-p02", ttl_seconds=600))
    assert mine.ids("Observation", [("patient.identifier", "urn:fhir-bridge:id:mrn|SYN-10001")]
                    ) == set()
    assert mine.ids("Patient", [("_has:Goal:patient:lifecycle-status", "proposed")]) == set()
    assert mine.ids("Patient", [("_has:Observation:patient:code", f"{LOINC}|14334-7")]) == {
        "pat-p02"}


# -- compartment, system search and history, $everything -------------------------------------------

def test_compartment_search_is_type_search_limited_to_the_patient(fhir):
    client, app = fhir
    assert client.ids("Patient/pat-p02/Observation", [("code", f"{LOINC}|14334-7")]) == \
        client.ids("Observation", [("patient", "pat-p02"), ("code", f"{LOINC}|14334-7")])
    plans = client.bundle("Patient/pat-p01/CarePlan", [("_include", "CarePlan:care-team"),
                                                       ("_count", "1")])
    assert {(e["resource"]["id"], e["search"]["mode"]) for e in plans["entry"]} == {
        ("cp-p01-plan", "match"), ("ct-p01-team", "include")}
    assert plans["link"][0]["url"].startswith(f"{client.base}/Patient/pat-p01/CarePlan?")
    assert client.ids("Patient/pat-p01/Observation", [("patient", "pat-p02")]) == set()
    assert client.get("Patient/nobody/Observation").status_code == 404
    assert client.get("Patient/pat-p01/Practitioner").status_code == 404
    assert client.get("Patient/pat-p01/_history").json()["type"] == "history"
    mine = Fhir(client.base.removesuffix("/fhir"),
                token_for(app, "patient/*.rs", patient="pat-p02", ttl_seconds=600))
    assert mine.get("Patient/pat-p01/Observation").status_code == 404
    assert mine.ids("Patient/pat-p02/Goal") == client.ids("Goal", [("patient", "pat-p02")])


def test_system_search_across_types(fhir):
    client, _ = fhir
    found = client.bundle("", [("_type", "Patient,CarePlan"), ("_id", "pat-p01,cp-p01-plan")])
    assert {(e["resource"]["resourceType"], e["resource"]["id"]) for e in found["entry"]} == {
        ("Patient", "pat-p01"), ("CarePlan", "cp-p01-plan")}
    assert found["total"] == 2
    paged = client.bundle("", [("_type", "Goal,CareTeam"), ("_count", "5"), ("_sort", "_id")])
    assert paged["total"] == len(everything_of(client, "Goal")) + 6
    seen, url = [], None
    while True:
        page = client.session.get(url, timeout=60).json() if url else paged
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        if url is None:
            break
    assert len(seen) == paged["total"] and seen == sorted(seen)
    for params, bad in [([("_id", "x")], "_type"), ([("_type", "Spaceship")], "_type"),
                        ([("_type", "Goal"), ("patient", "pat-p01")], "patient"),
                        ([("_type", "Goal"), ("_sort", "target-date")], "_sort")]:
        response = client.get("", params)
        assert response.status_code == 400
        assert [bad] in [i.get("expression") for i in response.json()["issue"]]


def test_system_history_lists_every_type_and_honours_since_and_the_token(fhir):
    client, app = fhir
    history = client.bundle("_history", [("_count", "500")])
    types = {e["resource"]["resourceType"] for e in history["entry"] if "resource" in e}
    assert {"Patient", "CarePlan", "Observation", "Practitioner", "Provenance"} <= types
    stamps = [e["response"]["lastModified"] for e in history["entry"]]
    assert stamps == sorted(stamps, reverse=True)
    later = client.bundle("_history", [("_since", "2999-01-01T00:00:00Z")])
    assert later["total"] == 0
    mine = Fhir(client.base.removesuffix("/fhir"),
                token_for(app, "patient/*.rs", patient="pat-p02", ttl_seconds=600))
    own = mine.bundle("_history", [("_count", "500")])
    subjects = {subject(e["resource"]) for e in own["entry"] if "resource" in e
                and subject(e["resource"])}
    assert subjects == {"Patient/pat-p02"}
    assert client.get("_history", [("_type", "Goal")]).status_code == 400


def test_everything_is_the_patients_record_paged_and_filtered(fhir):
    client, app = fhir
    whole = client.bundle("Patient/pat-p01/$everything", [("_count", "500")])
    matches = {(e["resource"]["resourceType"], e["resource"]["id"])
               for e in whole["entry"] if e["search"]["mode"] == "match"}
    assert ("Patient", "pat-p01") in matches and ("CarePlan", "cp-p01-plan") in matches
    assert ("Provenance", "prov-syn-1") in matches
    assert {key for key in matches if key[0] == "Observation"} == {
        ("Observation", i) for i in client.ids("Observation", [("patient", "pat-p01"),
                                                               ("_count", "500")])}
    assert all(subject(e["resource"]) in ("", "Patient/pat-p01") for e in whole["entry"]
               if e["search"]["mode"] == "match")
    included = {e["resource"]["resourceType"] for e in whole["entry"]
                if e["search"]["mode"] == "include"}
    assert included == {"Practitioner"}
    assert whole["total"] == len(matches)
    only = client.bundle("Patient/pat-p01/$everything", [("_type", "Goal,CarePlan")])
    assert {e["resource"]["resourceType"] for e in only["entry"]
            if e["search"]["mode"] == "match"} == {"Goal", "CarePlan"}
    first = client.bundle("Patient/pat-p01/$everything", [("_count", "10")])
    assert len([e for e in first["entry"] if e["search"]["mode"] == "match"]) == 10
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert "_offset=10" in next_url
    assert client.bundle("Patient/pat-p01/$everything",
                         [("_since", "2999-01-01T00:00:00Z")])["total"] == 0
    for params in ([("_type", "Spaceship")], [("_since", "yesterday")], [("colour", "blue")]):
        assert client.get("Patient/pat-p01/$everything", params).status_code == 400
    mine = Fhir(client.base.removesuffix("/fhir"),
                token_for(app, "patient/*.rs", patient="pat-p02", ttl_seconds=600))
    assert mine.get("Patient/pat-p01/$everything").status_code == 404
    assert mine.bundle("Patient/pat-p02/$everything")["total"] > 0
    goals_only = Fhir(client.base.removesuffix("/fhir"),
                      token_for(app, "system/Patient.rs", "system/Goal.rs", ttl_seconds=600))
    narrow = goals_only.bundle("Patient/pat-p01/$everything", [("_count", "500")])
    assert {e["resource"]["resourceType"] for e in narrow["entry"]} == {"Patient", "Goal"}
    assert goals_only.get("Patient/pat-p01/$everything",
                          [("_type", "Observation")]).status_code == 403
    no_patient = Fhir(client.base.removesuffix("/fhir"),
                      token_for(app, "system/Goal.rs", ttl_seconds=600))
    assert no_patient.get("Patient/pat-p01/$everything").status_code == 403


# -- the same through a maintained FHIR client (fhirpy) --------------------------------------------

@pytest.fixture(scope="module")
def fhirpy_client(fhir):
    from fhirpy import SyncFHIRClient

    client, _ = fhir
    return SyncFHIRClient(client.base, requests_config={"timeout": 60},
                          authorization=client.session.headers["Authorization"])


@pytest.mark.parametrize("rtype, names", [(t, n) for t, n, e in us_core_searches()
                                          if e == "SHALL"],
                         ids=lambda v: v if isinstance(v, str) else "+".join(v))
def test_fhirpy_runs_each_us_core_shall_search(fhir, fhirpy_client, rtype, names):
    client, _ = fhir
    query, predicate = EXAMPLES[(rtype, names)][0]
    expected = {r["id"] for r in everything_of(client, rtype) if predicate(r)}
    found = fhirpy_client.resources(rtype).search(**dict(query)).limit(3).fetch_all()
    assert {r["id"] for r in found} == expected
    assert len(found) == len(expected)  # paged by 3, nothing twice


def test_fhirpy_pages_sorts_subsets_chains_and_includes(fhirpy_client):
    observations = (fhirpy_client.resources("Observation").search(patient="pat-p01")
                    .sort("-date", "_id").elements("code", "effective").limit(7)
                    .fetch_all())
    assert len(observations) == fhirpy_client.resources("Observation").search(
        patient="pat-p01").count() > 7
    dates = [r["effectiveDateTime"] for r in observations if "effectiveDateTime" in r]
    assert [dt.datetime.fromisoformat(d) for d in dates] == sorted(
        (dt.datetime.fromisoformat(d) for d in dates), reverse=True)
    assert {key for r in observations for key in r} - {
        "resourceType", "id", "meta", "status", "code", "effectiveDateTime",
        "effectivePeriod"} == set()  # status: mandatory, so always kept
    chained = fhirpy_client.resources("Observation").search(
        **{"patient.identifier": "urn:fhir-bridge:id:mrn|SYN-10002",
           "code": f"{LOINC}|14334-7"}).fetch_all()
    assert len(chained) == 3
    reverse = fhirpy_client.resources("Patient").has("Goal", "patient",
                                                     **{"lifecycle-status": "proposed"})
    assert [p["id"] for p in reverse.fetch_all()] == ["pat-p03"]
    bundle = (fhirpy_client.resources("CarePlan").search(patient="pat-p01")
              .include("CarePlan", "care-team").revinclude("Provenance", "target")
              .fetch_raw())
    assert {e["resource"]["resourceType"] for e in bundle.entry} == {
        "CarePlan", "CareTeam", "Provenance"}


def test_fhirpy_runs_everything_and_follows_its_pages(fhirpy_client):
    first = fhirpy_client.execute("Patient/pat-p01/$everything", method="get",
                                  params={"_count": "20"})
    total, seen = first["total"], [e["resource"]["id"] for e in first["entry"]
                                   if e["search"]["mode"] == "match"]
    page = first
    while (following := next((link["url"] for link in page["link"]
                              if link["relation"] == "next"), None)):
        path, _, query = following.split("/fhir/", 1)[1].partition("?")
        page = fhirpy_client.execute(path, method="get", params=dict(parse_qsl(query)))
        seen += [e["resource"]["id"] for e in page["entry"] if e["search"]["mode"] == "match"]
    assert len(seen) == len(set(seen)) == total > 20
    goals = fhirpy_client.execute("Patient/pat-p01/$everything", method="get",
                                  params={"_type": "Goal"})
    assert {e["resource"]["id"] for e in goals["entry"]} == {
        "goal-p01-goal-remission", "goal-p01-goal-sleep"}
