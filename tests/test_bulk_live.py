"""A backend-services client, as an integrator runs one: it discovers the token endpoint,
gets a token from the bridge with an RS384 assertion, starts a Bulk Data export, polls the
status URL and downloads the NDJSON files, over real HTTP against a served app."""

from __future__ import annotations

import json
import time

import requests
from cryptography.hazmat.primitives import serialization

from fhir_bridge.app import create_app
from fhir_bridge.bulk.worker import start_background
from fhir_bridge.sync.auth import SmartBackendAuth

from .auth_support import jwk, rsa_key
from .conftest import FIXTURES, read_json, token_for
from .live_server import serving

KEY = rsa_key()
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption())


def test_a_backend_services_client_exports_and_downloads_ndjson(tmp_path):
    app = create_app({
        "database_url": f"sqlite:///{tmp_path / 'bridge.db'}",
        "bulk": {"output_dir": str(tmp_path / "exports"), "poll_seconds": 0.1,
                 "retry_after_seconds": 1},
        "auth": {"token_server": {"clients": [{
            "client_id": "population-health", "scope": "system/*.rs",
            "jwks": {"keys": [jwk(KEY, "ph-1", "RS384")]}}]}}})
    loader = {"Authorization": "Bearer " + token_for(app, "system/*.cruds")}
    for name in ("p01-depression-ssri-titration.json", "p04-adhd-stimulant.json"):
        assert app.test_client().post("/api/v1/documents", headers=loader, json=read_json(
            FIXTURES / "internal" / name)).status_code == 200
    _, stop = start_background(app.extensions["fhir_bridge"])
    try:
        with serving(app) as root, requests.Session() as http:
            discovery = http.get(f"{root}/fhir/.well-known/smart-configuration",
                                 timeout=30).json()
            assert "RS384" in discovery["token_endpoint_auth_signing_alg_values_supported"]
            auth = SmartBackendAuth(discovery["token_endpoint"], "population-health", PEM,
                                    alg="RS384", kid="ph-1", scope="system/*.rs",
                                    session=http)
            headers = {**auth.headers(), "Accept": "application/fhir+json"}
            kick_off = http.get(f"{root}/fhir/Patient/$export", timeout=30,
                                params={"_type": "Patient,MedicationRequest"},
                                headers={**headers, "Prefer": "respond-async"})
            assert kick_off.status_code == 202, kick_off.text
            status_url = kick_off.headers["Content-Location"]
            assert status_url.startswith(f"{root}/fhir/")
            deadline = time.monotonic() + 60
            while True:
                status = http.get(status_url, headers=headers, timeout=30)
                if status.status_code != 202:
                    break
                assert status.headers["X-Progress"]
                assert time.monotonic() < deadline, "the export did not finish in a minute"
                time.sleep(float(status.headers["Retry-After"]) / 10)
            assert status.status_code == 200, status.text
            manifest = status.json()
            assert manifest["requiresAccessToken"] is True
            downloaded: dict[str, list[dict]] = {}
            for item in manifest["output"]:
                assert item["url"].startswith(root)
                unauthenticated = http.get(item["url"], timeout=30)
                assert unauthenticated.status_code == 401
                answer = http.get(item["url"], timeout=30, headers={
                    **auth.headers(), "Accept": "application/fhir+ndjson"})
                assert answer.status_code == 200
                assert answer.headers["Content-Type"].startswith("application/fhir+ndjson")
                rows = [json.loads(line) for line in answer.text.splitlines()]
                assert len(rows) == item["count"]
                downloaded.setdefault(item["type"], []).extend(rows)
            assert {r["id"] for r in downloaded["Patient"]} == {"pat-p01", "pat-p04"}
            assert downloaded["MedicationRequest"]
            assert http.delete(status_url, headers=headers, timeout=30).status_code == 202
            assert http.get(status_url, headers=headers, timeout=30).status_code == 404
            auth.close()
    finally:
        stop.set()
        app.extensions["fhir_bridge"].engine.dispose()
