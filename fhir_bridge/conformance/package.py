"""The bridge's conformance resources as a FHIR NPM package file: ``fhir-bridge-<version>.tgz``
with ``package/package.json``, ``package/.index.json`` and one JSON file per resource (the
layout validators load: HAPI's NpmPackage, the HL7 validator's -ig). One function builds it,
for the CLI (``fhir-bridge package build``) and the server alike."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

from .. import __version__
from .resources import capability_statement, conformance_resources

PACKAGE_NAME = "fhir-bridge"
#: The packages the bridge's resources build on (the ones its output claims).
DEPENDENCIES = {"hl7.fhir.r4.core": "4.0.1", "hl7.fhir.us.core": "7.0.0"}
CANONICAL = "urn:fhir-bridge"
#: A fixed time for every member: the same resources give the same bytes.
MTIME = 1735689600  # 2025-01-01T00:00:00Z


def package_resources(local_code_base: str = "urn:fhir-bridge:codesystem") -> list[dict]:
    return [*conformance_resources(local_code_base), capability_statement()]


def manifest() -> dict:
    return {"name": PACKAGE_NAME, "version": __version__, "type": "fhir.ig",
            "description": "fhir-bridge conformance resources: the CodeSystems and ValueSets "
                           "of its local codes, its extensions, its CapabilityStatement",
            "canonical": CANONICAL, "fhirVersions": ["4.0.1"], "license": "CC0-1.0",
            "author": "fhir-bridge", "dependencies": dict(DEPENDENCIES)}


def file_name(resource: dict) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def index(resources: list[dict]) -> dict:
    files = []
    for r in resources:
        entry = {"filename": file_name(r), "resourceType": r["resourceType"], "id": r["id"]}
        for key in ("url", "version", "kind", "type"):
            if key in r:
                entry[key] = r[key]
        files.append(entry)
    return {"index-version": 1, "files": files}


def package_bytes(local_code_base: str = "urn:fhir-bridge:codesystem") -> bytes:
    """The package file's bytes (gzipped tar), the same for the same resources."""
    resources = package_resources(local_code_base)
    members = [("package/package.json", manifest()), ("package/.index.json", index(resources))]
    members += [(f"package/{file_name(r)}", r) for r in resources]
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=MTIME) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, doc in members:
            data = json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def build_package(out_dir: Path | str = ".",
                  local_code_base: str = "urn:fhir-bridge:codesystem") -> Path:
    """Write ``fhir-bridge-<version>.tgz`` into ``out_dir`` (made if missing); its path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{PACKAGE_NAME}-{__version__}.tgz"
    path.write_bytes(package_bytes(local_code_base))
    return path
