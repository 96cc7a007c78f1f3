"""The bridge's conformance resources: a CodeSystem and a ValueSet (all its codes) for every
local code system (local_codes.py), a StructureDefinition for each of its extensions, and its
CapabilityStatement. Their canonical URLs are the URLs the mapping writes: a CodeSystem's
``url`` is the ``urn:fhir-bridge:codesystem:<name>`` of its codings, an extension's
StructureDefinition's ``url`` is the extension's ``url`` (mappings/*.map.yaml)."""

from __future__ import annotations

import re
from functools import lru_cache

import yaml

from .. import __version__
from ..mapping.valuemaps import MAPPINGS_DIR
from .local_codes import LocalSystem, local_code_systems

PUBLISHER = "fhir-bridge"
DATE = "2025-01-01"
STATUS = "active"
VALUESET_BASE = "urn:fhir-bridge:valueset"
CAPABILITY_URL = "urn:fhir-bridge:CapabilityStatement:fhir-bridge-server"

#: The bridge's extensions: the key is the name in the extension URL the mapping writes.
EXTENSIONS = {
    "careplan-activity-monitored-prescription": {
        "title": "Monitored prescription of a care-plan activity",
        "description": "The prescription a monitoring activity of a care plan is for (the test "
                       "monitors that medication). R4 CarePlan.activity.detail.reasonReference "
                       "may not point at a MedicationRequest.",
        "context": "CarePlan.activity.detail",
        "value": {"code": "Reference", "targetProfile": [
            "http://hl7.org/fhir/StructureDefinition/MedicationRequest"]},
    },
    "medicationrequest-discontinuation": {
        "title": "Discontinuation of a prescription",
        "description": "When, why and by whom a prescription was stopped: R4 MedicationRequest "
                       "has no element for it.",
        "context": "MedicationRequest",
        "parts": [
            ("date", "When it was stopped", {"code": "date"}),
            ("reason", "Why it was stopped", {"code": "string"}),
            ("author", "Who stopped it", {"code": "Reference", "targetProfile": [
                "http://hl7.org/fhir/StructureDefinition/Practitioner"]}),
        ],
    },
}


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _id(name: str) -> str:
    return f"fhir-bridge-{name}"


def code_system(system: LocalSystem) -> dict:
    concepts = []
    for code, displays in sorted(system.codes.items()):
        concept: dict = {"code": code}
        if displays:
            concept["display"] = displays[0]
        if len(displays) > 1:
            concept["designation"] = [{"use": {
                "system": "http://terminology.hl7.org/CodeSystem/designation-usage",
                "code": "display"}, "value": d} for d in displays[1:]]
        concepts.append(concept)
    out = {"resourceType": "CodeSystem", "id": _id(system.name), "url": system.url,
           "version": __version__, "name": _pascal(system.name),
           "title": f"fhir-bridge {system.name.replace('-', ' ')}", "status": STATUS,
           "experimental": False, "date": DATE, "publisher": PUBLISHER,
           "description": _description(system), "caseSensitive": True,
           "valueSet": value_set_url(system.name),
           "content": "fragment" if system.open else "complete", "count": len(concepts)}
    if concepts:
        out["concept"] = concepts
    return out


def _description(system: LocalSystem) -> str:
    text = (f"The bridge's local {system.name} codes, generated from the mapping files and "
            f"catalogs in mappings/ (codes no verified terminology table holds).")
    if system.open:
        text += (" Free text the records carry gets a code made from its words, so this "
                 "system is a fragment: it lists the codes the catalogs name.")
    return text


def value_set_url(name: str) -> str:
    return f"{VALUESET_BASE}:{name}"


def value_set(system: LocalSystem) -> dict:
    return {"resourceType": "ValueSet", "id": _id(system.name), "url": value_set_url(system.name),
            "version": __version__, "name": _pascal(system.name) + "Codes",
            "title": f"fhir-bridge {system.name.replace('-', ' ')} codes", "status": STATUS,
            "experimental": False, "date": DATE, "publisher": PUBLISHER,
            "description": f"Every code of the CodeSystem {system.url}.",
            "compose": {"include": [{"system": system.url}]}}


