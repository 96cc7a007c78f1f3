"""The shell and Python examples of docs/auth.md and docs/fhir-api.md work as written: each is
read out of the doc and run, so a doc change that breaks one fails here. Only what the docs say
to substitute is substituted: the address (the docs' bridge is on 127.0.0.1:8080; here on a
free port, given to the served bridge with FHIR_BRIDGE_SERVER__PORT) and the status URL the
Bulk Data example says to paste. `python` and `fhir-bridge` are the project's venv's."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import jwt
import pytest
import requests

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.app import create_app
from fhir_bridge.demo import load_demo

AUTH = PROJECT_ROOT / "docs" / "auth.md"
FHIR_API = PROJECT_ROOT / "docs" / "fhir-api.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
DOC_ADDRESS = "127.0.0.1:8080"
VENV_BIN = str(Path(sys.executable).parent)


def block(doc: Path, language: str, containing: str) -> str:
    """The one code block of ``doc`` in ``language`` that contains ``containing``."""
    found = [text for lang, text in BLOCK.findall(doc.read_text())
             if lang == language and containing in text]
    assert len(found) == 1, f"{doc.name}: {len(found)} {language} blocks with {containing!r}"
    return found[0]


def commands(script: str) -> list[str]:
    """The commands of a shell block, a backslash-continued command as one."""
    return [c.strip() for c in script.replace("\\\n", " ").splitlines() if c.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shell_env(port: int, **extra: str) -> dict[str, str]:
    """The environment of a reader's shell: no FHIR_BRIDGE_* settings of the test run, the
    venv first on PATH, the bridge's port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "FHIR_BRIDGE_SERVER__PORT": str(port), **extra}


def bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-c", "set -eo pipefail\n" + script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def wait_until(check, seconds: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert proc is None or proc.poll() is None, f"{what}: the shell ended first"
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.2)
    return found


