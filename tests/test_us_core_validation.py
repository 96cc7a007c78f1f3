"""The bridge's FHIR output passes the HL7 validation engine with US Core 7.0.0 loaded.

The validating HAPI instance (scripts/hapi-server with HAPI_FHIR_PACKAGES, see docs/conformance.md)
runs HAPI's instance validator offline with US Core 7.0.0, the FHIR Extensions Pack and HL7
Terminology. Every fixture's `fhir-bridge map` output and every kind of record (each concept,
each measurement kind, each instrument, dose changes, discontinuations, derived Flags and
DetectedIssues) goes to `$validate`; an error fails the test unless EXPLAINED says why it is
an artifact of validating offline. Official US Core examples are the control: they give no
unexplained error either, so the explanations are not broad enough to hide a real one.
"""

from __future__ import annotations

import copy
import os
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.cli import map_document
from fhir_bridge.mapping.valuemaps import MAPPINGS_DIR

from .conftest import fixture_documents, read_json

VALIDATOR_URL = os.environ.get("FHIR_BRIDGE_TEST_VALIDATOR_URL", "").rstrip("/")
US_CORE_EXAMPLES = PROJECT_ROOT.parent / "shared" / "reference" / "us-core-7.0.0-examples"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"

#: Errors that say nothing about the data, only about validating offline: (message ids, pattern
#: on the message, why it is acceptable). Keep it short; test_every_explanation_is_needed fails
#: on an entry nothing needs. HAPI already reports LOINC, SNOMED CT and RxNorm codes it cannot
#: check offline, and the VSAC value sets (us.nlm.vsac) it does not have, as warnings.
EXPLAINED: list[tuple[tuple[str, ...], str, str]] = [
    (("Terminology_PassThrough_TX_Message", "Terminology_TX_NoValid_12"),
     r"CodeSystem is unknown and can't be validated: urn:oid:2\.16\.840\.1\.113883\.6\.238 ",
     "the CDC Race & Ethnicity code system (PHIN VADS, not available offline) that US Core's "
     "race and ethnicity value sets are built from: no code of it can be checked, so every "
     "coded race or ethnicity fails the required binding offline"),
]


@dataclass(frozen=True)
class Issue:
    severity: str
    message_id: str
    message: str
    location: str

    def explanation(self) -> str | None:
        for message_ids, pattern, why in EXPLAINED:
            if self.message_id in message_ids and re.search(pattern, self.message):
                return why
        return None


@pytest.fixture(scope="module")
def validator_url() -> str:
    """The validating HAPI instance (US Core loaded). Nothing is written to it: $validate only."""
    if not VALIDATOR_URL:
        if os.environ.get("CI"):
            pytest.fail("FHIR_BRIDGE_TEST_VALIDATOR_URL is not set: the validating HAPI "
                        "server must run in CI")
        pytest.skip("validating HAPI not configured (HAPI_FHIR_PACKAGES=... scripts/hapi-server "
                    "start, then FHIR_BRIDGE_TEST_VALIDATOR_URL)")
    return VALIDATOR_URL


_SEEN: dict[str, list[Issue]] = {}  # what each validated input gave, by name (this run)


def validate(base_url: str, resource: dict, name: str | None = None) -> list[Issue]:
    """Issues of $validate on a resource (a Bundle: every entry too), against the profiles it
    declares. Remembered under ``name`` for the explanation check."""
    import requests

    body = {"resourceType": "Parameters", "parameter": [{"name": "resource",
                                                         "resource": resource}]}
    response = requests.post(f"{base_url}/{resource['resourceType']}/$validate", json=body,
                             headers={"Content-Type": "application/fhir+json",
                                      "Accept": "application/fhir+json"}, timeout=300)
    outcome = response.json()
    assert outcome.get("resourceType") == "OperationOutcome", outcome
    issues = []
    for issue in outcome.get("issue") or []:
        message_id = next((ext.get("valueString", "") for ext in issue.get("extension") or []
                           if ext.get("url", "").endswith("operationoutcome-message-id")), "")
        location = (issue.get("location") or issue.get("expression") or [""])[0]
        issues.append(Issue(issue.get("severity", ""), message_id,
                            issue.get("diagnostics", ""), location))
    if name is not None:
        _SEEN[name] = issues
    return issues


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity in ("error", "fatal")]


def unexplained(issues: list[Issue]) -> list[Issue]:
    return [i for i in errors(issues) if i.explanation() is None]


#: What a validator says of a definition it does not have (an extension, a code system).
_UNKNOWN = re.compile(r"unknown|not found|could not be found|can't be validated|"
                      r"cannot be validated|unable to", re.IGNORECASE)


def bridge_unknowns(issues: list[Issue]) -> list[Issue]:
    """Issues, of any severity, saying one of the bridge's own extensions or code systems is
    unknown: with the bridge's package loaded (scripts/test) there must be none. A code of a
    fragment system (free-text drugs and side effects no table holds) is not one of them."""
    return [i for i in issues if "urn:fhir-bridge:" in i.message
            and _UNKNOWN.search(i.message) and "fragment" not in i.message]


