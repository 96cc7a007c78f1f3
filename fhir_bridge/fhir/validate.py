"""Validate FHIR resources once each with fhir.resources R4B models (strict: unknown elements
are errors), plus two rules the models do not enforce: a dateTime with a time carries an
offset, and a reference points at a resource type its element allows. R4B models validate R4 JSON for the resource types the bridge writes."""

from __future__ import annotations

import re
import typing
from functools import lru_cache
from typing import Any, Iterable, Iterator

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

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


def _walk(node: dict, cls: Any, path: list, found: list[Issue]) -> None:
    """The two rules the models do not enforce, in one pass over the JSON: a dateTime with a
    time carries an offset, and a Reference points at a type its element allows (the models
    carry the list, e.g. CarePlan.activity.detail.reasonReference: Condition, Observation,
    DiagnosticReport, DocumentReference, but do not check it)."""
    fields = _fields_by_alias(cls) if cls is not None else {}
    for key, value in node.items():
        allowed, child = fields.get(key, (None, None))
        items = value if isinstance(value, list) else (value,)
        for index, item in enumerate(items):
            step = f"{key}[{index}]" if isinstance(value, list) else key
            if isinstance(item, dict):
                if allowed is not None:
                    target = _relative_type(item.get("reference"))
                    if target is not None and target not in allowed:
                        found.append(Issue(".".join([*path, step]),
                                           f"may point at {', '.join(allowed)}, not {target}",
                                           "structure"))
                path.append(step)
                _walk(item, child, path, found)
                path.pop()
            elif isinstance(item, str) and _TIME_WITHOUT_OFFSET.match(item):
                found.append(Issue(".".join([*path, step]),
                                   "a dateTime with a time must carry a timezone offset"))


@lru_cache(maxsize=None)
def _codes(cls: Any) -> dict[str, tuple[str, ...]]:
    """JSON name -> the codes the model lists for a ``code`` element (``enum_values``). They
    are made from the element's short text: fhir.resources elides long lists with "+"
    (Observation.status, Questionnaire.item.type) and some are no codes at all
    (CapabilityStatement.format), so a caller checks a list against a code system before it
    trusts it (conformance/validator.py)."""
    out = {}
    for name, field in cls.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        codes = tuple(extra.get("enum_values") or ())
        if codes and "+" not in codes:
            out[field.alias or name] = codes
    return out


def code_values(resource: Any) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(path, value, the model's code list) of every ``code`` element that has such a list."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return
    try:
        cls = model_class(resource["resourceType"])
    except FhirValidationError:
        return
    yield from _code_walk(resource, cls, [resource["resourceType"]])


def _code_walk(node: dict, cls: Any, path: list) -> Iterator[tuple[str, str, tuple]]:
    codes, fields = _codes(cls), _fields_by_alias(cls)
    for key, value in node.items():
        child = fields.get(key, (None, None))[1]
        items = value if isinstance(value, list) else (value,)
        for index, item in enumerate(items):
            step = f"{key}[{index}]" if isinstance(value, list) else key
            if key in codes and isinstance(item, str):
                yield ".".join([*path, step]), item, codes[key]
            elif isinstance(item, dict) and child is not None:
                yield from _code_walk(item, child, [*path, step])


@lru_cache(maxsize=None)
def _fields_by_alias(cls: Any) -> dict[str, tuple[tuple[str, ...] | None, Any]]:
    """JSON name -> (reference types allowed, when the element restricts them; the model class
    of the element's values, when they are complex)."""
    out = {}
    for name, field in cls.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        allowed = tuple(extra.get("enum_reference_types") or ()) or None
        if allowed is not None and "Resource" in allowed:
            allowed = None
        out[field.alias or name] = (allowed, element_class(field.annotation))
    return out


def element_class(annotation: Any) -> Any:
    """The fhir.resources model class behind Optional[List[XType]] / XType, if any."""
    args = typing.get_args(annotation)
    for arg in args or (annotation,):
        if typing.get_args(arg):
            found = element_class(arg)
            if found is not None:
                return found
        getter = getattr(arg, "get_model_klass", None)
        if getter is not None:
            try:
                return getter()
            except Exception:  # noqa: BLE001 - a type without a model: nothing to walk
                return None
    return None


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
        cls.model_validate(resource)
    except ValidationError as exc:
        for err in exc.errors():
            issues.append(Issue(f"{rtype}.{_location(err['loc'])}", err["msg"], "structure"))
    _walk(resource, cls, [rtype], issues)
    return issues


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
