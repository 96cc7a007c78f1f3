"""FHIR written to /fhir, read into internal records: which types and records can be written
or deleted, the reverse mapping (the parser the pull uses, ``Mapper.to_internal``, then the
record schema), and every problem named by its FHIRPath in the resource."""

from __future__ import annotations

import uuid
from typing import Callable

from ..errors import BridgeError, FhirValidationError, InvalidInput, Issue, MethodNotAllowed
from ..fhir.validate import resource_issues
from ..mapping.engine import Mapper, Mapping
from ..mapping.foreign import Foreign, parse_foreign
from ..model import Concept, concept_by_name

#: Types served from records that are not written through /fhir, and why (405).
NOT_WRITABLE = {
    "Goal": "a Goal is part of its CarePlan: write the CarePlan with its goals",
    "Flag": "Flags are derived from assessments and the monitoring schedule",
    "DetectedIssue": "DetectedIssues are found by the bridge's medication safety checks",
    "Provenance": "Provenance is written by sync for what it pulled",
    "AuditEvent": "the audit trail is written by the bridge only",
}
#: Records that are never deleted, and what to do instead (405). Every other record can be
#: deleted while no other record names it (409 naming them).
NOT_DELETABLE = {
    "patient": "a patient's chart is not deleted: update the Patient with active false",
    "prescription": "a prescription is stopped, not deleted: update the MedicationRequest "
                    "with status stopped (or entered-in-error)",
    "assessment": "assessment scores feed treatment response and safety activities on the "
                  "care plan, which a deletion cannot undo",
    "measurement": "measurements feed the care plan's monitoring schedule, which a deletion "
                   "cannot undo",
    "adherence": "an adherence report is also its prescription's adherence statement, which "
                 "a deletion cannot undo",
    "detected-issue": NOT_WRITABLE["DetectedIssue"],
}


def writable_types(mapper: Mapper) -> list[str]:
    """Types a client can create and update here (those of the records' entry mappings)."""
    return sorted({m.resource_type for m in mapper.mappings.values()
                   if not m.child and m.resource_type not in NOT_WRITABLE})


def deletable_types(mapper: Mapper) -> list[str]:
    return sorted({m.resource_type for m in mapper.mappings.values()
                   if not m.child and m.resource_type not in NOT_WRITABLE
                   and m.concept not in NOT_DELETABLE})


def write_support(mapper: Mapper) -> dict[str, tuple[str, ...]]:
    """Type -> the write interactions /fhir serves for it (for the CapabilityStatement)."""
    deletable = set(deletable_types(mapper))
    return {rtype: ("create", "update") + (("delete",) if rtype in deletable else ())
            for rtype in writable_types(mapper)}


def require_writable(mapper: Mapper, resource_type: str) -> None:
    if resource_type in NOT_WRITABLE:
        raise MethodNotAllowed(f"{resource_type} is not written through /fhir",
                               [Issue("(type)", NOT_WRITABLE[resource_type], "not-supported")])
    if resource_type not in writable_types(mapper):
        raise MethodNotAllowed(f"{resource_type} is not written here",
                               [Issue("(type)", f"{resource_type} is not served from records",
                                      "not-supported")])


def new_id() -> str:
    """A fresh record id for a create (the server assigns ids, R4 http.html#create)."""
    return "f" + uuid.uuid4().hex[:20]


