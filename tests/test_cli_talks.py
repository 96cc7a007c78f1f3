"""A command line that talks: every command and subcommand explains itself in --help,
`serve --demo` keeps its development secret across restarts, and a token of an issuer the
server could not set up is refused with the reason, not only in the server's log."""

from __future__ import annotations

import argparse
import stat

from fhir_bridge.app import create_app
from fhir_bridge.auth.mint import mint_dev_token
from fhir_bridge.cli import build_parser
from fhir_bridge.cli.serve import SECRET_FILE, demo_secret

from .conftest import TEST_SECRET


def commands(parser: argparse.ArgumentParser, path=()):
    """(command path, its parser, its help line) for every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), sub, helps.get(name)
                yield from commands(sub, path + (name,))


def test_every_command_and_subcommand_has_help_and_says_what_it_does():
    listed = list(commands(build_parser()))
    names = {" ".join(p) for p, _, _ in listed}
    assert {"serve", "map", "validate", "package build", "demo", "import", "sync push",
            "sync pull", "sync status", "sync retry", "sync conflicts", "sync rejects",
            "target check", "target clean", "token issue", "worker", "subscriptions deliver",
            "monitoring check"} <= names
    for path, parser, help_line in listed:
        assert help_line, f"fhir-bridge {' '.join(path)} has no help line"
        leaf = not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        if leaf:
            assert parser.description, f"fhir-bridge {' '.join(path)} has no description"
            for option in parser._actions:
                if option.option_strings and option.dest != "help":
                    assert option.help, f"{' '.join(path)} {option.option_strings[0]}: no help"


def test_the_demo_secret_is_kept_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("FHIR_BRIDGE_DEV_SECRET", raising=False)
    config = {"database_url": f"sqlite:///{tmp_path / 'demo.db'}"}
    first, source = demo_secret(config, "FHIR_BRIDGE_DEV_SECRET")
    assert source == f"{tmp_path / SECRET_FILE} (made now)"
    kept = tmp_path / SECRET_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    again, source = demo_secret(config, "FHIR_BRIDGE_DEV_SECRET")  # the next start
    assert again == first and source == str(kept)
    monkeypatch.setenv("FHIR_BRIDGE_DEV_SECRET", TEST_SECRET)
    assert demo_secret(config, "FHIR_BRIDGE_DEV_SECRET") == (
        TEST_SECRET, "the environment (FHIR_BRIDGE_DEV_SECRET)")


def test_a_token_of_an_issuer_without_its_secret_is_refused_with_the_cause(tmp_path,
                                                                          monkeypatch):
    monkeypatch.delenv("FHIR_BRIDGE_DEV_SECRET", raising=False)
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'b.db'}"})
    auth = app.extensions["fhir_bridge.auth"].settings
    token = mint_dev_token(auth, ["system/*.rs"], environ={"FHIR_BRIDGE_DEV_SECRET":
                                                           TEST_SECRET})
    response = app.test_client().get("/fhir/Patient",
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    text = response.get_data(as_text=True)
    assert "configured but not usable" in text and "FHIR_BRIDGE_DEV_SECRET" in text


def test_many_documents_are_mapped_into_a_folder(tmp_path, capsys):
    from fhir_bridge.cli import main

    from .conftest import fixture_documents

    files = [str(p) for p in fixture_documents()[:3]]
    assert main(["map", *files, "--out", str(tmp_path), "--compact"]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.fhir.json"))
    assert len(written) == 3 and capsys.readouterr().err.startswith("3 bundles written")
    assert main(["map", *files]) == 2  # several need --out
    assert "several documents need --out" in capsys.readouterr().err