def stop(proc: subprocess.Popen) -> None:
    """End the shell this test started and what it started in the background (its own
    process group, which outlives the shell when the shell has ended)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _group_alive(proc.pid):
            proc.poll()
            time.sleep(0.1)
        if not _group_alive(proc.pid):
            break
    proc.wait(timeout=30)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Walkthrough:
    folder: Path
    root: str      # http://127.0.0.1:PORT
    token: str     # what get_token.py printed
    output: str    # the shell's standard output (the example's curl answer among it)


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory) -> Iterator[Walkthrough]:
    """auth.md's client, step by step: register.py and get_token.py written as the doc gives
    them, then its shell block run as one script (the bridge it starts keeps serving for
    the other examples; the shell ends with the test module)."""
    folder = tmp_path_factory.mktemp("auth-docs")
    port = free_port()
    for name in ("register.py", "get_token.py"):
        (folder / name).write_text(block(AUTH, "python", f"# {name}"))
    script = block(AUTH, "sh", "get_token.py").replace(DOC_ADDRESS, f"127.0.0.1:{port}")
    harness = f'set -e\n{script}\nprintf %s "$TOKEN" > token.txt\nwait\n'
    with open(folder / "stdout", "w") as out, open(folder / "stderr", "w") as err:
        proc = subprocess.Popen(["bash", "-c", harness], cwd=folder, env=shell_env(port),
                                stdout=out, stderr=err, start_new_session=True)
    try:
        token_file = folder / "token.txt"
        wait_until(lambda: token_file.is_file() and token_file.read_text(), 180,
                   f"the auth.md walkthrough ({(folder / 'stderr')})", proc)
        yield Walkthrough(folder, f"http://127.0.0.1:{port}", token_file.read_text(),
                          (folder / "stdout").read_text())
    finally:
        stop(proc)


def test_the_walkthrough_trades_a_signed_assertion_for_a_token(walkthrough):
    claims = jwt.decode(walkthrough.token, options={"verify_signature": False})
    assert claims["sub"] == "analytics" and claims["scope"] == "system/*.rs"
    assert claims["iss"] == f"{walkthrough.root}/auth"
    header = jwt.get_unverified_header(walkthrough.token)
    jwks = requests.get(f"{walkthrough.root}/auth/jwks", timeout=30).json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    jwt.decode(walkthrough.token, jwt.PyJWK(key).key, algorithms=[header["alg"]],
               audience=claims["aud"])  # signed by the key the bridge publishes


def test_the_walkthroughs_search_answers_with_the_token(walkthrough):
    start = walkthrough.output.index('{"resourceType":"Bundle"')
    bundle, _ = json.JSONDecoder().raw_decode(walkthrough.output, start)
    assert bundle["type"] == "searchset" and bundle["total"] >= 2  # serve --demo's patients
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient", "Patient"]


def test_the_bulk_export_example_exports_downloads_and_cancels(walkthrough):
    """fhir-api.md's export, with the walkthrough's token: kick-off, the status URL pasted,
    the status asked again while it answers 202, the first file, then the cancel."""
    kick_off, paste, poll, download, cancel = commands(block(FHIR_API, "sh", "$export"))
    assert paste.startswith("STATUS=...")
    env = shell_env(0, TOKEN=walkthrough.token)
    here = lambda text: text.replace(DOC_ADDRESS, walkthrough.root.removeprefix("http://"))  # noqa: E731
    header = bash(here(kick_off), walkthrough.folder, env)
    name, _, status_url = header.strip().partition(":")
    assert name.lower() == "content-location"
    env["STATUS"] = status_url.strip()

    def manifest():
        answer = bash(poll, walkthrough.folder, env)
        return json.loads(answer) if answer.strip() else None  # a 202 has no body
    found = wait_until(manifest, 60, "the export")
    assert {o["type"] for o in found["output"]} == {"Patient", "MedicationRequest"}

    rows = [json.loads(line) for line in bash(download, walkthrough.folder, env).splitlines()]
    assert len(rows) == found["output"][0]["count"]
    assert {r["resourceType"] for r in rows} == {found["output"][0]["type"]}
    if found["output"][0]["type"] == "MedicationRequest":  # the _typeFilter held
        assert {r["status"] for r in rows} == {"active"}

    bash(cancel, walkthrough.folder, env)
    gone = requests.get(env["STATUS"], timeout=30,
                        headers={"Authorization": f"Bearer {walkthrough.token}"})
    assert gone.status_code == 404


def test_the_development_token_example_mints_tokens_a_bridge_accepts(tmp_path, monkeypatch):
    script = block(AUTH, "sh", "fhir-bridge token issue")
    lines = bash(script + '\necho "$FHIR_BRIDGE_DEV_SECRET"', tmp_path,
                 shell_env(0)).split()
    system_token, patient_token, secret = lines
    monkeypatch.setenv("FHIR_BRIDGE_DEV_SECRET", secret)
    claims = jwt.decode(patient_token, secret, algorithms=["HS256"],
                        audience="http://127.0.0.1:8080/fhir")
    assert claims["exp"] - claims["iat"] == 3600
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'bridge.db'}"})
    try:
        load_demo(app)  # what `serve --demo` serves
        client = app.test_client()

        def patients(token: str) -> list[str]:
            answer = client.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.json
            return [e["resource"]["id"] for e in answer.json["entry"]]
        assert len(patients(system_token)) > 1
        assert patients(patient_token) == [claims["patient"]]  # "one patient"
    finally:
        app.extensions["fhir_bridge"].engine.dispose()


def test_the_cors_example_answers_the_preflight(tmp_path):
    serve, preflight = commands(block(FHIR_API, "", "CORS__ALLOWED_ORIGINS"))
    port = free_port()
    proc = subprocess.Popen(["bash", "-c", serve], cwd=tmp_path, env=shell_env(port),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        def serving():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok
            except requests.ConnectionError:
                return False
        wait_until(serving, 120, "fhir-bridge serve", proc)
        answer = bash(preflight.replace(DOC_ADDRESS, f"127.0.0.1:{port}"), tmp_path,
                      shell_env(port))
    finally:
        stop(proc)
    status, *headers = answer.splitlines()
    assert status.split()[1] == "204"
    named = dict(h.split(": ", 1) for h in headers if ": " in h)
    assert named["Access-Control-Allow-Origin"].strip() == "https://app.example.org"
    assert "authorization" in named["Access-Control-Allow-Headers"].lower()
