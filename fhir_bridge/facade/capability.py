"""The CapabilityStatement served at /fhir/metadata, built from what the API really does:
the search parameter table, the interactions implemented in views.py, and the resource
entries other parts of the service (subscriptions) contribute."""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from .. import __version__
from . import parameters
from .query import MAX_COUNT, sort_keys

INTERACTIONS = ["read", "vread", "history-instance", "history-type", "search-type"]
SMART_SERVICE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                             "code": "SMART-on-FHIR"}],
                 "text": "OAuth2 bearer tokens (SMART App Launch scopes v1 and v2)"}
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
PROFILES = {
    "Patient": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
    "Practitioner": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-practitioner"],
    "Condition": ["http://hl7.org/fhir/us/core/StructureDefinition/"
                  "us-core-condition-problems-health-concerns"],
    "MedicationRequest": ["http://hl7.org/fhir/us/core/StructureDefinition/"
                          "us-core-medicationrequest"],
    "Observation": ["http://hl7.org/fhir/us/core/StructureDefinition/"
                    "us-core-observation-screening-assessment"],
    "CarePlan": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-careplan"],
    "CareTeam": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-careteam"],
    "Goal": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-goal"],
    "RelatedPerson": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-relatedperson"],
    "Provenance": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-provenance"],
}


def _oauth_uris(oauth: dict[str, str] | None) -> dict:
    """SMART's oauth-uris security extension (token, authorize, ...), which SMART clients
    read to find where to get a token."""
    if not oauth:
        return {}
    return {"extension": [{"url": OAUTH_URIS, "extension": [
        {"url": name, "valueUri": uri} for name, uri in oauth.items()]}]}


def _documentation(spec: parameters.ResourceSearch) -> str:
    return (f"Search with GET [type]?, GET [type]/_search? or POST [type]/_search (form). "
            f"_sort by {', '.join(sort_keys(spec))} (prefix - for descending, several keys "
            f"comma-separated); _count (capped at {MAX_COUNT}), _offset; _summary (true, text, "
            f"data, count, false); _elements; _total (always exact). Read takes _summary "
            f"and _elements too; every interaction takes _format (json) and _pretty. "
            f"Reference parameters chain one level deep (patient.identifier=, "
            f"subject:Patient.name=); _has:Type:reference:parameter= for reverse chains; "
            f"date parameters take eq, ne, gt, lt, ge, le, sa, eb and ap. "
            f"{_compartment_note(spec)}")


#: What US Core 7.0.0's server statement is built on: this server's statement instantiates it.
US_CORE_SERVER = "http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server"
COMBINATION = ("http://hl7.org/fhir/StructureDefinition/"
               "capabilitystatement-search-parameter-combination")
