"""The command line: map, validate, demo, and how it reports errors (one line, exit 2)."""

import json
import subprocess
import sys

import pytest

from fhir_bridge.cli import main

from .conftest import FIXTURES, SHARED_CODES, fixture_documents, read_json, token_for
from .log_privacy import SCANNER


def run(*args, stdin=None, env=None):
    """The command in a new process; its output goes through the suite's PHI scan."""
    import os

    result = subprocess.run([sys.executable, "-m", "fhir_bridge.cli", *args], input=stdin,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    SCANNER.scan_output(f"fhir-bridge {args[0]} stderr", result.stderr)
    if args[0] != "map":  # map's stdout is the Bundle asked for, names included
        SCANNER.scan_output(f"fhir-bridge {args[0]} stdout", result.stdout)
    return result


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
    again = capsys.readouterr()
    assert again.out == "" and "left as they are" in again.err


def test_demo_again_after_a_dose_change_leaves_the_dose_change_in_place(tmp_path, monkeypatch):
    """The demo adds only what is missing: it never puts the old prescription back."""
    from fhir_bridge.app import create_app

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    monkeypatch.setenv("FHIR_BRIDGE_DATABASE_URL", url)
    assert main(["demo"]) == 0
    app = create_app({"database_url": url})
    client = app.test_client()
    auth = {"Authorization": "Bearer " + token_for(app)}
    changed = client.post("/api/v1/prescriptions/p01-rx2/dose-changes", headers=auth, json={
        "id": "p01-rx3", "dose": {"value": 150, "unit": "mg"}, "effective_date": "2025-04-28",
        "reason": "PHQ-9 still 10 after 4 weeks", "changed_by_id": "dr-lindqvist",
        "authored_on": "2025-04-28T09:00:00-04:00"})
    assert changed.status_code == 201, changed.json
    before = {rx: client.get(f"/api/v1/prescriptions/{rx}", headers=auth).json
              for rx in ("p01-rx2", "p01-rx3")}
    assert main(["demo"]) == 0
    after = {rx: client.get(f"/api/v1/prescriptions/{rx}", headers=auth).json
             for rx in ("p01-rx2", "p01-rx3")}
    app.extensions["fhir_bridge"].engine.dispose()
    assert after == before
    assert (after["p01-rx2"]["status"], after["p01-rx3"]["status"]) == ("stopped", "active")


@pytest.mark.parametrize("argv, env, says", [
    (["monitoring", "check", "--now", "garbage"], {}, "--now must be a date"),
    (["monitoring", "check", "--now", "2025-05-01T08:00:00"], {}, "timezone offset"),
    (["serve", "--demo", "--port", "9"], {"FHIR_BRIDGE_DEV_SECRET": "short"},
     "FHIR_BRIDGE_DEV_SECRET must hold at least 32 bytes"),
    (["demo"], {"FHIR_BRIDGE_DATABASE_URL": "nonsense://x"}, "database_url is not a database"),
    (["demo"], {"FHIR_BRIDGE_DATABASE_URL": "not a url"}, "database_url must be a database"),
    (["sync", "status"], {"FHIR_BRIDGE_DATABASE_URL":
                          "postgresql+psycopg://nobody:pw@127.0.0.1:1/none"},
     "cannot use the database"),
    (["demo"], {"FHIR_BRIDGE_CONFIG": "/no/such/config.yaml"}, "cannot read the config file"),
    (["map", "/no/such/file.json"], {}, "cannot read /no/such/file.json"),
    (["validate", "/"], {}, "cannot read /: Is a directory"),
    (["map", "-"], {}, "- is not valid JSON"),
    (["sync", "conflicts", "--resolve", "1"], {}, "--resolve needs --keep"),
])
def test_errors_are_one_line_on_stderr_and_exit_2(argv, env, says, tmp_path):
    env = {"FHIR_BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", **env}
    result = run(*argv, stdin="{not json", env=env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "nobody:pw" not in result.stderr  # a URL's credentials are never shown


def test_an_unexpected_error_is_one_line_naming_its_type_only(monkeypatch, capsys):
    import fhir_bridge.cli.documents as documents

    def broken(document):
        raise KeyError("Testperson 1988-04-12")

    monkeypatch.setattr(documents, "map_document", broken)
    assert main(["map", str(fixture_documents()[0])]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: unexpected error (KeyError); nothing more is shown, it "
                                "could hold data"]


@pytest.mark.parametrize("argv", [["map", "/no/such/file.json"], ["validate", "/no/such"]])
def test_missing_files_are_reported_not_raised(argv, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: cannot read {argv[1]}: No such file or directory"]
