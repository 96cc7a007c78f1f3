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


# -- US Core conformance details (docs/conformance.md) -------------------------------------------

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
XHTML = "{http://www.w3.org/1999/xhtml}"


def test_every_entry_has_its_canonical_full_url(mapped):
    """R4 requires a fullUrl on every entry but a POST; `map` gives <base>/<type>/<id>, so the
    relative references between the resources resolve inside the bundle."""
    from fhir_bridge.config import load_config
    from fhir_bridge.facade.urls import fhir_base

    _, bundle = mapped
    base = fhir_base(load_config())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"{base}/{resource['resourceType']}/{resource['id']}"


def test_every_resource_has_a_generated_narrative_of_safe_xhtml(mapped):
    import xml.etree.ElementTree as ET

    _, bundle = mapped
    for resource in _resources(bundle):
        assert resource["text"]["status"] == "generated", resource["id"]
        div = ET.fromstring(resource["text"]["div"])
        assert div.tag == f"{XHTML}div"
        tags = {element.tag.removeprefix(XHTML) for element in div.iter()}
        assert tags <= {"div", "p", "b", "ul", "li", "table", "tr", "th", "td"}, tags
        assert all(not element.attrib for element in div.iter()), "no attributes, no scripts"


def test_text_from_a_record_is_escaped_in_the_narrative():
    from fhir_bridge.fhir.narrative import narrative

    div = narrative({"resourceType": "Condition", "id": "x",
                     "code": {"text": '<script>alert("x")</script> & more'}})["div"]
    assert "<script>" not in div
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in div


def test_every_observation_has_a_category(mapped):
    _, bundle = mapped
    for resource in _resources(bundle):
        if resource["resourceType"] == "Observation":
            assert resource["category"][0]["coding"][0]["code"], resource["id"]


def test_vital_signs_claim_their_specific_us_core_profile(mapped):
    specific = {"29463-7": "us-core-body-weight", "39156-5": "us-core-bmi",
                "8302-2": "us-core-body-height", "8867-4": "us-core-heart-rate",
                "85354-9": "us-core-blood-pressure"}
    _, bundle = mapped
    for resource in _resources(bundle):
        code = resource.get("code", {}).get("coding", [{}])[0].get("code")
        if resource["resourceType"] == "Observation" and code in specific:
            assert resource["meta"]["profile"] == [US_CORE + specific[code]], resource["id"]


def test_blood_pressure_has_loinc_systolic_and_diastolic_components(mapped):
    _, bundle = mapped
    for resource in _resources(bundle):
        if resource.get("meta", {}).get("profile") == [US_CORE + "us-core-blood-pressure"]:
            codes = [(c["code"]["coding"][0]["system"], c["code"]["coding"][0]["code"],
                      c["valueQuantity"]["code"]) for c in resource["component"]]
            assert codes == [("http://loinc.org", "8480-6", "mm[Hg]"),
                             ("http://loinc.org", "8462-4", "mm[Hg]")]
            assert "valueQuantity" not in resource


def test_quantities_use_ucum_without_annotations(mapped):
    """Counts and scores are UCUM unit 1 with the word as unit, never {tablet} or {score}."""
    _, bundle = mapped
    text = str(bundle)
    assert not re.search(r"'code': '\{", text)
    assert "'unit': 'tablet', 'system': 'http://unitsofmeasure.org', 'code': '1'" in text \
        or "'unit': 'capsule', 'system': 'http://unitsofmeasure.org', 'code': '1'" in text \
        or "'unit': 'score', 'system': 'http://unitsofmeasure.org', 'code': '1'" in text


def test_positive_and_negative_screens_use_the_standard_interpretation_code():
    """A plain positive or negative screen (PHQ-2) -> v3 POS / NEG; a PHQ-9 severity band has
    no standard code: the band as a local code, with its text either way."""
    from fhir_bridge.mapping.engine import Mapper
    from fhir_bridge.model import concept_by_name

    mapper = Mapper()
    v3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
    for instrument, answers, expected in [
            ("phq-2", [3, 3], (v3, "POS")), ("phq-2", [0, 0], (v3, "NEG")),
            ("phq-9", [3] * 9, ("urn:fhir-bridge:codesystem:score-band", "phq-9.severe"))]:
        record = concept_by_name("assessment").load(
            {"id": "a1", "patient_id": "p1", "instrument": instrument,
             "effective": "2025-01-01T10:00:00Z",
             "items": [{"number": n, "value": v} for n, v in enumerate(answers, start=1)]})
        total = next(r for r in mapper.to_fhir("assessment", record)
                     if r["id"].endswith(".total"))
        coding = total["interpretation"][0]["coding"][0]
        assert (coding["system"], coding["code"]) == expected
        assert total["interpretation"][0]["text"]
