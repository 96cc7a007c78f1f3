"""Token verification: issuers with a JWKS (served on 127.0.0.1), a JWKS file, or a shared
secret; algorithm confusion; what happens when no issuer is usable; public endpoints."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_bridge.app import create_app
from fhir_bridge.auth.tokens import JwksKeys
from fhir_bridge.errors import Unauthorized

from .auth_support import (AUDIENCE, JwksServer, bearer, dev_token, ec_key, jwk, rsa_key,
                           signed)

ISSUER = "https://auth.example.test"
URL = "/api/v1/patients"


def make_app(tmp_path, issuers, **auth):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'bridge.db'}",
                      "auth": {"issuers": issuers, **auth}})
    return app


@pytest.fixture
def jwks(tmp_path):
    keys = {"rsa": rsa_key(), "ec256": ec_key(), "ec384": ec_key(ec.SECP384R1)}
    server = JwksServer([jwk(keys["rsa"], "rsa-1"), jwk(keys["ec256"], "ec-1"),
                         jwk(keys["ec384"], "ec-2", "ES384")])
    with server.running():
        app = make_app(tmp_path, [{"issuer": ISSUER, "audience": AUDIENCE,
                                   "jwks_url": server.url}], jwks_refetch_seconds=0)
        yield app.test_client(), keys, server
        app.extensions["fhir_bridge"].engine.dispose()


@pytest.mark.parametrize("key,alg,kid", [("rsa", "RS256", "rsa-1"), ("rsa", "RS384", "rsa-1"),
                                         ("ec256", "ES256", "ec-1"),
                                         ("ec384", "ES384", "ec-2")])
def test_a_jwks_issuer_accepts_its_signed_tokens(jwks, key, alg, kid):
    client, keys, _ = jwks
    token = signed(keys[key], alg, kid, ISSUER)
    assert client.get(URL, headers=bearer(token)).status_code == 200


def test_the_jwks_is_cached_and_fetched_again_once_for_an_unknown_kid(jwks):
    client, keys, server = jwks
    for _ in range(3):
        assert client.get(URL, headers=bearer(signed(keys["rsa"], "RS256", "rsa-1", ISSUER))
                          ).status_code == 200
    assert server.fetches == 1
    rotated = rsa_key()
    server.keys = server.keys + [jwk(rotated, "rsa-2")]
    assert client.get(URL, headers=bearer(signed(rotated, "RS256", "rsa-2", ISSUER))
                      ).status_code == 200
    assert server.fetches == 2
    stranger = rsa_key()
    answer = client.get(URL, headers=bearer(signed(stranger, "RS256", "rsa-3", ISSUER)))
    assert answer.status_code == 401 and server.fetches == 3


def test_an_unknown_kid_refetches_at_most_once_per_interval():
    calls = []
    now = [1000.0]
    source = JwksKeys(lambda: calls.append(1) or {"keys": []}, ttl=300, refetch_interval=10,
                      clock=lambda: now[0])
    for _ in range(5):
        with pytest.raises(Unauthorized):
            source.key("made-up", "RS256")
    assert len(calls) == 1
    now[0] += 11
    with pytest.raises(Unauthorized):
        source.key("made-up", "RS256")
    assert len(calls) == 2


def test_a_jwks_issuer_refuses_tokens_it_did_not_sign(jwks):
    client, keys, _ = jwks
    public_pem = keys["rsa"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "scope": "system/*.cruds",
              "iat": now, "exp": now + 600}
    # algorithm confusion: HS256 "signed" with the issuer's public key
    import hmac, hashlib, base64  # noqa: E401

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    confused = f"{head}.{body}.{b64(mac)}"
    refused = {
        "HS256 with the public key": confused,
        "a stranger's key, same kid": signed(rsa_key(), "RS256", "rsa-1", ISSUER),
        "ES256 with an RSA kid": signed(keys["ec256"], "ES256", "rsa-1", ISSUER),
        "RS512 (not accepted)": signed(keys["rsa"], "RS512", "rsa-1", ISSUER),
        "wrong audience": signed(keys["rsa"], "RS256", "rsa-1", ISSUER, audience="https://x"),
        "expired": signed(keys["rsa"], "RS256", "rsa-1", ISSUER, ttl=-120),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, keys["rsa"],
                             algorithm="RS256", headers={"kid": "rsa-1"}),
        "dev secret for the jwks issuer": dev_token("system/*.cruds", issuer=ISSUER),
    }
    for why, token in refused.items():
        answer = client.get(URL, headers=bearer(token))
        assert answer.status_code == 401, why
        assert answer.headers["WWW-Authenticate"] == \
            'Bearer realm="fhir-bridge", error="invalid_token"', why


def test_a_jwks_file_issuer(tmp_path):
    key = ec_key()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(key, "k1")]}))
    app = make_app(tmp_path, [{"issuer": ISSUER, "audience": AUDIENCE,
                               "jwks_file": str(path)}])
    client = app.test_client()
    assert client.get(URL, headers=bearer(signed(key, "ES256", "k1", ISSUER))).status_code == 200
    assert client.get(URL, headers=bearer(dev_token("system/*.rs"))).status_code == 401


def test_an_unreachable_jwks_refuses_tokens_and_does_not_open_anything(tmp_path):
    server = JwksServer([])
    url = server.url  # never started: nothing listens there
    server.server.server_close()
    app = make_app(tmp_path, [{"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": url}])
    answer = app.test_client().get(URL, headers=bearer(signed(rsa_key(), "RS256", "a", ISSUER)))
    assert answer.status_code == 401


def test_without_a_usable_issuer_the_service_starts_and_refuses_every_protected_request(
        tmp_path, monkeypatch):
    monkeypatch.delenv("FHIR_BRIDGE_DEV_SECRET")
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'bridge.db'}"})
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    for url in (URL, "/api/v1/patients/p01", "/fhir/Patient", "/fhir"):
        assert client.get(url).status_code == 401, url
        assert client.get(url, headers=bearer(dev_token("system/*.cruds"))).status_code == 401


def test_a_short_dev_secret_leaves_the_issuer_out(tmp_path, monkeypatch):
    monkeypatch.setenv("FHIR_BRIDGE_DEV_SECRET", "short")
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'bridge.db'}"})
    token = dev_token("system/*.cruds", secret="short" * 8)
    assert app.test_client().get(URL, headers=bearer(token)).status_code == 401


def test_auth_is_off_only_when_explicitly_disabled(tmp_path):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'a.db'}",
                      "auth": {"enabled": False}})
    assert app.test_client().get(URL).status_code == 200
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'b.db'}",
                      "auth": {"enabled": None}})
    assert app.test_client().get(URL).status_code == 401


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer a b", "token",
                                    "Bearer not-a-jwt"])
def test_malformed_authorization_headers_are_invalid_tokens(sqlite_app, header):
    answer = sqlite_app.test_client().get(URL, headers={"Authorization": header})
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    assert answer.mimetype == "application/fhir+json"
    assert answer.json["issue"][0]["code"] == "login"


def test_malformed_scopes_make_a_token_invalid(sqlite_app):
    now = int(time.time())
    token = jwt.encode({"iss": "fhir-bridge-dev", "aud": AUDIENCE, "sub": "x", "exp": now + 60,
                        "scope": "system/*.rw"}, "test-secret-for-fhir-bridge-0123456789abcdef",
                       algorithm="HS256")
    assert sqlite_app.test_client().get(URL, headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/openapi.json",
                                  "/.well-known/smart-configuration",
                                  "/fhir/.well-known/smart-configuration"])
def test_public_endpoints_need_no_token(sqlite_app, path):
    client = sqlite_app.test_client()
    client.environ_base.pop("HTTP_AUTHORIZATION")
    assert client.get(path).status_code == 200


def test_the_smart_configuration_claims_only_what_is_true(sqlite_app):
    client = sqlite_app.test_client()
    client.environ_base.pop("HTTP_AUTHORIZATION")
    doc = client.get("/.well-known/smart-configuration").json
    # the dev issuer has no token endpoint; the bridge's own (Backend Services) is the one named
    assert doc["token_endpoint"] == "http://localhost/auth/token"
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert set(doc["capabilities"]) == {"permission-v1", "permission-v2", "permission-patient",
                                        "permission-user", "client-confidential-asymmetric"}
    assert "system/*.rs" in doc["scopes_supported"]
    assert "system/MedicationRequest.cruds" in doc["scopes_supported"]


def test_the_smart_configuration_points_at_a_configured_token_endpoint(tmp_path):
    app = make_app(tmp_path, [{"issuer": ISSUER, "audience": AUDIENCE,
                               "jwks_url": "http://127.0.0.1:9/jwks",
                               "token_endpoint": "https://auth.example.test/token",
                               "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                               "capabilities": ["client-confidential-asymmetric"]}],
                   token_server={"enabled": False})  # else the bridge's own endpoint is named
    doc = app.test_client().get("/.well-known/smart-configuration").json
    assert doc["token_endpoint"] == "https://auth.example.test/token"
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert "client-confidential-asymmetric" in doc["capabilities"]
