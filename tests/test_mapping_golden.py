"""Mapping fixtures to FHIR: golden output, valid R4, US Core elements present."""

import re

import pytest

from fhir_bridge.cli import map_document
from fhir_bridge.fhir.validate import resource_issues
from fhir_bridge.mapping import paths

from .conftest import FIXTURES, fixture_documents, read_json

DOCUMENTS = fixture_documents()

# US Core required and must-support elements (shared/design/fhir-notes.md) that every resource
# of the type carries in our output, as paths ("a|b" = either).
US_CORE_ELEMENTS = {
    "Patient": ["identifier[0].value", "name[0].family", "gender", "birthDate"],
    "Practitioner": ["identifier[0].value", "name[0].family", "qualification[0].code"],
    "RelatedPerson": ["patient.reference", "active", "relationship[0]", "name[0].family"],
    "Condition": ["category[0].coding[0].code", "code.text", "subject.reference",
                  "clinicalStatus.coding[0].code"],
    "MedicationRequest": ["status", "intent", "medicationCodeableConcept.coding[0].code",
                          "subject.reference", "requester.reference", "authoredOn",
                          "category[0].coding[0].code", "reportedBoolean",
                          "dosageInstruction[0].timing.repeat",
                          "dosageInstruction[0].doseAndRate[0].doseQuantity.value",
                          "dispenseRequest.quantity|dispenseRequest.numberOfRepeatsAllowed"
                          "|dosageInstruction[0].asNeededBoolean",
                          "reasonReference[0].reference|reasonCode|status"],
    "Observation": ["status", "code.coding[0].code", "subject.reference",
                    "effectiveDateTime|effectivePeriod.start",
                    "valueQuantity|valueInteger|valueCodeableConcept|hasMember|component"],
    "CarePlan": ["status", "intent", "category[0].coding[0].code", "subject.reference",
                 "text.status", "text.div"],
    "CareTeam": ["status", "subject.reference", "participant[0].role[0].coding[0].code",
                 "participant[0].member.reference"],
    "Goal": ["lifecycleStatus", "description.text", "subject.reference"],
    "Flag": ["status", "code.text", "subject.reference", "period.start"],
    "DetectedIssue": ["status", "code.text", "severity", "patient.reference",
                      "identifiedDateTime", "implicated[0].reference", "detail"],
}


def _resources(bundle):
    return [entry["resource"] for entry in bundle["entry"]]


@pytest.fixture(scope="module", params=DOCUMENTS, ids=lambda p: p.stem)
def mapped(request):
    return request.param, map_document(read_json(request.param))


def test_there_are_at_least_six_synthetic_patients():
    assert len(DOCUMENTS) >= 6
    for path in DOCUMENTS:
        assert len(read_json(path)["patients"]) == 1


def test_mapping_matches_the_golden_output(mapped):
    path, bundle = mapped
    golden = read_json(FIXTURES / "fhir" / path.name)
    assert bundle == golden, "run scripts/update-golden and review the diff"


def test_every_resource_is_valid_r4(mapped):
    _, bundle = mapped
    for resource in _resources(bundle):
        assert resource_issues(resource) == [], resource["id"]


def test_every_resource_carries_the_us_core_elements(mapped):
    _, bundle = mapped
    for resource in _resources(bundle):
        for element in US_CORE_ELEMENTS[resource["resourceType"]]:
            assert any(paths.get(resource, alt) is not None for alt in element.split("|")), \
                f"{resource['resourceType']}/{resource['id']} lacks {element}"


def test_screening_observations_are_surveys_and_panels_point_at_items_and_total(mapped):
    _, bundle = mapped
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in _resources(bundle)}
    panels = [r for r in by_ref.values() if r["resourceType"] == "Observation"
              and "hasMember" in r]
    for panel in panels:
        assert panel["category"][0]["coding"][0]["code"] == "survey"
        assert not any(key.startswith("value") for key in panel), "a panel has no value"
        for member in panel["hasMember"]:
            item = by_ref[member["reference"]]
            assert item["category"][0]["coding"][0]["code"] == "survey"
            assert item["subject"] == panel["subject"]
            assert {"valueInteger", "valueQuantity", "valueCodeableConcept"} & set(item)


def test_care_plans_are_assess_plan_with_generated_narrative_and_resolvable_references(mapped):
    _, bundle = mapped
    refs = {f"{r['resourceType']}/{r['id']}" for r in _resources(bundle)}
    for plan in (r for r in _resources(bundle) if r["resourceType"] == "CarePlan"):
        assert plan["category"][0]["coding"][0] == {
            "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
            "code": "assess-plan", "display": "Assessment and Plan of Treatment"}
        assert plan["text"]["status"] == "generated"
        assert plan["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        targets = [g["reference"] for g in plan.get("goal", [])]
        targets += [a["reference"] for a in plan.get("addresses", [])]
        targets += [a["reference"]["reference"] for a in plan.get("activity", [])
                    if "reference" in a]
        for target in targets:
            assert target in refs, f"{plan['id']} points at {target}, not in the bundle"


def test_date_times_always_carry_an_offset(mapped):
    _, bundle = mapped
    text = str(bundle)
    for value in re.findall(r"'(\d{4}-\d\d-\d\dT[^']*)'", text):
        assert re.search(r"(Z|[+-]\d\d:\d\d)$", value), value


def test_dose_changes_point_at_the_prescription_they_replace_which_is_stopped(mapped):
    _, bundle = mapped
    requests = {r["id"]: r for r in _resources(bundle) if r["resourceType"] == "MedicationRequest"}
    for request in requests.values():
        if "priorPrescription" in request:
            prior = requests[request["priorPrescription"]["reference"].split("/")[1]]
            assert prior["status"] == "stopped"
            assert request["note"][0]["text"]


def test_mapping_twice_gives_identical_resources_and_ids(mapped):
    path, bundle = mapped
    assert map_document(read_json(path)) == bundle
