"""How fhir-bridge authenticates to FHIR servers (fhir_bridge.sync.auth).

SMART Backend Services is exercised against a token endpoint stood up with `responses`: the
keys are generated here, and each posted client assertion is decoded with the public key.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from urllib.parse import parse_qs

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_bridge.errors import RemoteGarbage, RemoteRejected, RemoteUnavailable
from fhir_bridge.sync.auth import (
    CLIENT_ASSERTION_TYPE,
    BasicAuth,
    BearerToken,
    NoAuth,
    SmartBackendAuth,
    auth_from_config,
)

TOKEN_URL = "https://auth.example.test/oauth2/token"
CLIENT_ID = "fhir-bridge-test"


class FakeClock:
    """A clock the test moves by hand; starts at the real time so JWT checks still apply."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def clock():
    return FakeClock()


class TokenEndpoint:
    """A token endpoint that hands out token-1, token-2, ... and keeps every request's form."""

    def __init__(self) -> None:
        self.issued: list[dict[str, list[str]]] = []
        self.expires_in: int | None = 300

    def answer(self, request):
        self.issued.append(parse_qs(request.body))
        body = {"access_token": f"token-{len(self.issued)}", "token_type": "bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


@pytest.fixture
def token_endpoint():
    endpoint = TokenEndpoint()
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TOKEN_URL, callback=endpoint.answer)
        yield endpoint


def smart(key, clock, alg="RS384", kid=None, scope="system/*.rs"):
    return SmartBackendAuth(TOKEN_URL, CLIENT_ID, pem(key), alg=alg, kid=kid, scope=scope,
                            clock=clock)


def decode(form, key, alg):
    assertion = form["client_assertion"][0]
    claims = jwt.decode(assertion, key.public_key(), algorithms=[alg], audience=TOKEN_URL)
    return jwt.get_unverified_header(assertion), claims


# -- SMART Backend Services ------------------------------------------------------------------


def test_smart_posts_a_client_credentials_grant_with_a_jwt_assertion(token_endpoint, rsa_key,
                                                                     clock):
    auth = smart(rsa_key, clock, scope="system/MedicationRequest.cruds")
    assert auth.headers() == {"Authorization": "Bearer token-1"}
    form = token_endpoint.issued[0]
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_assertion_type"] == [CLIENT_ASSERTION_TYPE]
    assert form["scope"] == ["system/MedicationRequest.cruds"]


def test_rs384_assertion_names_the_client_and_the_token_endpoint(token_endpoint, rsa_key,
                                                                 clock):
    smart(rsa_key, clock).headers()
    header, claims = decode(token_endpoint.issued[0], rsa_key, "RS384")
    assert header["alg"] == "RS384"
    assert "kid" not in header
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert claims["exp"] <= clock.now + 300, "SMART: the assertion lives at most 5 minutes"
    assert claims["exp"] > clock.now
    assert uuid.UUID(claims["jti"])


def test_es384_assertion_carries_the_kid(token_endpoint, ec_key, clock):
    smart(ec_key, clock, alg="ES384", kid="key-2024").headers()
    header, claims = decode(token_endpoint.issued[0], ec_key, "ES384")
    assert header["alg"] == "ES384"
    assert header["kid"] == "key-2024"
    assert claims["iss"] == CLIENT_ID


def test_every_assertion_has_a_new_jti(token_endpoint, rsa_key, clock):
    auth = smart(rsa_key, clock)
    auth.headers()
    auth.invalidate()
    auth.headers()
    jtis = {decode(form, rsa_key, "RS384")[1]["jti"] for form in token_endpoint.issued}
    assert len(jtis) == 2


def test_the_token_is_cached_across_calls(token_endpoint, rsa_key, clock):
    auth = smart(rsa_key, clock)
    seen = {auth.headers()["Authorization"] for _ in range(5)}
    clock.advance(200)
    seen.add(auth.headers()["Authorization"])
    assert seen == {"Bearer token-1"}
    assert len(token_endpoint.issued) == 1


def test_the_token_is_refreshed_shortly_before_it_expires(token_endpoint, rsa_key, clock):
    token_endpoint.expires_in = 120
    auth = smart(rsa_key, clock)
    assert auth.headers()["Authorization"] == "Bearer token-1"
    clock.advance(100)
    assert auth.headers()["Authorization"] == "Bearer token-1"
    clock.advance(19)  # one second before expiry: too late to use it
    assert auth.headers()["Authorization"] == "Bearer token-2"
    assert len(token_endpoint.issued) == 2


def test_a_token_without_expires_in_is_assumed_to_live_300_seconds(token_endpoint, rsa_key,
                                                                   clock):
    token_endpoint.expires_in = None
    auth = smart(rsa_key, clock)
    auth.headers()
    clock.advance(250)
    assert auth.headers()["Authorization"] == "Bearer token-1"
    clock.advance(49)
    assert auth.headers()["Authorization"] == "Bearer token-2"


def test_invalidate_forces_a_new_token(token_endpoint, rsa_key, clock):
    auth = smart(rsa_key, clock)
    auth.headers()
    auth.invalidate()
    assert auth.headers()["Authorization"] == "Bearer token-2"
    assert auth.refreshable


@responses.activate
def test_a_refused_client_is_rejected_with_the_oauth_reason(rsa_key, clock):
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_client",
                                                "error_description": "unknown key"})
    with pytest.raises(RemoteRejected) as caught:
        smart(rsa_key, clock).headers()
    assert caught.value.http_status == 400
    assert "invalid_client: unknown key" in caught.value.message
    assert not caught.value.retryable


