"""Validate FHIR resources once each with fhir.resources R4B models (strict: unknown elements
are errors), plus the one rule the models do not enforce: a dateTime with a time carries an
offset. R4B models validate R4 JSON for the resource types the bridge writes."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

from ..errors import FhirValidationError, Issue

_TIME_WITHOUT_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")

#: Resource types the bridge writes or reads; warmed at start-up (model import costs ~0.5 s).
RESOURCE_TYPES = ("Patient", "Practitioner", "RelatedPerson", "Condition", "MedicationRequest",
                  "Observation", "CarePlan", "CareTeam", "Goal", "Flag", "DetectedIssue",
                  "Bundle", "OperationOutcome")


@lru_cache(maxsize=None)
def model_class(resource_type: str):
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError) as exc:
        raise FhirValidationError(f"unknown resource type {resource_type!r}",
                                  [Issue("resourceType", "is not an R4 resource type")]) from exc


def warm(resource_types: Iterable[str] = RESOURCE_TYPES) -> None:
    for name in resource_types:
        model_class(name)


def _location(loc: tuple) -> str:
    out = ""
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += ("." if out else "") + str(step)
    return out


def _naive_times(node: Any, where: str, found: list[Issue]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _naive_times(value, f"{where}.{key}" if where else key, found)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _naive_times(value, f"{where}[{index}]", found)
    elif isinstance(node, str) and _TIME_WITHOUT_OFFSET.match(node):
        found.append(Issue(where, "a dateTime with a time must carry a timezone offset"))


def resource_issues(resource: dict[str, Any]) -> list[Issue]:
    """Every problem with one resource, located by path; empty when it is valid."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return [Issue("resourceType", "is missing")]
    rtype = resource["resourceType"]
    try:
        cls = model_class(rtype)
    except FhirValidationError as exc:
        return exc.issues
    issues: list[Issue] = []
    try:
        model = cls.model_validate(resource)
    except ValidationError as exc:
        for err in exc.errors():
            issues.append(Issue(f"{rtype}.{_location(err['loc'])}", err["msg"], "structure"))
    else:
        _reference_targets(model, rtype, issues)
    _naive_times(resource, rtype, issues)
    return issues


def _reference_targets(model: BaseModel, where: str, found: list[Issue]) -> None:
    """References point at a type the element allows (the models carry the list but do not
    check it: CarePlan.activity.detail.reasonReference cannot name a MedicationRequest)."""
    fields = type(model).model_fields
    for name in model.model_fields_set:
        value = getattr(model, name)
        if value is None:
            continue
        extra = fields[name].json_schema_extra if name in fields else None
        allowed = extra.get("enum_reference_types") if isinstance(extra, dict) else None
        alias = fields[name].alias or name if name in fields else name
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if not isinstance(item, BaseModel):
                continue
            path = f"{where}.{alias}" + (f"[{index}]" if isinstance(value, list) else "")
            if allowed and "Resource" not in allowed:
                target = _relative_type(getattr(item, "reference", None))
                if target is not None and target not in allowed:
                    found.append(Issue(path, f"may point at {', '.join(allowed)}, not {target}",
                                       "structure"))
            _reference_targets(item, path, found)


def _relative_type(reference: Any) -> str | None:
    if not isinstance(reference, str) or reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("?")[0].split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-2] if len(parts) >= 2 and parts[-2][:1].isupper() else None


def validate_resource(resource: dict[str, Any]) -> None:
    issues = resource_issues(resource)
    if issues:
        raise FhirValidationError(
            f"{resource.get('resourceType')}/{resource.get('id')} is not valid FHIR R4", issues)
