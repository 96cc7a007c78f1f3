"""Conformance resources read from FHIR package files (``*.tgz``, the ``package/`` folder)
and the bridge's own package, indexed by canonical URL for the validator.

The packages come from a folder: ``FHIR_BRIDGE_FHIR_PACKAGES`` when set, else
``../shared/reference/fhir-packages`` beside the checkout (US Core 7.0.0, the FHIR Extensions
Pack, HL7 Terminology). Base FHIR R4 (hl7.fhir.r4.core) is not among them: its value sets
come from HAPI's validation-resources artifact when it is here (r4core.py), base required
bindings on ``code`` elements from the fhir.resources models (fhir/validate.py), and the US
Core profiles' snapshots carry the base elements and bindings of the types they profile.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .. import PROJECT_ROOT

TYPES = ("StructureDefinition", "ValueSet", "CodeSystem")
DEFAULT_FOLDER = PROJECT_ROOT.parent / "shared" / "reference" / "fhir-packages"


@dataclass(eq=False)  # hashed by identity: caches key on the loaded set
class Definitions:
    """StructureDefinitions, ValueSets and CodeSystems by canonical URL; the packages read."""

    by_url: dict[str, dict] = field(default_factory=dict)
    packages: list[str] = field(default_factory=list)

    def add(self, resource: dict) -> None:
        url = resource.get("url")
        if resource.get("resourceType") in TYPES and isinstance(url, str):
            self.by_url.setdefault(url, resource)
            if resource.get("version"):
                self.by_url.setdefault(f"{url}|{resource['version']}", resource)

    def get(self, url: str | None, resource_type: str | None = None) -> dict | None:
        if not url:
            return None
        found = self.by_url.get(url) or self.by_url.get(url.split("|", 1)[0])
        if found is not None and resource_type and found["resourceType"] != resource_type:
            return None
        return found


def package_folder() -> Path:
    return Path(os.environ.get("FHIR_BRIDGE_FHIR_PACKAGES") or DEFAULT_FOLDER)


def read_package(path: Path, into: Definitions) -> None:
    with tarfile.open(path) as tar:
        name = None
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 2 or parts[0] != "package":
                continue
            if parts[1] == "package.json":
                manifest = json.load(tar.extractfile(member))
                name = f"{manifest.get('name')}#{manifest.get('version')}"
            elif parts[1].endswith(".json") and parts[1].split("-", 1)[0] in TYPES:
                into.add(json.load(tar.extractfile(member)))
        into.packages.append(name or path.name)


@lru_cache(maxsize=2)
def definitions(folder: Path | None = None) -> Definitions:
    """Every definition of the package files in the folder, then the bridge's own."""
    from .resources import conformance_resources

    found = Definitions()
    where = folder or package_folder()
    if where.is_dir():
        for path in sorted(where.glob("*.tgz")):
            read_package(path, found)
    for resource in conformance_resources():
        found.add(resource)
    found.packages.append("fhir-bridge (built in)")
    from .r4core import base_definitions, jar_path

    before = len(found.by_url)
    for resource in base_definitions():
        found.add(resource)
    if len(found.by_url) > before:
        found.packages.append(f"hl7.fhir.r4.core#4.0.1 value sets ({jar_path().name})")
    return found
