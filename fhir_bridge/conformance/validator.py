"""``fhir-bridge validate``: a resource (or a Bundle and every resource in it) against base
FHIR R4 and the US Core profiles it claims, in Python, offline.

- Structure and base R4 rules: the fhir.resources models, dateTimes with offsets, reference
  targets (fhir/validate.py), and required bindings of ``code`` elements (the models' code
  lists, each trusted once it is found to be one code system's codes), all errors.
- Each profile in ``meta.profile`` (and the US Core vital-sign profile an Observation's code
  calls for, as base R4 requires of vital signs): cardinality, fixed and pattern values,
  required bindings (profiles.py) from the packages loaded (packages.py). A profile or value
  set not available offline (VSAC, ...) is a warning, never an error.
- ``--server URL``: the server's ``$validate`` instead (through the project's FHIR client).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..fhir.validate import code_values, resource_issues
from .packages import Definitions, definitions
from .profiles import Finding, ProfileChecker, Snapshot, matches_pattern
from .terminology import ValueSets

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
SEVERITIES = ("fatal", "error", "warning", "information")
BASE_PROBE = "http://hl7.org/fhir/administrative-gender"  # a base R4 code system


@dataclass(frozen=True)
class ValidationIssue:
    severity: str
    path: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity in ("fatal", "error")


@lru_cache(maxsize=4)
def _checkers(defs: Definitions) -> tuple[ValueSets, dict]:
    return ValueSets(defs), {}


def _snapshot(defs: Definitions, url: str) -> Snapshot | None:
    value_sets, snapshots = _checkers(defs)
    if url not in snapshots:
        sd = defs.get(url, "StructureDefinition")
        snapshots[url] = Snapshot(sd) if sd is not None else None
    return snapshots[url]


@lru_cache(maxsize=4)
def _implied(defs: Definitions) -> tuple[tuple[str, str, dict], ...]:
    """(type, profile url, code pattern) of the US Core profiles that a code calls for (the
    vital signs: blood pressure, heart rate, ...)."""
    out = []
    for url, sd in defs.by_url.items():
        if "|" in url or not url.startswith(US_CORE) or sd["resourceType"] != \
                "StructureDefinition" or sd.get("type") != "Observation":
            continue
        code = next((e.get("patternCodeableConcept") for e in sd.get("snapshot", {}).get(
            "element", []) if e["id"] == "Observation.code"), None)
        if code and sd.get("baseDefinition", "").endswith("us-core-vital-signs"):
            out.append(("Observation", url, code))
    return tuple(out)


def profiles_for(resource: dict, defs: Definitions) -> list[str]:
    claimed = list((resource.get("meta") or {}).get("profile") or [])
    for rtype, url, code in _implied(defs):
        if resource.get("resourceType") == rtype and url not in claimed and \
                matches_pattern(resource.get("code"), code):
            claimed.append(url)
    return claimed


@lru_cache(maxsize=None)
def _closed(codes: tuple[str, ...], defs: Definitions) -> bool:
    """Whether a model's code list is a real value list: all its codes are codes of one code
    system here (administrative-gender, medicationrequest-status, ...). Without base R4's code
    systems (r4core.py) every list is taken as it is."""
    value_sets, _ = _checkers(defs)
    if value_sets.system_codes(BASE_PROBE) is None:
        return True
    for url, resource in defs.by_url.items():
        if resource["resourceType"] == "CodeSystem" and "|" not in url:
            known = value_sets.system_codes(url)
            if known is not None and all(code in known for code in codes):
                return True
    return False


def _base_codes(resource: Any, defs: Definitions) -> list[ValidationIssue]:
    """Base R4 required bindings of ``code`` elements (Patient.gender, ...status)."""
    # the value itself is not repeated: a code element may hold anything, a name included
    return [ValidationIssue("error", path, f"is not one of {', '.join(codes)} "
                            "(required binding)")
            for path, value, codes in code_values(resource)
            if value not in codes and _closed(codes, defs)]


def validate_resource(resource: Any, defs: Definitions | None = None) -> list[ValidationIssue]:
    defs = defs or definitions()
    issues = [ValidationIssue("error", i.path, i.message) for i in resource_issues(resource)]
    if not isinstance(resource, dict):
        return issues
    issues += _base_codes(resource, defs)
    value_sets, _ = _checkers(defs)
    for url in profiles_for(resource, defs):
        snapshot = _snapshot(defs, url.split("|", 1)[0])
        if snapshot is None:
            issues.append(ValidationIssue("warning", f"{resource.get('resourceType')}.meta",
                                          f"profile {url} is not available offline: not "
                                          "checked"))
            continue
        if snapshot.root is None or snapshot.root["path"] != resource.get("resourceType"):
            issues.append(ValidationIssue("error", f"{resource.get('resourceType')}.meta",
                                          f"profile {url} is for another resource type"))
            continue
        found: list[Finding] = ProfileChecker(snapshot, value_sets).check(resource)
        issues += [ValidationIssue(f.severity, f.path, f.message) for f in found]
    return _unique(issues)


def _unique(issues: list[ValidationIssue]) -> list[ValidationIssue]:
    """Each issue once; a code the base check already refused is not refused again by the
    profile's copy of the same binding."""
    seen, bound, out = set(), set(), []
    for issue in issues:
        binding = issue.is_error and issue.message.endswith("(required binding)")
        if issue in seen or (binding and issue.path in bound):
            continue
        seen.add(issue)
        if binding:
            bound.add(issue.path)
        out.append(issue)
    return out


def validate_document(doc: Any, defs: Definitions | None = None) -> list[ValidationIssue]:
    """Issues of a resource, or of a Bundle and every resource in it (paths from the Bundle)."""
    if not (isinstance(doc, dict) and doc.get("resourceType") == "Bundle"):
        return validate_resource(doc, defs)
    shell = {k: v for k, v in doc.items() if k != "entry"}
    issues = validate_resource(shell, defs)
    for index, entry in enumerate(doc.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        where = f"Bundle.entry[{index}]"
        if resource is None:
            if not (isinstance(entry, dict) and (entry.get("request") or {}).get("method")
                    == "DELETE"):
                issues.append(ValidationIssue("error", where, "has no resource"))
            continue
        issues += [ValidationIssue(i.severity, f"{where}.resource.{i.path}", i.message)
                   for i in validate_resource(resource, defs)]
    return issues


def validate_on_server(doc: Any, base_url: str) -> list[ValidationIssue]:
    """The issues a FHIR server's ``$validate`` reports (the project's FHIR client)."""
    from ..sync.client import FhirClient

    rtype = doc.get("resourceType") if isinstance(doc, dict) else None
    if not isinstance(rtype, str):
        return [ValidationIssue("error", "resourceType", "is missing")]
    # the resource itself as the body (FHIR allows it for $validate): the server's paths are
    # then the resource's own, not inside a Parameters
    with FhirClient(base_url, max_retries=1) as client:
        outcome = client.request("POST", f"{rtype}/$validate", json=doc, expect_body=True,
                                 headers={"Content-Type": "application/fhir+json"}).body
    issues = []
    for issue in (outcome or {}).get("issue") or []:
        where = (issue.get("expression") or issue.get("location") or [rtype])[0]
        severity = issue.get("severity") if issue.get("severity") in SEVERITIES else "error"
        issues.append(ValidationIssue(severity, where, issue.get("diagnostics")
                                      or (issue.get("details") or {}).get("text") or ""))
    return issues
