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