def _report(issues: list[Issue]) -> str:
    counts = Counter((i.message_id, re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "_", i.message)[:140])
                     for i in issues)
    lines = [f"{n} x {mid}: {msg}" for (mid, msg), n in counts.most_common(20)]
    lines += [f"  e.g. {i.location}: {i.message}" for i in issues[:10]]
    return "\n".join(lines)


# -- every kind of record -------------------------------------------------------------------------

def _load_yaml(name: str) -> dict:
    return yaml.safe_load((MAPPINGS_DIR / name).read_text(encoding="utf-8"))


def _base_document() -> dict:
    """The people every synthetic record refers to (patient, practitioners), from a fixture."""
    doc = read_json(fixture_documents()[0])
    return {"patients": doc["patients"], "practitioners": doc["practitioners"]}


def kind_names() -> list[str]:
    """The kinds of record validated besides the fixtures (cheap: no mapping)."""
    return sorted([f"measurement:{k}" for k in _load_yaml("measurements.yaml")]
                  + [f"instrument:{k}" for k in _load_yaml("instruments.yaml")]
                  + ["prescription:dose-change", "prescription:discontinuation",
                     "derived:detected-issue", "derived:monitoring-overdue"])


@cache
def record_kinds() -> dict[str, dict]:
    """A small internal document per kind of record, named by the kind."""
    documents = [read_json(p) for p in fixture_documents()]
    base = _base_document()
    patient_id = base["patients"][0]["id"]
    clinician_id = base["practitioners"][0]["id"]
    kinds: dict[str, dict] = {}

    measurement_template = next(m for doc in documents for m in doc.get("measurements", [])
                                if m["kind"] == "lithium")
    bp_template = next(m for doc in documents for m in doc.get("measurements", [])
                       if m["kind"] == "blood-pressure")
    for kind, spec in _load_yaml("measurements.yaml").items():
        record = copy.deepcopy(bp_template if spec.get("components") else measurement_template)
        record.update(id=f"v-{kind}", patient_id=patient_id, kind=kind, unit=spec["unit"],
                      performer_id=clinician_id)
        record.pop("related_prescription_id", None)
        kinds[f"measurement:{kind}"] = {**base, "measurements": [record]}

    for name, spec in _load_yaml("instruments.yaml").items():
        items = [{"number": item["number"], "value": item["max"]} for item in spec["items"]]
        record = {"id": f"v-{name}", "patient_id": patient_id, "instrument": name,
                  "effective": "2025-03-03T09:50:00-05:00", "administered_by_id": clinician_id,
                  "items": items}
        kinds[f"instrument:{name}"] = {**base, "assessments": [record]}

    kinds["prescription:dose-change"] = next(
        d for d in documents
        if any("dose change" in (rx.get("status_reason") or "") for rx in d["prescriptions"]))
    kinds["prescription:discontinuation"] = next(
        d for d in documents if any(rx.get("discontinuation") for rx in d["prescriptions"]))
    kinds["derived:detected-issue"] = next(
        d for d in documents
        if any(e["resource"]["resourceType"] == "DetectedIssue" for e in map_document(d)["entry"]))
    overdue = copy.deepcopy(next(d for d in documents
                                 if any(a.get("kind") == "monitoring"
                                        for plan in d.get("care-plans", [])
                                        for a in plan["activities"])))
    item = next(a for a in overdue["care-plans"][0]["activities"] if a["kind"] == "monitoring")
    item.pop("schedule", None)
    item.update(due_by="2025-08-01", overdue_since="2025-08-02")
    kinds["derived:monitoring-overdue"] = overdue
    return kinds


def _mapped_kinds() -> dict[str, dict]:
    return {kind: map_document(doc) for kind, doc in record_kinds().items()}


def test_every_kind_of_record_is_covered():
    """The fixtures hold every concept; with the kinds below, every measurement kind, every
    instrument and the derived resources (a Flag from an alert, a DetectedIssue from a safety
    check) are validated too."""
    from fhir_bridge.model import CONCEPTS

    sections = {s for p in fixture_documents() for s, records in read_json(p).items() if records}
    derived = {"detected-issue"}  # made by the safety checks from the fixtures' prescriptions
    assert {c.name for c in CONCEPTS if c.collection in sections} == \
        {c.name for c in CONCEPTS} - derived
    kinds = _mapped_kinds()
    assert sorted(kinds) == kind_names()
    assert {k.split(":", 1)[1] for k in kinds if k.startswith("measurement:")} == \
        set(_load_yaml("measurements.yaml"))
    assert {k.split(":", 1)[1] for k in kinds if k.startswith("instrument:")} == \
        set(_load_yaml("instruments.yaml"))
    types = Counter(e["resource"]["resourceType"] for b in kinds.values() for e in b["entry"])
    assert types["DetectedIssue"] > 0
    assert types["Flag"] >= 2  # an answer that needs attention, an overdue monitoring item


