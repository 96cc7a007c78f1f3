"""The bridge's conformance package: a CodeSystem for every local code system it writes (with
every code it can write), a StructureDefinition for every extension, served read-only under
/fhir and built as a FHIR package file."""

from __future__ import annotations

import json
import tarfile

import pytest

from fhir_bridge import __version__
from fhir_bridge.cli import main, map_document
from fhir_bridge.conformance.package import build_package
from fhir_bridge.conformance.resources import conformance_resources
from fhir_bridge.fhir.validate import resource_issues

from .conftest import fixture_documents, read_json
from .test_us_core_validation import record_kinds

LOCAL = "urn:fhir-bridge:codesystem:"


def _walk(node, found):
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and node["system"].startswith(LOCAL):
            found.add((node["system"], node["code"], node.get("display")))
        if isinstance(node.get("url"), str) and node["url"].startswith("urn:fhir-bridge:"):
            found.add(("extension", node["url"], None))
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)
    return found


def _output_codings() -> set:
    documents = [read_json(p) for p in fixture_documents()] + list(record_kinds().values())
    found: set = set()
    for document in documents:
        _walk(map_document(document), found)
    return found


def _by_url(resource_type: str) -> dict[str, dict]:
    return {r["url"]: r for r in conformance_resources() if r["resourceType"] == resource_type}


def test_every_local_code_the_output_carries_is_in_its_generated_code_system():
    systems = _by_url("CodeSystem")
    found = _output_codings()
    missing = []
    for system, code, display in sorted(x for x in found if x[0] != "extension"):
        concepts = {c["code"]: c for c in systems.get(system, {}).get("concept", [])}
        concept = concepts.get(code)
        if system not in systems:
            missing.append(f"no CodeSystem {system}")
        elif concept is None and systems[system]["content"] != "fragment":
            missing.append(f"{system}#{code} not in its CodeSystem")
        elif concept and display and display not in [concept.get("display")] + [
                d["value"] for d in concept.get("designation", [])]:
            missing.append(f"{system}#{code}: display {display!r} not in its CodeSystem")
    assert not missing, "\n".join(missing)
    # and the output reaches most of them: the generator is not listing systems nobody writes
    written = {x[0] for x in found}
    assert len(written & set(systems)) >= len(systems) - 3


def test_every_extension_the_output_carries_has_its_structure_definition():
    definitions = _by_url("StructureDefinition")
    urls = {url for kind, url, _ in _output_codings() if kind == "extension"}
    assert urls and urls <= set(definitions)
    for url in urls:
        assert definitions[url]["type"] == "Extension"
        assert definitions[url]["context"]


def test_only_the_systems_of_free_text_concepts_are_fragments():
    """A drug or side effect no table holds is written as free text with a local code made
    from it: those two systems cannot list every code (the catalogs' drugs are listed)."""
    systems = _by_url("CodeSystem")
    assert {url for url, s in systems.items() if s["content"] == "fragment"} == {
        LOCAL + "medication", LOCAL + "side-effect"}
    assert {"lurasidone", "metformin"} <= {c["code"] for c in systems[LOCAL + "medication"][
        "concept"]}
    assert {c["code"] for c in systems[LOCAL + "adherence-source"]["concept"]} == {
        "self-report", "pill-count", "refill-data", "caregiver-report"}


def test_every_resource_is_valid_r4_and_each_code_system_has_its_value_set():
    resources = conformance_resources()
    for resource in resources:
        assert resource_issues(resource) == [], resource["id"]
    value_sets = _by_url("ValueSet")
    for system in _by_url("CodeSystem").values():
        assert value_sets[system["valueSet"]]["compose"]["include"] == [{"system": system["url"]}]


