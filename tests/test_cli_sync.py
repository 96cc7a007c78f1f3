"""The sync and target commands against the real HAPI server."""

import json

import pytest

from fhir_bridge.cli import main

pytestmark = pytest.mark.hapi


@pytest.fixture
def configured(tmp_path, monkeypatch, hapi_url):
    monkeypatch.setenv("FHIR_BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("FHIR_BRIDGE_SYNC__TARGETS",
                       json.dumps({"test-hapi": {"base_url": hapi_url}}))
    monkeypatch.setenv("FHIR_BRIDGE_SYNC__TARGET", "test-hapi")
    return hapi_url


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, out


def test_demo_push_status_pull_and_clean(configured, capsys):
    assert run(capsys, "demo")[0] == 0
    code, out = run(capsys, "sync", "status")
    pending = json.loads(out)["outbox"]["pending"]
    assert code == 0 and pending > 200
    code, out = run(capsys, "sync", "push")
    assert code == 0 and json.loads(out)["sent"] == pending
    assert json.loads(run(capsys, "sync", "status")[1])["outbox"] == {"done": pending}
    code, out = run(capsys, "sync", "pull")
    assert code == 0 and json.loads(out)["applied"] == 0
    assert json.loads(run(capsys, "sync", "conflicts")[1]) == []
    assert run(capsys, "sync", "retry")[1].strip() == "requeued 0 dead rows"
    code, out = run(capsys, "target", "clean", "test-hapi")
    assert code == 0 and sum(json.loads(out)["deleted"].values()) == pending


def test_target_check_reports_capabilities_and_a_round_trip(configured, capsys):
    code, out = run(capsys, "target", "check", "test-hapi")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["transaction"]
    assert report["fhir_version"] == "4.0.1"
    assert report["round_trip"] == "create, read, delete: ok"


def test_an_unknown_target_is_a_clear_error(configured, capsys):
    assert main(["target", "check", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "no sync target 'nowhere'" in err
    assert len(err.strip().splitlines()) == 1, err
