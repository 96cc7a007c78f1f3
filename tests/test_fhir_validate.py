"""Validation of every outgoing resource (the R4B models, plus the rules they leave out), and
`fhir-bridge validate`: base R4 and the US Core profiles a resource claims."""

from __future__ import annotations

import copy
import json
import os
import re

import pytest

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.cli import main, map_document
from fhir_bridge.conformance.packages import definitions
from fhir_bridge.conformance.profiles import ProfileChecker, Snapshot
from fhir_bridge.conformance.r4core import jar_path
from fhir_bridge.conformance.terminology import ValueSets
from fhir_bridge.conformance.validator import validate_document
from fhir_bridge.errors import FhirValidationError
from fhir_bridge.fhir.validate import resource_issues, validate_resource

from .conftest import FIXTURES, fixture_documents, read_json

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


def test_a_code_outside_its_required_binding_is_refused():
    """Base R4 required bindings of code elements (Patient.gender, Observation.status)."""
    issues = validate_document({"resourceType": "Patient", "gender": "robot"})
    assert [(i.severity, i.path) for i in issues] == [("error", "Patient.gender")]
    assert "male, female, other, unknown" in issues[0].message


@pytest.mark.parametrize("status", ["corrected", "cancelled"])
def test_a_code_list_the_models_cut_short_is_not_held_against_a_resource(status):
    """fhir.resources lists Observation.status as "registered ... amended, +": the codes after
    it are as valid, and CapabilityStatement.format's list is no code list at all."""
    observation = _example("observation-serum-glucose.json")
    observation["status"] = status
    assert _errors(observation) == {}
    assert _errors({"resourceType": "CapabilityStatement", "status": "active",
                    "date": "2025-01-01", "kind": "instance", "fhirVersion": "4.0.1",
                    "format": ["application/fhir+json"]}) == {}


# -- fhir-bridge validate: base R4 and the US Core profiles claimed --------------------------------

EXAMPLES = PROJECT_ROOT.parent / "shared" / "reference" / "us-core-7.0.0-examples"


def _example(name: str) -> dict:
    return read_json(EXAMPLES / name)


def _errors(doc: dict) -> dict[str, str]:
    return {i.path: i.message for i in validate_document(doc) if i.is_error}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_official_us_core_example_is_accepted(path):
    assert _errors(read_json(path)) == {}


@pytest.mark.parametrize("path", fixture_documents(), ids=lambda p: p.stem)
def test_the_bridge_output_of_every_fixture_has_no_error(path):
    assert _errors(map_document(read_json(path))) == {}


@pytest.mark.parametrize("change, path, words", [
    # the bad value is not repeated (a code element may hold a name): the allowed codes are
    (lambda r: r.update(gender="robot"), "Patient.gender",
     "is not one of male, female, other, unknown"),
    (lambda r: r.pop("identifier"), "Patient.identifier", "1 required by us-core-patient"),
    (lambda r: r.pop("name"), "Patient.name", "1 required by us-core-patient"),
])
def test_a_us_core_patient_that_breaks_its_profile_is_rejected_with_the_path(change, path,
                                                                             words):
    patient = _example("patient-example.json")
    change(patient)
    errors = _errors(patient)
    assert path in errors and words in errors[path], errors


def test_a_prescription_with_a_bogus_status_is_rejected():
    request = _example("medicationrequest-coded-oral-axid.json")
    request["status"] = "bogus"
    assert list(_errors(request)) == ["MedicationRequest.status"]


@pytest.mark.parametrize("claims_profile", [True, False])
def test_a_blood_pressure_without_components_fails(claims_profile):
    """US Core's blood-pressure profile needs systolic and diastolic components; a vital sign
    coded 85354-9 is held to it whether or not it claims it (base R4 requires it)."""
    pressure = _example("blood-pressure.json")
    pressure.pop("component")
    if not claims_profile:
        pressure.pop("meta")
    errors = _errors(pressure)
    assert {"Observation.component", "Observation.component:systolic",
            "Observation.component:diastolic"} <= set(errors), errors


def test_a_component_with_the_wrong_code_does_not_count_for_its_slice():
    pressure = _example("blood-pressure.json")
    pressure["component"][0]["code"]["coding"][0]["code"] = "8462-4"  # two diastolics
    assert "Observation.component:systolic" in _errors(pressure)


