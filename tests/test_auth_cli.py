"""`fhir-bridge token issue` and the demo server's token."""

import os
import socket
import subprocess
import sys
import time

import jwt
import requests

from fhir_bridge.cli import main

from .auth_support import bearer
from .conftest import TEST_SECRET


def test_token_issue_prints_a_token_the_service_accepts(sqlite_app, capsys):
    assert main(["token", "issue", "--scope", "system/Patient.rs", "--scope", "openid",
                 "--subject", "nurse-1", "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, TEST_SECRET, algorithms=["HS256"],
                        audience="http://127.0.0.1:8080/fhir")
    assert claims["sub"] == "nurse-1" and claims["scope"] == "system/Patient.rs openid"
    assert claims["exp"] - claims["iat"] == 120
    client = sqlite_app.test_client()
    assert client.get("/api/v1/patients", headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/prescriptions", headers=bearer(token)).status_code == 403


def test_token_issue_with_a_patient(capsys):
    assert main(["token", "issue", "--scope", "patient/*.rs", "--patient", "pat-p01"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert claims["patient"] == "pat-p01"


def test_token_issue_explains_what_is_wrong(monkeypatch, capsys):
    assert main(["token", "issue", "--scope", "system/*.rw"]) == 1
    assert "malformed SMART scope" in capsys.readouterr().err
    assert main(["token", "issue", "--scope", "patient/*.rs"]) == 1
    assert "--patient" in capsys.readouterr().err
    monkeypatch.delenv("FHIR_BRIDGE_DEV_SECRET")
    assert main(["token", "issue", "--scope", "system/*.rs"]) == 1
    captured = capsys.readouterr()
    assert "FHIR_BRIDGE_DEV_SECRET is not set" in captured.err and captured.out == ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_demo_prints_a_read_only_token_and_how_to_mint_more(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "FHIR_BRIDGE_DEV_SECRET"}
    env["FHIR_BRIDGE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.db'}"
    server = subprocess.Popen([sys.executable, "-m", "fhir_bridge.cli", "serve", "--demo",
                               "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [server.stdout.readline() for _ in range(3)]
        exports = dict(line.removeprefix("export ").strip().split("=", 1)
                       for line in lines if line.startswith("export "))
        assert "fhir-bridge token issue" in lines[0]
        token, secret = exports["TOKEN"], exports["FHIR_BRIDGE_DEV_SECRET"]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        url = f"{base}/api/v1/prescriptions?patient_id=p01"
        assert requests.get(url, timeout=10).status_code == 401
        answer = requests.get(url, headers=bearer(token), timeout=10)
        assert answer.status_code == 200 and answer.json()["items"]
        write = requests.put(f"{base}/api/v1/patients/p01", json={}, headers=bearer(token),
                             timeout=10)
        assert write.status_code == 403  # the demo token reads only
        minted = subprocess.run([sys.executable, "-m", "fhir_bridge.cli", "token", "issue",
                                 "--scope", "system/*.cruds"], capture_output=True, text=True,
                                env=dict(env, FHIR_BRIDGE_DEV_SECRET=secret), timeout=60)
        assert minted.returncode == 0, minted.stderr
        assert requests.get(f"{base}/api/v1/patients/p01", timeout=10,
                            headers=bearer(minted.stdout.strip())).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()