EVERYTHING = {"name": "everything",
              "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}
#: app.extensions keys where other parts add system-level operations and the canonicals of the
#: statements they conform to (bulk/__init__.py: $export and the Bulk Data statement).
OPERATIONS = "fhir_capability_operations"
INSTANTIATES = "fhir_capability_instantiates"
#: System-level interactions of facade/system.py (GET /fhir?_type=, GET /fhir/_history).
SYSTEM_INTERACTIONS = [{"code": "search-system"}, {"code": "history-system"}]


def _compartment_note(spec: parameters.ResourceSearch) -> str:
    if spec.resource_type == "Patient":
        return ("Patient/{id}/{type} searches a patient's compartment; Patient/{id}/$everything "
                "takes _since, _type, _count and _offset.")
    if spec.in_patient_compartment and spec.resource_type != "AuditEvent":
        return f"Also searched as Patient/{{id}}/{spec.resource_type}."
    return ""


def _includes(spec: parameters.ResourceSearch) -> list[str]:
    """Type:param for each reference parameter, and Type:param:Target when it has several."""
    out = []
    for name, param in spec.reference_params().items():
        out.append(f"{spec.resource_type}:{name}")
        if len(param.targets) > 1:
            out += [f"{spec.resource_type}:{name}:{target}" for target in param.targets]
    return out


def _combinations(spec: parameters.ResourceSearch) -> dict:
    """The search parameter combinations served (the US Core server statement's)."""
    if not spec.combinations:
        return {}
    return {"extension": [{"url": COMBINATION, "extension": [
        {"url": "required", "valueString": name} for name in combination]}
        for combination in spec.combinations]}


def statement(base_url: str, extra_resources: Iterable[dict] = (),
              published: dt.datetime | None = None, cors: bool = False,
              oauth: dict[str, str] | None = None,
              writes: dict[str, tuple[str, ...]] | None = None,
              operations: Iterable[dict] = (), instantiates: Iterable[str] = ()) -> dict:
    """``writes``: type -> the write interactions served (intake.write_support);
    ``operations``: system-level operations other parts serve (Bulk Data ``$export``);
    ``instantiates``: the canonicals of the statements they conform to, besides US Core's."""
    specs = parameters.load()
    writes = writes or {}
    resources = []
    for rtype in sorted(specs):
        spec = specs[rtype]
        entry = {"type": rtype, **_combinations(spec)}
        if rtype in PROFILES:
            entry["supportedProfile"] = PROFILES[rtype]
        entry.update({
            "documentation": _documentation(spec),
            "interaction": [{"code": code} for code in INTERACTIONS],
            "versioning": "versioned",
            "readHistory": True,
            "updateCreate": False,
            "conditionalRead": "full-support",
            "searchInclude": sorted(_includes(spec)),
            "searchRevInclude": sorted(
                f"{other}:{name}" for other, other_spec in specs.items()
                for name, p in other_spec.reference_params().items() if rtype in p.targets),
            "searchParam": [{"name": p.name, "type": p.type,
                             **({"documentation": p.doc} if p.doc else {})}
                            for p in spec.params.values()],
        })
        if rtype in writes:
            entry.update(_write_entry(writes[rtype], entry["interaction"]))
        if rtype == "Patient":
            entry["operation"] = [*entry.get("operation", []), EVERYTHING]
        for key in ("searchInclude", "searchRevInclude"):
            if not entry[key]:
                del entry[key]
        resources.append(entry)
    for extra in extra_resources:  # a contribution to a type of the table joins its entry
        same = next((r for r in resources if r["type"] == extra["type"]), None)
        if same is None:
            resources.append(extra)
            continue
        same["interaction"] = same["interaction"] + [
            i for i in extra.get("interaction", []) if i not in same["interaction"]]
        if "supportedProfile" in extra:
            same.setdefault("supportedProfile", extra["supportedProfile"])
        if "operation" in extra:
            same["operation"] = [*same.get("operation", []), *extra["operation"]]
    resources.sort(key=lambda r: r["type"])
    when = (published or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": when,
        "publisher": "fhir-bridge",
        "kind": "instance",
        "instantiates": [US_CORE_SERVER, *instantiates],
        "software": {"name": "fhir-bridge", "version": __version__},
        "implementation": {"description": "fhir-bridge FHIR R4 API (read, search and write "
                                          "over the bridge's store)",
                           "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json", "json"],
        "rest": [{
            "mode": "server",
            "security": {**_oauth_uris(oauth), "cors": cors, "service": [SMART_SERVICE],
                         "description": "Every request except metadata needs a bearer token; "
                                        "see /.well-known/smart-configuration."},
            "resource": resources,
            "interaction": SYSTEM_INTERACTIONS + (
                [{"code": "transaction"}, {"code": "batch"}] if writes else []),
            **({"operation": list(operations)} if operations else {}),
            "compartment": ["http://hl7.org/fhir/CompartmentDefinition/patient"],
        }],
    }


#: The $validate operation of FHIR R4 (canonical as US Core 7.0.0's server statement names
#: core operations, CapabilityStatement-us-core-server.json).
VALIDATE = {"name": "validate",
            "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}


def _write_entry(interactions: tuple[str, ...], read: list[dict]) -> dict:
    """What a writable type's entry adds (writes.py, plans.py, conditional.py; patch.py
    where update is served)."""
    codes = [*interactions, *(("patch",) if "update" in interactions else ())]
    return {"interaction": read + [{"code": code} for code in codes],
            "conditionalCreate": True, "conditionalUpdate": True,
            "conditionalDelete": "not-supported", "operation": [VALIDATE]}