@responses.activate
def test_an_unavailable_token_endpoint_is_retryable(rsa_key, clock):
    responses.post(TOKEN_URL, status=503, headers={"Retry-After": "7"})
    with pytest.raises(RemoteUnavailable) as caught:
        smart(rsa_key, clock).headers()
    assert caught.value.retryable
    assert caught.value.retry_after == 7


@responses.activate
def test_an_unreachable_token_endpoint_is_retryable(rsa_key, clock):
    responses.post(TOKEN_URL, body=requests.ConnectionError("connection reset"))
    with pytest.raises(RemoteUnavailable):
        smart(rsa_key, clock).headers()


@pytest.mark.parametrize("body", ["<html>oops</html>", '{"token_type": "bearer"}',
                                  '{"access_token": "x", "expires_in": "soon"}'])
@responses.activate
def test_a_token_answer_without_a_usable_token_is_garbage(rsa_key, clock, body):
    responses.post(TOKEN_URL, body=body, content_type="application/json")
    with pytest.raises(RemoteGarbage):
        smart(rsa_key, clock).headers()


def test_the_key_must_fit_the_algorithm(rsa_key, ec_key):
    with pytest.raises(ValueError, match="RS384 needs an RSA"):
        SmartBackendAuth(TOKEN_URL, CLIENT_ID, pem(ec_key), alg="RS384")
    with pytest.raises(ValueError, match="ES384 needs an EC"):
        SmartBackendAuth(TOKEN_URL, CLIENT_ID, pem(rsa_key), alg="ES384")
    with pytest.raises(ValueError, match="alg must be one of"):
        SmartBackendAuth(TOKEN_URL, CLIENT_ID, pem(rsa_key), alg="HS256")
    with pytest.raises(ValueError, match="not a PEM key"):
        SmartBackendAuth(TOKEN_URL, CLIENT_ID, "not a key")


def test_repr_never_shows_a_secret(rsa_key):
    assert "s3cret" not in repr(BearerToken("s3cret"))
    assert "s3cret" not in repr(BasicAuth("bridge", "s3cret"))
    assert "PRIVATE" not in repr(SmartBackendAuth(TOKEN_URL, CLIENT_ID, pem(rsa_key)))


# -- static credentials ----------------------------------------------------------------------


def test_static_credentials_become_authorization_headers():
    assert NoAuth().headers() == {}
    assert BearerToken("abc").headers() == {"Authorization": "Bearer abc"}
    header = BasicAuth("bridge", "pä:ss").headers()["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == "bridge:pä:ss"
    assert not BearerToken("abc").refreshable, "a static token cannot be refreshed"


def test_static_credentials_refuse_header_injection():
    with pytest.raises(ValueError):
        BearerToken("abc\r\nX-Evil: 1")
    with pytest.raises(ValueError):
        BasicAuth("a:b", "pw")


# -- configuration ---------------------------------------------------------------------------


def test_config_none_and_default():
    assert isinstance(auth_from_config({"type": "none"}, environ={}), NoAuth)
    assert isinstance(auth_from_config(None, environ={}), NoAuth)


def test_config_bearer_reads_the_token_from_the_named_variable():
    auth = auth_from_config({"type": "bearer", "token_env": "HAPI_TOKEN"},
                            environ={"HAPI_TOKEN": "t0k"})
    assert auth.headers() == {"Authorization": "Bearer t0k"}


def test_config_basic_reads_the_password_from_the_named_variable():
    auth = auth_from_config({"type": "basic", "user": "bridge", "password_env": "HAPI_PW"},
                            environ={"HAPI_PW": "pw"})
    assert isinstance(auth, BasicAuth)


def test_config_smart_backend_reads_the_key_from_the_named_variable(rsa_key):
    config = {"type": "smart-backend", "token_url": TOKEN_URL, "client_id": CLIENT_ID,
              "private_key_env": "BRIDGE_KEY", "alg": "RS384", "kid": "k1",
              "scope": "system/*.cruds"}
    auth = auth_from_config(config, environ={"BRIDGE_KEY": pem(rsa_key).decode()})
    assert isinstance(auth, SmartBackendAuth)
    assert (auth.client_id, auth.alg, auth.kid, auth.scope) == (CLIENT_ID, "RS384", "k1",
                                                                "system/*.cruds")


def test_config_names_the_missing_variable():
    with pytest.raises(ValueError, match="HAPI_TOKEN"):
        auth_from_config({"type": "bearer", "token_env": "HAPI_TOKEN"}, environ={})


@pytest.mark.parametrize("config", [
    {"type": "bearer", "token": "inline"},
    {"type": "basic", "user": "u", "password": "inline"},
    {"type": "smart-backend", "token_url": TOKEN_URL, "client_id": "c", "private_key": "x"},
])
def test_config_refuses_secrets_written_in_the_file(config):
    with pytest.raises(ValueError, match="environment variable"):
        auth_from_config(config, environ={})


@pytest.mark.parametrize("config, message", [
    ({"type": "kerberos"}, "auth.type must be one of"),
    ({}, "auth.type must be one of"),
    ({"type": "bearer", "token_env": "T", "tokn_env": "T"}, "unknown key auth.tokn_env"),
    ({"type": "basic", "password_env": "P"}, "auth.user is required"),
])
def test_config_mistakes_fail_loudly(config, message):
    with pytest.raises(ValueError, match=message):
        auth_from_config(config, environ={"T": "x", "P": "y"})
