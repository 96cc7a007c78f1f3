"""Validation of every outgoing resource: the R4B models, plus the two rules they leave out."""

from __future__ import annotations

import copy

import pytest

from fhir_bridge.errors import FhirValidationError
from fhir_bridge.fhir.validate import resource_issues, validate_resource

from .conftest import FIXTURES, read_json

GOLDEN = read_json(FIXTURES / "fhir" / "p01-depression-ssri-titration.json")
PLAN = next(e["resource"] for e in GOLDEN["entry"] if e["resource"]["resourceType"] == "CarePlan")


def test_the_golden_care_plan_is_valid():
    assert resource_issues(PLAN) == []


def test_a_reference_to_a_type_the_element_does_not_allow_is_refused():
    plan = copy.deepcopy(PLAN)
    plan["activity"][1]["detail"]["reasonReference"] = [{"reference": "MedicationRequest/rx-1"}]
    plan["addresses"] = [{"reference": "Patient/pat-p01"}]
    issues = {i.path: i.message for i in resource_issues(plan)}
    assert issues == {
        "CarePlan.activity[1].detail.reasonReference[0]":
            "may point at Condition, Observation, DiagnosticReport, DocumentReference, "
            "not MedicationRequest",
        "CarePlan.addresses[0]": "may point at Condition, not Patient"}
    with pytest.raises(FhirValidationError):
        validate_resource(plan)


@pytest.mark.parametrize("reference", ["Condition/cond-1", "Condition/cond-1/_history/2",
                                       "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                                       "#contained", "http://ehr.example/fhir/Condition/9"])
def test_allowed_versioned_absolute_and_uuid_references_pass(reference):
    plan = copy.deepcopy(PLAN)
    plan["addresses"] = [{"reference": reference}]
    assert resource_issues(plan) == []


def test_a_date_time_without_an_offset_is_refused_wherever_it_is():
    plan = copy.deepcopy(PLAN)
    plan["activity"][1]["detail"]["scheduledPeriod"] = {"start": "2025-03-10T09:00:00"}
    del plan["activity"][1]["detail"]["scheduledTiming"]
    assert {i.path for i in resource_issues(plan)} == {
        "CarePlan.activity[1].detail.scheduledPeriod.start"}