@lru_cache(maxsize=1)
def extension_urls() -> dict[str, str]:
    """Extension name -> the URL the mapping files write for it."""
    found: dict[str, str] = {}

    def walk(node):
        if isinstance(node, dict):
            url = (node.get("args") or {}).get("url") if isinstance(node.get("args"), dict) \
                else None
            if isinstance(url, str) and "StructureDefinition" in url:
                found[re.split(r"[:/]", url)[-1]] = url
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(MAPPINGS_DIR.glob("*.map.yaml")):
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return found


def _element(path: str, min_: int, max_: str, **extra) -> dict:
    return {"id": extra.pop("id", path), "path": path, "min": min_, "max": max_, **extra}


def structure_definition(name: str, url: str) -> dict:
    spec = EXTENSIONS[name]
    elements = [_element("Extension", 0, "1", short=spec["title"],
                         definition=spec["description"])]
    if "parts" in spec:
        elements.append(_element("Extension.extension", len(spec["parts"]), "*",
                                 slicing={"discriminator": [{"type": "value", "path": "url"}],
                                          "rules": "open"}))
        for part, short, value in spec["parts"]:
            sid = f"Extension.extension:{part}"
            elements += [
                _element("Extension.extension", 1, "1", id=sid, sliceName=part, short=short),
                _element("Extension.extension.extension", 0, "0", id=f"{sid}.extension"),
                _element("Extension.extension.url", 1, "1", id=f"{sid}.url", fixedUri=part),
                _element("Extension.extension.value[x]", 1, "1", id=f"{sid}.value[x]",
                         type=[value]),
            ]
        elements += [_element("Extension.url", 1, "1", fixedUri=url),
                     _element("Extension.value[x]", 0, "0")]
    else:
        elements += [_element("Extension.extension", 0, "0"),
                     _element("Extension.url", 1, "1", fixedUri=url),
                     _element("Extension.value[x]", 1, "1", type=[spec["value"]])]
    return {"resourceType": "StructureDefinition", "id": _id(name), "url": url,
            "version": __version__, "name": _pascal(name), "title": spec["title"],
            "status": STATUS, "experimental": False, "date": DATE, "publisher": PUBLISHER,
            "description": spec["description"], "fhirVersion": "4.0.1", "kind": "complex-type",
            "abstract": False, "context": [{"type": "element", "expression": spec["context"]}],
            "type": "Extension",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
            "derivation": "constraint", "differential": {"element": elements}}


def capability_statement() -> dict:
    """The CapabilityStatement of a fhir-bridge server, as a canonical resource (what /fhir
    serves, without one deployment's address)."""
    from ..facade import capability
    from ..subscriptions import subscription_capability

    statement = capability.statement("", [subscription_capability(), *capability_entries()],
                                     published=None)
    statement.pop("implementation", None)
    statement.update({"id": "fhir-bridge-server", "url": CAPABILITY_URL, "version": __version__,
                      "name": "FhirBridgeServer", "title": "fhir-bridge FHIR server",
                      "kind": "capability", "date": DATE,
                      "implementationGuide": ["http://hl7.org/fhir/us/core/ImplementationGuide/"
                                              "hl7.fhir.us.core"]})
    return statement


TYPES = ("StructureDefinition", "CodeSystem", "ValueSet")


def capability_entries() -> list[dict]:
    """The CapabilityStatement.rest.resource entries of the conformance resources (their
    search parameters: ``catalog`` in mappings/search-parameters.yaml)."""
    from ..facade.catalog import capability_entry

    return [capability_entry(rtype, "The bridge's own conformance resources (read-only).")
            for rtype in TYPES]


@lru_cache(maxsize=4)
def conformance_resources(local_code_base: str = "urn:fhir-bridge:codesystem") -> tuple:
    """Every conformance resource of the bridge (CapabilityStatement last)."""
    systems = local_code_systems(local_code_base)
    out = [structure_definition(name, url) for name, url in sorted(extension_urls().items())]
    out += [code_system(s) for s in systems]
    out += [value_set(s) for s in systems]
    return tuple(out)