def test_the_package_file_has_the_npm_layout(tmp_path):
    path = build_package(tmp_path)
    assert path.name == f"fhir-bridge-{__version__}.tgz"
    with tarfile.open(path) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("package/package.json"))
        index = json.load(tar.extractfile("package/.index.json"))
    assert manifest["name"] == "fhir-bridge" and manifest["version"] == __version__
    assert manifest["fhirVersions"] == ["4.0.1"]
    assert manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1", "hl7.fhir.us.core": "7.0.0"}
    files = {f["filename"] for f in index["files"]}
    assert {f"package/{f}" for f in files} | {"package/package.json", "package/.index.json"} \
        == set(names)
    assert any(f["resourceType"] == "CapabilityStatement" for f in index["files"])
    assert len(files) == len(conformance_resources()) + 1
    assert path.read_bytes() == build_package(tmp_path / "again").read_bytes()  # reproducible


def test_the_package_command_writes_the_file(tmp_path, capsys):
    assert main(["package", "build", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(tmp_path / f"fhir-bridge-{__version__}.tgz")
    with tarfile.open(printed) as tar:
        assert "package/package.json" in tar.getnames()


# -- served under /fhir ---------------------------------------------------------------------------

@pytest.fixture
def fhir_client(sqlite_app):
    return sqlite_app.test_client()


def test_a_code_system_is_read_by_id_and_found_by_its_url(fhir_client):
    url = LOCAL + "relationship"
    found = fhir_client.get("/fhir/CodeSystem", query_string={"url": url}).get_json()
    assert found["resourceType"] == "Bundle" and found["total"] == 1
    resource = found["entry"][0]["resource"]
    assert resource["url"] == url
    read = fhir_client.get(f"/fhir/CodeSystem/{resource['id']}")
    assert read.status_code == 200 and read.get_json() == resource


@pytest.mark.parametrize("rtype, params, total", [
    ("StructureDefinition", {"url": "urn:fhir-bridge:StructureDefinition:"
                                    "medicationrequest-discontinuation"}, 1),
    ("StructureDefinition", {}, 2),
    ("ValueSet", {"name": "relationship"}, 1),
    ("CodeSystem", {"_id": "fhir-bridge-route,fhir-bridge-relationship"}, 2),
    ("CodeSystem", {"url": "http://loinc.org"}, 0),
])
def test_search_by_url_name_and_id(fhir_client, rtype, params, total):
    response = fhir_client.get(f"/fhir/{rtype}", query_string=params)
    assert response.status_code == 200
    assert response.get_json()["total"] == total


def test_an_unknown_id_is_404_and_an_unknown_parameter_400_with_an_outcome(fhir_client):
    missing = fhir_client.get("/fhir/ValueSet/nope")
    assert missing.status_code == 404
    assert missing.get_json()["resourceType"] == "OperationOutcome"
    bad = fhir_client.get("/fhir/CodeSystem", query_string={"publisher": "fhir-bridge"})
    assert bad.status_code == 400
    outcome = bad.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["expression"] for i in outcome["issue"]] == [["publisher"]]


def test_they_are_read_only_and_announced_in_the_capability_statement(fhir_client):
    refused = fhir_client.post("/fhir/CodeSystem", json={"resourceType": "CodeSystem"})
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
    assert refused.get_json()["resourceType"] == "OperationOutcome"
    statement = fhir_client.get("/fhir/metadata").get_json()
    types = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {"read", "search-type"} == {i["code"] for i in types["CodeSystem"]["interaction"]}
    assert {"url", "name", "_id"} <= {p["name"] for p in types["ValueSet"]["searchParam"]}


def test_every_audit_subtype_the_code_writes_has_a_code():
    """AuditEvent.subtype: a FHIR restful interaction, else a code of the bridge's
    audit-subtype CodeSystem (the subtypes are literals where each audit entry is made)."""
    import re

    from fhir_bridge import PROJECT_ROOT
    from fhir_bridge.audit.events import RESTFUL_SUBTYPES

    written = {m for path in (PROJECT_ROOT / "fhir_bridge").rglob("*.py")
               for m in re.findall(r'subtype="([a-z-]+)"', path.read_text(encoding="utf-8"))}
    codes = {c["code"] for c in _by_url("CodeSystem")[LOCAL + "audit-subtype"]["concept"]}
    assert "sync-push" in written
    assert written - RESTFUL_SUBTYPES <= codes
