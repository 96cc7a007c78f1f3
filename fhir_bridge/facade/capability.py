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


def _documentation(spec: parameters.ResourceSearch) -> str:
    return (f"Search with GET [type]?, GET [type]/_search? or POST [type]/_search (form). "
            f"_sort by {', '.join(sort_keys(spec))} (prefix - for descending, several keys "
            f"comma-separated); _count (capped at {MAX_COUNT}), _offset; _summary (true, text, "
            f"data, count, false); _elements; _total (always exact). Read takes _summary "
            f"and _elements too; every interaction takes _format (json) and _pretty.")


def statement(base_url: str, extra_resources: Iterable[dict] = (),
              published: dt.datetime | None = None, cors: bool = False) -> dict:
    specs = parameters.load()
    resources = []
    for rtype in sorted(specs):
        spec = specs[rtype]
        entry = {"type": rtype}
        if rtype in PROFILES:
            entry["supportedProfile"] = PROFILES[rtype]
        entry.update({
            "documentation": _documentation(spec),
            "interaction": [{"code": code} for code in INTERACTIONS],
            "versioning": "versioned",
            "readHistory": True,
            "updateCreate": False,
            "conditionalRead": "full-support",
            "searchInclude": sorted(f"{rtype}:{name}" for name in spec.reference_params()),
            "searchRevInclude": sorted(
                f"{other}:{name}" for other, other_spec in specs.items()
                for name, p in other_spec.reference_params().items() if rtype in p.targets),
            "searchParam": [{"name": p.name, "type": p.type,
                             **({"documentation": p.doc} if p.doc else {})}
                            for p in spec.params.values()],
        })
        for key in ("searchInclude", "searchRevInclude"):
            if not entry[key]:
                del entry[key]
        resources.append(entry)
    resources.extend(extra_resources)
    resources.sort(key=lambda r: r["type"])
    when = (published or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": when,
        "publisher": "fhir-bridge",
        "kind": "instance",
        "software": {"name": "fhir-bridge", "version": __version__},
        "implementation": {"description": "fhir-bridge FHIR R4 API (read and search over the "
                                          "bridge's store; writes go through /api/v1)",
                           "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json", "json"],
        "rest": [{
            "mode": "server",
            "security": {"cors": cors, "service": [SMART_SERVICE],
                         "description": "Every request except metadata needs a bearer token; "
                                        "see /.well-known/smart-configuration."},
            "resource": resources,
        }],
    }
