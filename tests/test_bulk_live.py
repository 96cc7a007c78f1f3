"""A backend-services client, as an integrator runs one: it discovers the token endpoint,
gets a token from the bridge with an RS384 assertion, starts a Bulk Data export, polls the
status URL and downloads the NDJSON files, over real HTTP against a served app; once with
plain HTTP, once driven by a maintained third-party FHIR client (fhirpy)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Iterator

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from fhir_bridge.app import create_app
from fhir_bridge.bulk.worker import start_background
from fhir_bridge.sync.auth import SmartBackendAuth

from .auth_support import jwk, rsa_key
from .conftest import FIXTURES, TEST_SECRET, read_json, token_for
from .live_server import serving

KEY = rsa_key()
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption())
EXPORTED_PATIENTS = {"pat-p01", "pat-p04"}


@dataclass
class Served:
    root: str                 # http://127.0.0.1:PORT
    http: requests.Session
    auth: SmartBackendAuth    # the bridge's token endpoint, for a system/*.rs token


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    """A served bridge holding two patients, with its export worker running and a registered
    backend-services client whose token the tests get from the bridge itself."""
    tmp_path = tmp_path_factory.mktemp("bulk-live")
    with pytest.MonkeyPatch.context() as mp:  # the loader's token is the dev issuer's
        mp.setenv("FHIR_BRIDGE_DEV_SECRET", TEST_SECRET)
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
            yield Served(root, http, auth)
            auth.close()
    finally:
        stop.set()
        app.extensions["fhir_bridge"].engine.dispose()


def test_a_backend_services_client_exports_and_downloads_ndjson(served):
    root, http, auth = served.root, served.http, served.auth
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
    assert {r["id"] for r in downloaded["Patient"]} == EXPORTED_PATIENTS
    assert downloaded["MedicationRequest"]
    assert http.delete(status_url, headers=headers, timeout=30).status_code == 202
    assert http.get(status_url, headers=headers, timeout=30).status_code == 404


def test_fhirpy_kicks_off_polls_and_cancels_an_export_and_reads_its_ndjson(served):
    """fhirpy (2.x) drives the export. What it cannot do, and what is used instead:

    - ``execute()`` takes no headers and returns only the parsed body (``None`` for an empty
      one), never the status or headers. ``Prefer: respond-async`` therefore goes in the
      client's ``extra_headers`` (a public constructor argument, sent on every request), and
      the 202, ``Content-Location``, ``X-Progress`` and ``Retry-After`` are seen through a
      requests response hook passed in fhirpy's public ``requests_config`` (handed to every
      ``requests.request`` it makes) — nothing of fhirpy is replaced.
    - An NDJSON file is not one JSON document: fhirpy's request parses every 2xx body with
      ``json.loads``, which fails on a second line. The files are downloaded with requests and
      the same Authorization header fhirpy sends, and each line becomes a fhirpy resource
      (``client.resource``), compared with what fhirpy reads from /fhir."""
    answers: list[requests.Response] = []
    authorization = served.auth.headers()["Authorization"]
    client = SyncFHIRClient(
        f"{served.root}/fhir", authorization=authorization,
        extra_headers={"Prefer": "respond-async"},
        requests_config={"timeout": 30,
                         "hooks": {"response": lambda r, *a, **k: answers.append(r)}})

    assert client.execute("Patient/$export", method="get",
                          params={"_type": "Patient,MedicationRequest"}) is None
    kick_off = answers[-1]
    assert kick_off.status_code == 202
    assert kick_off.request.headers["Prefer"] == "respond-async"
    status_url = kick_off.headers["Content-Location"]
    assert status_url.startswith(f"{served.root}/fhir/bulk-status/")

    deadline = time.monotonic() + 60
    while (manifest := client.execute(status_url, method="get")) is None:
        assert answers[-1].status_code == 202 and answers[-1].headers["X-Progress"]
        assert time.monotonic() < deadline, "the export did not finish in a minute"
        time.sleep(float(answers[-1].headers["Retry-After"]) / 10)
    assert answers[-1].status_code == 200
    assert manifest.requiresAccessToken is True and manifest.error == []

    exported = {}
    for item in manifest.output:
        answer = served.http.get(item.url, timeout=30, headers={
            "Authorization": authorization, "Accept": "application/fhir+ndjson"})
        assert answer.status_code == 200, answer.text
        rows = [client.resource(item.type, **json.loads(line))
                for line in answer.text.splitlines()]
        assert len(rows) == item.count
        exported.update({r.reference: r for r in rows})
    patients = [r for r in exported.values() if r.resource_type == "Patient"]
    assert {p.id for p in patients} == EXPORTED_PATIENTS
    reader = SyncFHIRClient(f"{served.root}/fhir", authorization=authorization)
    for patient in patients:  # the export holds what a read gives
        read = reader.reference("Patient", patient.id).to_resource()
        assert patient.serialize() == read.serialize()
    prescriptions = reader.resources("MedicationRequest").fetch_all()
    assert {r.reference for r in prescriptions} == \
        {ref for ref, r in exported.items() if r.resource_type == "MedicationRequest"}

    assert client.execute(status_url, method="delete") is None
    assert answers[-1].status_code == 202
    with pytest.raises(ResourceNotFound):
        client.execute(status_url, method="get")