def test_every_resource_declares_a_us_core_profile_where_one_applies():
    """US Core's applicable profile is checked because the resource declares it (a validator
    checks the declared profiles); Flag and DetectedIssue have no US Core profile."""
    bundles = [map_document(read_json(p)) for p in fixture_documents()]
    for bundle in bundles + list(_mapped_kinds().values()):
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] in ("Flag", "DetectedIssue"):
                continue
            profiles = resource.get("meta", {}).get("profile") or []
            assert any(p.startswith(US_CORE) for p in profiles), resource["id"]


@pytest.mark.hapi
@pytest.mark.parametrize("path", fixture_documents(), ids=lambda p: p.stem)
def test_fixture_output_has_no_unexplained_error(validator_url, path):
    bundle = map_document(read_json(path))
    issues = validate(validator_url, bundle, f"fixture:{path.stem}")
    bad = unexplained(issues)
    assert not bad, _report(bad)
    unknown = bridge_unknowns(issues)
    assert not unknown, _report(unknown)


@pytest.mark.hapi
@pytest.mark.parametrize("kind", kind_names())
def test_every_kind_of_record_has_no_unexplained_error(validator_url, kind):
    bundle = map_document(record_kinds()[kind])
    issues = validate(validator_url, bundle, kind)
    bad = unexplained(issues)
    assert not bad, _report(bad)
    unknown = bridge_unknowns(issues)
    assert not unknown, _report(unknown)


# -- the control ----------------------------------------------------------------------------------

def _examples() -> list[Path]:
    return sorted(US_CORE_EXAMPLES.glob("*.json"))


@pytest.mark.hapi
@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.stem)
def test_official_us_core_examples_give_no_unexplained_error(validator_url, path):
    bad = unexplained(validate(validator_url, read_json(path), f"example:{path.stem}"))
    assert not bad, _report(bad)


@pytest.mark.hapi
def test_every_explanation_is_needed(validator_url):
    """Each explanation explains some error of the official examples or of the bridge's output
    (validated above, or here when this test runs alone): none is dead weight that could hide a
    real error later."""
    for path in _examples():
        if f"example:{path.stem}" not in _SEEN:
            validate(validator_url, read_json(path), f"example:{path.stem}")
    explained = {i.explanation() for issues in _SEEN.values() for i in errors(issues)}
    for _, pattern, why in EXPLAINED:
        assert why in explained, f"nothing needs the explanation {pattern!r}"


@pytest.mark.hapi
def test_the_validator_finds_a_real_error(validator_url):
    """The server really checks US Core: the official blood pressure without its components
    (systolic and diastolic are required by us-core-blood-pressure) fails."""
    resource = read_json(US_CORE_EXAMPLES / "blood-pressure.json")
    resource.pop("component")
    assert unexplained(validate(validator_url, resource))


# -- the bridge's own package ---------------------------------------------------------------------

def _discontinued_prescription() -> dict:
    """A MedicationRequest of the fixtures with the bridge's discontinuation extension and a
    local route code."""
    for path in fixture_documents():
        for entry in map_document(read_json(path))["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "MedicationRequest" and any(
                    "discontinuation" in x["url"] for x in resource.get("extension", [])):
                return copy.deepcopy(resource)
    raise AssertionError("no fixture has a discontinued prescription")


@pytest.mark.hapi
def test_the_bridge_package_makes_its_extensions_and_code_systems_known(validator_url):
    """scripts/test gives the validating server the package `fhir-bridge package build`
    makes: an extension and local codes of the bridge are then known definitions."""
    resource = _discontinued_prescription()
    resource["dosageInstruction"][0]["route"] = {"coding": [{
        "system": "urn:fhir-bridge:codesystem:route", "code": "intramuscular",
        "display": "intramuscular"}]}
    issues = validate(validator_url, resource)
    assert not bridge_unknowns(issues), _report(bridge_unknowns(issues))
    assert not unexplained(issues), _report(unexplained(issues))


@pytest.mark.hapi
def test_a_code_outside_a_bridge_code_system_is_an_error(validator_url):
    """The CodeSystems are really loaded (not merely ignored): a code one of them does not
    define fails, with the code named."""
    resource = _discontinued_prescription()
    resource["dosageInstruction"][0]["route"] = {"coding": [{
        "system": "urn:fhir-bridge:codesystem:route", "code": "by-telepathy"}]}
    bad = [i for i in errors(validate(validator_url, resource)) if "by-telepathy" in i.message]
    assert bad, "an unknown code of a complete bridge CodeSystem passed"


@pytest.mark.hapi
def test_an_extension_that_breaks_its_definition_is_an_error(validator_url):
    """The StructureDefinitions are loaded: the discontinuation extension without its date
    fails against its definition."""
    resource = _discontinued_prescription()
    ext = next(x for x in resource["extension"] if "discontinuation" in x["url"])
    ext["extension"] = [x for x in ext["extension"] if x["url"] != "date"]
    assert errors(validate(validator_url, resource))
