"""The command line: map, validate, demo."""

import json
import subprocess
import sys

import pytest

from fhir_bridge.cli import main

from .conftest import FIXTURES, SHARED_CODES, fixture_documents, read_json


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "fhir_bridge.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_map_prints_the_golden_transaction_bundle():
    path = fixture_documents()[0]
    result = run("map", str(path))
    assert result.returncode == 0, result.stderr
    bundle = json.loads(result.stdout)
    assert bundle["type"] == "transaction"
    assert bundle == read_json(FIXTURES / "fhir" / path.name)
    assert all(e["request"]["method"] == "PUT" for e in bundle["entry"])


def test_map_names_each_bad_field_and_exits_1(tmp_path):
    doc = read_json(fixture_documents()[0])
    doc["prescriptions"][0]["dose"]["unit"] = "spoon"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    result = run("map", str(bad))
    assert result.returncode == 1
    assert "prescriptions[0].dose.unit" in result.stderr
    assert result.stdout == ""


def test_validate_accepts_the_mapped_bundles_and_us_core_examples(tmp_path):
    mapped = tmp_path / "bundle.json"
    mapped.write_text(run("map", str(fixture_documents()[0])).stdout)
    assert run("validate", str(mapped)).returncode == 0
    examples = SHARED_CODES.parent / "us-core-7.0.0-examples"
    if examples.exists():
        for example in sorted(examples.glob("*.json"))[:5]:
            assert run("validate", str(example)).returncode == 0, example


def test_validate_reports_paths_and_exits_1():
    resource = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "birthDate": "1990-13-45", "nickname": "x"}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "code": {"text": "x"}, "effectiveDateTime": "2025-01-01T10:00:00"}}]}
    result = run("validate", "-", stdin=json.dumps(resource))
    assert result.returncode == 1
    assert "Bundle.entry[0].resource.Patient.birthDate" in result.stderr
    assert "Bundle.entry[0].resource.Patient.nickname" in result.stderr
    assert "Bundle.entry[1].resource.Observation.effectiveDateTime" in result.stderr


def test_demo_loads_every_fixture_into_the_configured_database(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FHIR_BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.db'}")
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    patients = sum(len(read_json(p)["patients"]) for p in fixture_documents())
    assert f"patient: {patients}" in out
    assert main(["demo"]) == 0  # loading twice is harmless


@pytest.mark.parametrize("argv", [["map", "/no/such/file.json"], ["validate", "/no/such"]])
def test_missing_files_are_reported_not_raised(argv, capsys):
    assert main(argv) == 1
    assert "No such file" in capsys.readouterr().err
