"""The bridge's own token endpoint (SMART Backend Services): a registered client trades an
RS384/ES384-signed JWT assertion for an access token the bridge itself then accepts."""

from __future__ import annotations

import threading
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_bridge.app import create_app

from .auth_support import JwksServer, bearer, ec_key, jwk, rsa_key

TOKEN_URL = "http://localhost/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RSA = rsa_key()
EC = ec_key(ec.SECP384R1)


def token_server_config(database_url: str, clients: list[dict], **settings) -> dict:
    return {"database_url": database_url,
            "auth": {"token_server": {"clients": clients, **settings}}}


CLIENTS = [
    {"client_id": "analytics", "scope": "system/*.rs", "jwks": {"keys": [jwk(RSA, "rsa-1")]}},
    {"client_id": "ec-client", "scope": "system/Observation.rs system/Patient.read",
     "jwks": {"keys": [jwk(EC, "ec-1")]}},
]


@pytest.fixture
def token_app(database_url):
    app = create_app(token_server_config(database_url, CLIENTS))
    yield app
    app.extensions["fhir_bridge"].engine.dispose()


def assertion(key=RSA, alg="RS384", kid="rsa-1", client_id="analytics", aud=TOKEN_URL,
              lifetime=240, jti=None, **claims) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + lifetime,
            "jti": jti or uuid.uuid4().hex, **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid} if kid else None)


def token_request(client, scope="system/*.rs", **form):
    data = {"grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": form.pop("client_assertion", None) or assertion(), **form}
    return client.post("/auth/token", data=data)


def test_an_rs384_assertion_gets_a_token_the_fhir_api_accepts(token_app):
    client = token_app.test_client()
    answer = token_request(client)
    assert answer.status_code == 200, answer.json
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json
    assert body["token_type"] == "bearer" and body["scope"] == "system/*.rs"
    assert 0 < body["expires_in"] <= 300
    assert client.get("/fhir/Patient", headers=bearer(body["access_token"])).status_code == 200
    # rs only: no write through the JSON API with it
    refused = client.post("/api/v1/patients", json={}, headers=bearer(body["access_token"]))
    assert refused.status_code == 403


def test_the_token_is_signed_with_the_key_published_at_jwks_uri(token_app):
    client = token_app.test_client()
    discovery = client.get("/.well-known/smart-configuration").json
    token = token_request(client).json["access_token"]
    keys = client.get(discovery["jwks_uri"].removeprefix("http://localhost")).json["keys"]
    header = jwt.get_unverified_header(token)
    key = next(k for k in keys if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=[key["alg"]],
                        audience="http://127.0.0.1:8080/fhir")
    assert claims["iss"] == discovery["issuer"]
    assert claims["sub"] == claims["client_id"] == "analytics"


def test_an_es384_client_gets_only_scopes_within_its_registration(token_app):
    client = token_app.test_client()
    ec_assertion = assertion(EC, "ES384", "ec-1", "ec-client")
    answer = token_request(client, "system/Observation.rs system/Patient.read launch",
                           client_assertion=ec_assertion)
    assert answer.status_code == 200, answer.json
    assert answer.json["scope"] == "system/Observation.rs system/Patient.read"
    token = answer.json["access_token"]
    assert client.get("/fhir/Observation", headers=bearer(token)).status_code == 200
    assert client.get("/fhir/CarePlan", headers=bearer(token)).status_code == 403
    wider = token_request(client, "system/*.rs", client_assertion=assertion(
        EC, "ES384", "ec-1", "ec-client"))
    assert wider.status_code == 400 and wider.json["error"] == "invalid_scope"


@pytest.mark.parametrize("scope", ["system/*.cruds", "patient/*.rs", "user/Observation.rs",
                                   "system/Observation.xyz", "openid", ""])
def test_scopes_outside_the_registration_are_invalid_scope(token_app, scope):
    answer = token_request(token_app.test_client(), scope)
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid_scope" and answer.json["error_description"]


def test_a_replayed_assertion_is_refused(token_app):
    client = token_app.test_client()
    once = assertion()
    assert token_request(client, client_assertion=once).status_code == 200
    again = token_request(client, client_assertion=once)
    assert again.status_code == 401 and again.json["error"] == "invalid_client"
    assert "used before" in again.json["error_description"]


def test_of_two_concurrent_uses_of_one_assertion_exactly_one_wins(token_app):
    once = assertion()
    statuses = []
    barrier = threading.Barrier(4)

    def use():
        client = token_app.test_client()
        barrier.wait()
        statuses.append(token_request(client, client_assertion=once).status_code)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200, 401, 401, 401]