def read_resource(mapper: Mapper, resource: object, resource_type: str,
                  resolve: Callable[[str], dict | None],
                  record_id: Callable[[Mapping], str]) -> Foreign:
    """The record a resource holds, read by the parser the pull uses (``parse_foreign``:
    the reverse mapping, the record schema, and the resource kept as sent with a note per
    element the record has no place for), stored under ``record_id(mapping)``. InvalidInput
    (422) names each element that is not valid R4 or that the record refuses, by FHIRPath."""
    if not isinstance(resource, dict):
        raise InvalidInput("the body must be a FHIR resource", [Issue("(body)", "not an object")])
    if resource.get("resourceType") != resource_type:
        raise InvalidInput(f"the body must be a {resource_type}",
                           [Issue("resourceType", f"is {resource.get('resourceType')!r}, "
                                                  f"not {resource_type!r}")])
    issues = resource_issues(resource)
    if issues:
        raise FhirValidationError(f"the {resource_type} is not valid FHIR R4", issues)
    mapping = mapper.classify(resource)
    if mapping is None or mapping.child:
        what = "an item or part of another resource" if mapping else "no record of the bridge"
        raise InvalidInput(f"this {resource_type} maps to {what}", [Issue(
            f"{resource_type}.code" if resource_type == "Observation" else resource_type,
            "is not one the bridge can store on its own" + (
                ": write it with the resource it belongs to (in a transaction)"
                if mapping else ""))])
    rid = record_id(mapping)
    local = {**resource, "id": f"{mapping.id_prefix}-{rid}"}
    try:
        found = parse_foreign(mapper, local, resolve=resolve, record_id=rid)
    except InvalidInput as exc:
        raise in_fhir_terms(mapper, concept_by_name(mapping.concept), exc, resource) from None
    except BridgeError as exc:
        raise InvalidInput(f"the {resource_type} cannot be read", [
            Issue(fhir_path(mapping, resource, i.path, i.message), i.message)
            for i in exc.issues] or [Issue(resource_type, exc.message)]) from None
    _keep_labels(found)
    return found


def _keep_labels(found: Foreign) -> None:
    """The bridge's profile and security labels (psychiatry sensitivity, restricted) stay on
    what it pushes of a written resource (and its members) that did not carry them: the kept
    original gets them, so a push does not take them off as it does for a pulled one."""
    for kept in found.every_kept():
        meta = kept.baseline.get("meta") or {}
        sent = kept.original.setdefault("meta", {})
        for key in ("profile", "security"):
            if key in meta and key not in sent:
                sent[key] = meta[key]


def notes_outcome(notes: list[tuple[str, str]]) -> list[dict]:
    """What a write kept as sent, without a place in the record: information issues."""
    return [{"severity": "information", "code": "informational", "diagnostics":
             f"{path}: {why}", "expression": [path]} for path, why in notes]


def in_fhir_terms(mapper: Mapper, concept: Concept, error: InvalidInput,
                  resource: dict) -> InvalidInput:
    """The same error with each record field (``dose.value``) named as the element it comes
    from (``MedicationRequest.dosageInstruction``); the field stays in the message."""
    mapping = mapper.mapping_for(concept.name)
    issues = [Issue(fhir_path(mapping, resource, i.path), f"{i.message} (record field "
                    f"{i.path})" if i.path not in ("id", "(root)") else i.message,
                    i.code, i.severity) for i in error.issues]
    return InvalidInput(error.message, issues)


def fhir_path(mapping: Mapping, resource: dict, path: str, message: str = "") -> str:
    """A FHIRPath for a problem: an element of the resource holding a reference the message
    or path names, the element a record field maps to, or the path under the type."""
    rtype = mapping.resource_type
    for candidate in (path, message):
        found = _reference_path(resource, candidate, rtype)
        if found:
            return found
    head = path.split(".")[0].split("[")[0]
    for rule in mapping.rules:
        if head and head in rule.internal:
            return f"{rtype}.{rule.fhir}"
    if path in ("", "(root)"):
        return rtype
    if path == "id":
        return f"{rtype}.id"
    return path if path.startswith(rtype) else f"{rtype}.{path}"


def _reference_path(node, text: str, where: str) -> str | None:
    """Where a Reference whose ``reference`` occurs in ``text`` sits."""
    if not text:
        return None
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref and ref in text:
            return where
        for key, value in node.items():
            if key in ("text", "contained"):
                continue
            if isinstance(value, list):
                for index, item in enumerate(value):
                    found = _reference_path(item, text, f"{where}.{key}[{index}]")
                    if found:
                        return found
            elif isinstance(value, dict):
                found = _reference_path(value, text, f"{where}.{key}")
                if found:
                    return found
    return None
