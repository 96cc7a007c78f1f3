"""Base FHIR R4 (4.0.1) ValueSets and CodeSystems (administrative-gender, condition-clinical,
observation-status, ...), for the required bindings the US Core snapshots carry.

hl7.fhir.r4.core is not among the offline package files; the same definitions ship in HAPI
FHIR's ``hapi-fhir-validation-resources-r4`` artifact (Maven Central, fetched by the build of
hapi-server/ into ``~/.m2``), as ``org/hl7/fhir/r4/model/valueset/valuesets.xml``. That file is
read here with Python's zipfile and ElementTree (no Java). ``FHIR_BRIDGE_R4_DEFINITIONS``
names the jar when it lives elsewhere; without it, base value sets are "not available
offline" (warnings) and base ``code`` bindings are still checked from the fhir.resources
models (fhir/validate.py).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Iterator

NS = "{http://hl7.org/fhir}"
MEMBER = "org/hl7/fhir/r4/model/valueset/valuesets.xml"
ARTIFACT = Path.home() / ".m2" / "repository" / "ca" / "uhn" / "hapi" / "fhir" / \
    "hapi-fhir-validation-resources-r4"


def jar_path() -> Path | None:
    configured = os.environ.get("FHIR_BRIDGE_R4_DEFINITIONS")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    found = sorted(ARTIFACT.glob("*/hapi-fhir-validation-resources-r4-*.jar"))
    return found[-1] if found else None


def _value(node: ET.Element, name: str) -> str | None:
    child = node.find(NS + name)
    return child.get("value") if child is not None else None


def _concepts(node: ET.Element) -> list[dict]:
    out = []
    for c in node.findall(NS + "concept"):
        item = {"code": _value(c, "code")}
        if _value(c, "display"):
            item["display"] = _value(c, "display")
        nested = _concepts(c)
        if nested:
            item["concept"] = nested
        out.append(item)
    return out


def _include(node: ET.Element) -> dict:
    out: dict = {}
    if _value(node, "system"):
        out["system"] = _value(node, "system")
    concepts = [{"code": _value(c, "code")} for c in node.findall(NS + "concept")]
    if concepts:
        out["concept"] = concepts
    filters = [{"property": _value(f, "property"), "op": _value(f, "op"),
                "value": _value(f, "value")} for f in node.findall(NS + "filter")]
    if filters:
        out["filter"] = filters
    sets = [v.get("value") for v in node.findall(NS + "valueSet")]
    if sets:
        out["valueSet"] = sets
    return out


def _resource(node: ET.Element) -> dict | None:
    kind = node.tag[len(NS):]
    base = {"resourceType": kind, "url": _value(node, "url"), "version": _value(node, "version")}
    if kind == "CodeSystem":
        return {**base, "content": _value(node, "content"), "concept": _concepts(node)}
    if kind == "ValueSet":
        compose = node.find(NS + "compose")
        if compose is None:
            return base
        return {**base, "compose": {
            "include": [_include(i) for i in compose.findall(NS + "include")],
            "exclude": [_include(i) for i in compose.findall(NS + "exclude")]}}
    return None


def base_definitions(path: Path | None = None) -> Iterator[dict]:
    """The ValueSets and CodeSystems of base R4 (nothing when the artifact is not here)."""
    jar = path or jar_path()
    if jar is None:
        return
    with zipfile.ZipFile(jar) as archive, archive.open(MEMBER) as fh:
        for entry in ET.parse(fh).getroot().iter(NS + "resource"):
            for node in entry:
                resource = _resource(node)
                if resource is not None and resource.get("url"):
                    yield resource