def _hs256() -> str:
    now = int(time.time())
    return jwt.encode({"iss": "analytics", "sub": "analytics", "aud": TOKEN_URL, "exp": now + 60,
                       "jti": "x"}, "a-shared-secret-of-sufficient-length-0123", algorithm="HS256")


BAD_ASSERTIONS = {
    "wrong audience": lambda: assertion(aud="https://elsewhere.example/token"),
    "lives too long": lambda: assertion(lifetime=900),
    "expired": lambda: assertion(lifetime=-120),
    "RS256 is not offered": lambda: assertion(alg="RS256"),
    "HS256": _hs256,
    "unknown client": lambda: assertion(client_id="stranger"),
    "sub is not the client": lambda: assertion(sub="someone-else"),
    "another key": lambda: assertion(key=rsa_key()),
    "no jti": lambda: jwt.encode({"iss": "analytics", "sub": "analytics", "aud": TOKEN_URL,
                                  "exp": int(time.time()) + 60}, RSA, algorithm="RS384",
                                 headers={"kid": "rsa-1"}),
    "not a JWT": lambda: "not-a-jwt",
}


@pytest.mark.parametrize("name", sorted(BAD_ASSERTIONS))
def test_a_bad_assertion_is_invalid_client(token_app, name):
    answer = token_request(token_app.test_client(), client_assertion=BAD_ASSERTIONS[name]())
    assert answer.status_code == 401, name
    assert answer.json["error"] == "invalid_client"


def test_grant_type_and_assertion_type_are_checked(token_app):
    client = token_app.test_client()
    grant = token_request(client, grant_type="authorization_code")
    assert grant.status_code == 400 and grant.json["error"] == "unsupported_grant_type"
    kind = token_request(client, client_assertion_type="urn:other")
    assert kind.status_code == 401 and kind.json["error"] == "invalid_client"
    as_json = client.post("/auth/token", json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400 and as_json.json["error"] == "invalid_request"


def test_a_client_whose_keys_are_at_a_jwks_url(tmp_path):
    with JwksServer([jwk(RSA, "rsa-1")]).running() as keys:
        app = create_app(token_server_config(f"sqlite:///{tmp_path / 'b.db'}", [
            {"client_id": "analytics", "scope": "system/*.rs", "jwks_url": keys.url}]))
        try:
            assert token_request(app.test_client()).status_code == 200
        finally:
            app.extensions["fhir_bridge"].engine.dispose()


def test_tokens_signed_with_a_configured_key_survive_a_restart(tmp_path, monkeypatch):
    key = ec_key(ec.SECP384R1)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    monkeypatch.setenv("FHIR_BRIDGE_TOKEN_SIGNING_KEY", pem)
    config = token_server_config(f"sqlite:///{tmp_path / 'b.db'}", CLIENTS)
    first = create_app(config)
    token = token_request(first.test_client()).json["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "ES384"
    first.extensions["fhir_bridge"].engine.dispose()
    second = create_app(config)
    try:
        assert second.test_client().get("/fhir/Patient",
                                        headers=bearer(token)).status_code == 200
    finally:
        second.extensions["fhir_bridge"].engine.dispose()


def test_discovery_names_the_token_endpoint_everywhere_clients_look(token_app):
    client = token_app.test_client()
    doc = client.get("/.well-known/smart-configuration").json
    assert doc["token_endpoint"] == TOKEN_URL
    assert doc["jwks_uri"] == "http://localhost/auth/jwks"
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "client-confidential-asymmetric" in doc["capabilities"]
    for rtype in ("Flag", "Goal", "Provenance", "Subscription", "AuditEvent", "Group",
                  "MedicationRequest"):
        assert f"system/{rtype}.rs" in doc["scopes_supported"], rtype
    security = client.get("/fhir/metadata").json["rest"][0]["security"]
    oauth = next(e for e in security["extension"] if e["url"] ==
                 "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
    assert {"url": "token", "valueUri": TOKEN_URL} in oauth["extension"]


def test_with_the_token_endpoint_off_nothing_is_claimed(tmp_path):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'b.db'}",
                      "auth": {"token_server": {"enabled": False}}})
    try:
        client = app.test_client()
        doc = client.get("/.well-known/smart-configuration").json
        assert "token_endpoint" not in doc and doc["grant_types_supported"] == []
        assert "extension" not in client.get("/fhir/metadata").json["rest"][0]["security"]
        assert client.post("/auth/token", data={}).json["error"] == "unsupported_grant_type"
    finally:
        app.extensions["fhir_bridge"].engine.dispose()