def test_a_profile_not_available_offline_is_a_warning_not_an_error():
    patient = _example("patient-example.json")
    patient["meta"]["profile"].append("http://example.org/fhir/StructureDefinition/elsewhere")
    issues = validate_document(patient)
    assert not [i for i in issues if i.is_error]
    assert any(i.severity == "warning" and "elsewhere" in i.message for i in issues)


def test_a_value_set_not_available_offline_is_a_warning():
    """A required binding to a value set no package here holds (VSAC) cannot be checked."""
    sd = {"url": "http://example.org/sd", "snapshot": {"element": [
        {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
        {"id": "Observation.code", "path": "Observation.code", "min": 1, "max": "1",
         "binding": {"strength": "required",
                     "valueSet": "http://cts.nlm.nih.gov/fhir/ValueSet/2.16.840.1.113762.1"}}]}}
    checker = ProfileChecker(Snapshot(sd), ValueSets(definitions()))
    found = checker.check({"resourceType": "Observation", "code": {
        "coding": [{"system": "http://loinc.org", "code": "8867-4"}]}})
    assert [(f.severity, f.path) for f in found] == [("warning", "Observation.code")]


def test_a_base_r4_value_set_binds_a_coded_concept():
    """condition-clinical (a base R4 value set, read from HAPI's validation resources) holds
    the Condition's clinical status; a code outside it fails."""
    if jar_path() is None:
        if os.environ.get("CI"):
            pytest.fail("HAPI's hapi-fhir-validation-resources-r4 jar is missing: scripts/test "
                        "builds hapi-server/ first")
        pytest.skip("hapi-fhir-validation-resources-r4 not in ~/.m2 (scripts/hapi-server build)")
    condition = _example("condition-encounter-diagnosis-example1.json")
    condition["clinicalStatus"]["coding"][0]["code"] = "bogus"
    assert "Condition.clinicalStatus" in _errors(condition)


def test_a_bundle_reports_each_entry_by_its_path():
    bundle = map_document(read_json(fixture_documents()[0]))
    patient = next(i for i, e in enumerate(bundle["entry"])
                   if e["resource"]["resourceType"] == "Patient")
    bundle["entry"][patient]["resource"]["gender"] = "robot"
    assert list(_errors(bundle)) == [f"Bundle.entry[{patient}].resource.Patient.gender"]


# -- the command ----------------------------------------------------------------------------------

def test_the_command_lists_each_issue_with_severity_and_path_and_exits_1(tmp_path, capsys):
    pressure = _example("blood-pressure.json")
    pressure.pop("component")
    path = tmp_path / "bp.json"
    path.write_text(json.dumps(pressure))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "  error Observation.component: 2 required by us-core-blood-pressure" in err


def test_the_command_says_valid_and_exits_0(capsys):
    assert main(["validate", str(EXAMPLES / "patient-example.json")]) == 0
    assert capsys.readouterr().out.strip().endswith("patient-example.json: valid")


def test_a_server_that_does_not_answer_is_one_line_and_exit_2(capsys):
    assert main(["validate", "--server", "http://127.0.0.1:9/fhir",
                 str(EXAMPLES / "patient-example.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


@pytest.mark.hapi
def test_the_command_uses_a_servers_validate(tmp_path, capsys):
    """--server: the validating HAPI instance's $validate (US Core loaded) decides."""
    url = os.environ.get("FHIR_BRIDGE_TEST_VALIDATOR_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("FHIR_BRIDGE_TEST_VALIDATOR_URL is not set in CI")
        pytest.skip("no validating HAPI (FHIR_BRIDGE_TEST_VALIDATOR_URL)")
    assert main(["validate", "--server", url, str(EXAMPLES / "blood-pressure.json")]) == 0
    capsys.readouterr()
    pressure = EXAMPLES / "blood-pressure.json"
    bad = json.loads(pressure.read_text())
    bad.pop("component")
    path = tmp_path / "bp-without-components.json"
    path.write_text(json.dumps(bad))
    assert main(["validate", "--server", url, str(path)]) == 1
    assert re.search(r"^  error Observation\b.*component", capsys.readouterr().err, re.M)
