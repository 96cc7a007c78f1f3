"""Internal -> FHIR -> internal is lossless for every concept."""

import pytest
from hypothesis import HealthCheck, assume, given, settings
from marshmallow import ValidationError

from fhir_bridge.fhir.validate import resource_issues
from fhir_bridge.mapping.document import load_document
from fhir_bridge.mapping.engine import Mapper
from fhir_bridge.model import CONCEPTS, concept_by_name

from . import strategies
from .conftest import fixture_documents, read_json

MAPPER = Mapper()


def round_trip(concept_name: str, record: dict) -> tuple[dict, list]:
    resources = MAPPER.to_fhir(concept_name, record)
    index = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    back = MAPPER.to_internal(resources[0], index.get)
    assert back.concept == concept_name
    return concept_by_name(concept_name).load(back.record), resources


@pytest.mark.parametrize("path", fixture_documents(), ids=lambda p: p.stem)
def test_every_fixture_record_survives_the_round_trip(path):
    for concept, record in load_document(read_json(path)):
        again, _ = round_trip(concept.name, record)
        assert again == record


def test_the_property_test_covers_every_concept():
    assert set(strategies.BY_CONCEPT) == {c.name for c in CONCEPTS}


@pytest.mark.parametrize("concept_name", sorted(strategies.BY_CONCEPT))
def test_round_trip_is_lossless_for_any_valid_record(concept_name):
    concept = concept_by_name(concept_name)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(strategies.BY_CONCEPT[concept_name])
    def check(raw):
        try:
            record = concept.load(raw)
        except ValidationError:
            # A rare combination the schema refuses; Hypothesis fails the test (health check)
            # if the strategy produces too many of these to be meaningful.
            assume(False)
        again, resources = round_trip(concept_name, record)
        assert again == record
        for resource in resources:
            assert resource_issues(resource) == [], (resource["id"], resource_issues(resource))

    check()


def test_foreign_references_are_kept_and_reported_not_dropped():
    """A resource the bridge did not write keeps its references, and says so."""
    resource = {"resourceType": "Condition", "id": "example",
                "code": {"text": "Major depressive disorder"},
                "subject": {"reference": "Patient/example"},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/"
                                               "CodeSystem/condition-clinical",
                                               "code": "active"}]}}
    back = MAPPER.to_internal(resource)
    assert back.concept == "diagnosis"
    assert back.record["id"] == "example"
    assert back.record["patient_id"] == "Patient/example"
    assert ("reference", "Patient/example was not written by the bridge") in back.unmapped


def test_blood_pressure_components_are_read_by_loinc_code_and_by_the_older_local_code():
    """Components are written with LOINC 8480-6 / 8462-4; resources written before (local
    measurement-component codes) still read back to the same record."""
    record = concept_by_name("measurement").load(
        {"id": "bp1", "patient_id": "p1", "kind": "blood-pressure", "unit": "mm[Hg]",
         "effective": "2025-01-01T10:00:00Z",
         "components": [{"name": "systolic", "value": 120}, {"name": "diastolic", "value": 80}]})
    (resource,) = MAPPER.to_fhir("measurement", record)
    assert [c["code"]["coding"][0]["code"] for c in resource["component"]] == ["8480-6", "8462-4"]
    older = dict(resource, component=[
        {"code": {"coding": [{"system": "urn:fhir-bridge:codesystem:measurement-component",
                              "code": name, "display": f"{name.title()} blood pressure"}]},
         "valueQuantity": c["valueQuantity"]}
        for name, c in zip(("systolic", "diastolic"), resource["component"])])
    for written in (resource, older):
        back = MAPPER.to_internal(written)
        assert concept_by_name("measurement").load(back.record) == record


def test_count_units_are_ucum_1_and_read_back_as_their_word():
    from fhir_bridge.mapping.context import Context
    from fhir_bridge.mapping.transforms import internal_unit, ucum_quantity

    ctx = Context(MAPPER)
    quantity = ucum_quantity(30, "tablet", ctx)
    assert quantity == {"value": 30, "unit": "tablet", "system": "http://unitsofmeasure.org",
                        "code": "1"}
    assert internal_unit(quantity, ctx) == "tablet"
    assert internal_unit({"unit": "mmol/L", "system": "http://unitsofmeasure.org",
                          "code": "mmol/L"}, ctx) == "mmol/L"
