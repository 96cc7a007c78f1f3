"""The FHIR client (fhir_bridge.sync.client), specified by what the sync code relies on.

Four kinds of evidence:
- transport faults a real server cannot be made to produce on demand (429 with Retry-After,
  resets, garbage bodies, paging tricks) are played by `responses`; an injected `sleep`
  recorder proves the waits without sleeping;
- what goes over the wire (headers, pooled connections, refused connections, logs) is checked
  against a small recording HTTP server on 127.0.0.1;
- parsing (CapabilityStatement, Retry-After) is checked on plain data;
- the real interactions run against a HAPI FHIR server when FHIR_BRIDGE_TEST_HAPI_URL is set.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from responses import matchers

from fhir_bridge.errors import (
    RemoteConflict,
    RemoteGarbage,
    RemoteRejected,
    RemoteUnavailable,
)
from fhir_bridge.sync.auth import BearerToken, SmartBackendAuth
from fhir_bridge.sync.client import Capabilities, FhirClient, parse_retry_after

BASE = "https://fhir.example.test/fhir"
PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Zebediah"}]}
TRANSIENT_OUTCOME = {"resourceType": "OperationOutcome",
                     "issue": [{"severity": "error", "code": "transient",
                                "diagnostics": "database is restarting"}]}


def outcome(diagnostics: str, code: str = "processing") -> dict:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}


def searchset(*ids: str, next_url: str | None = None) -> dict:
    bundle = {"resourceType": "Bundle", "type": "searchset",
              "entry": [{"resource": {"resourceType": "Patient", "id": i},
                         "search": {"mode": "match"}} for i in ids]}
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


class SleepRecorder(list):
    """Stands in for time.sleep: remembers each delay instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def slept() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def mock():
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def client(slept):
    with FhirClient(BASE, sleep=slept, max_retries=3, backoff_base=0.5, backoff_max=30) as c:
        yield c


# == retries: what is transient, and how long we wait ==========================================


def test_429_waits_exactly_as_long_as_retry_after_says(mock, client, slept):
    mock.get(f"{BASE}/Patient/p1", status=429, headers={"Retry-After": "7"})
    mock.get(f"{BASE}/Patient/p1", json=PATIENT)
    assert client.read("Patient", "p1") == PATIENT
    assert slept == [7.0]
    assert len(mock.calls) == 2


def test_retry_after_may_be_an_http_date(mock, client, slept):
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    mock.get(f"{BASE}/Patient/p1", status=503, headers={"Retry-After": when})
    mock.get(f"{BASE}/Patient/p1", json=PATIENT)
    client.read("Patient", "p1")
    assert len(slept) == 1 and 8 <= slept[0] <= 10


def test_retry_after_is_capped_at_backoff_max_but_reported_in_full(mock, client, slept):
    mock.get(f"{BASE}/Patient/p1", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(RemoteUnavailable) as caught:
        client.read("Patient", "p1")
    assert slept == [30, 30, 30]
    assert caught.value.retry_after == 3600, "the caller may schedule the next try itself"


def test_503_then_success_returns_the_success_after_a_jittered_wait(mock, client, slept):
    mock.get(f"{BASE}/Patient/p1", status=503, json=TRANSIENT_OUTCOME)
    mock.get(f"{BASE}/Patient/p1", json=PATIENT)
    assert client.read("Patient", "p1") == PATIENT
    assert len(slept) == 1 and 0 <= slept[0] <= 0.5


@pytest.mark.parametrize("fault", [
    requests.ConnectionError("Connection reset by peer"),
    requests.exceptions.ChunkedEncodingError("connection broken mid-body"),
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.ConnectTimeout("connect timed out"),
], ids=["reset", "chunked", "read-timeout", "connect-timeout"])
def test_transport_faults_are_retried(mock, client, slept, fault):
    mock.get(f"{BASE}/Patient/p1", body=fault)
    mock.get(f"{BASE}/Patient/p1", json=PATIENT)
    assert client.read("Patient", "p1") == PATIENT
    assert len(slept) == 1


def test_when_retries_run_out_the_error_is_retryable_and_counts_attempts(mock, client, slept):
    mock.get(f"{BASE}/Patient/p1", status=503, json=TRANSIENT_OUTCOME)
    with pytest.raises(RemoteUnavailable) as caught:
        client.read("Patient", "p1")
    error = caught.value
    assert len(mock.calls) == 4, "max_retries=3: one try and three retries"
    assert "gave up after 4 attempts" in error.message
    assert error.retryable and error.http_status == 503
    assert "database is restarting" in error.message
    assert error.body == TRANSIENT_OUTCOME
    for attempt, delay in enumerate(slept):  # full jitter under an exponential ceiling
        assert 0 <= delay <= 0.5 * 2 ** attempt


def test_retry_false_makes_one_attempt(mock, client, slept):
    mock.get(f"{BASE}/Patient/p1", status=502)
    with pytest.raises(RemoteUnavailable, match="gave up after 1 attempt"):
        client.request("GET", "Patient/p1", retry=False)
    assert len(mock.calls) == 1 and slept == []


def test_a_plain_create_is_not_repeated_after_a_5xx_because_it_could_duplicate(mock, client):
    mock.post(f"{BASE}/Patient", status=500)
    with pytest.raises(RemoteUnavailable):
        client.create(PATIENT)
    assert len(mock.calls) == 1


def test_a_plain_create_is_repeated_after_429_because_the_server_did_nothing(mock, client):
    mock.post(f"{BASE}/Patient", status=429, headers={"Retry-After": "1"})
    mock.post(f"{BASE}/Patient", status=201, headers={"Location": f"{BASE}/Patient/p1"})
    assert client.create(PATIENT).status == 201


def test_a_conditional_create_is_repeated_after_a_5xx(mock, client):
    mock.post(f"{BASE}/Patient", status=500)
    mock.post(f"{BASE}/Patient", status=201)
    assert client.create(PATIENT, if_none_exist={"identifier": "urn:x|1"}).status == 201


def test_a_transaction_of_idempotent_entries_is_repeated_after_a_5xx(mock, client):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": PATIENT, "request": {"method": "PUT", "url": "Patient?identifier=urn:x|1"}}]}
    mock.post(BASE, status=504)
    mock.post(BASE, json={"resourceType": "Bundle", "type": "transaction-response"})
    assert client.transaction(bundle)["type"] == "transaction-response"


def test_a_transaction_with_a_plain_post_is_not_repeated_after_a_5xx(mock, client):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}}]}
    mock.post(BASE, status=504)
    with pytest.raises(RemoteUnavailable):
        client.transaction(bundle)
    assert len(mock.calls) == 1


# == permanent failures ========================================================================


def test_400_is_rejected_at_once_with_the_servers_diagnostics(mock, client, slept):
    mock.post(f"{BASE}/Patient", status=400, json=outcome("HAPI-0450: bad gender code"))
    with pytest.raises(RemoteRejected) as caught:
        client.create(PATIENT)
    error = caught.value
    assert len(mock.calls) == 1 and slept == []
    assert not error.retryable and error.http_status == 400
    assert "HAPI-0450: bad gender code" in error.message
    assert error.body["resourceType"] == "OperationOutcome"
    assert "Zebediah" not in str(error), "the request body (health data) never enters errors"


@pytest.mark.parametrize("status", [409, 412])
def test_409_and_412_are_version_conflicts(mock, client, status):
    mock.put(f"{BASE}/Patient/p1", status=status, json=outcome("version mismatch", "conflict"))
    with pytest.raises(RemoteConflict) as caught:
        client.update(PATIENT, if_match="3")
    assert caught.value.http_status == status and not caught.value.retryable
    assert len(mock.calls) == 1


def test_404_is_a_rejection_even_without_an_outcome(mock, client):
    mock.get(f"{BASE}/Patient/p1", status=404, body="Not Found")
    with pytest.raises(RemoteRejected) as caught:
        client.read("Patient", "p1")
    assert caught.value.http_status == 404 and caught.value.body is None


def test_a_redirect_is_not_followed(mock, client):
    mock.get(f"{BASE}/Patient/p1", status=301, headers={"Location": "https://other.test/p1"})
    with pytest.raises(RemoteRejected, match="redirected"):
        client.read("Patient", "p1")
    assert len(mock.calls) == 1


# == garbage answers ===========================================================================


@pytest.mark.parametrize("body, content_type", [
    ("<html><body>Maintenance</body></html>", "text/html"),
    ("[1, 2, 3]", "application/fhir+json"),
    ('{"resourceType": "Patient", ', "application/fhir+json"),
    ("", "application/fhir+json"),
], ids=["html", "array", "truncated", "empty"])
def test_a_2xx_that_is_not_a_json_object_is_garbage_and_retryable(mock, client, body,
                                                                 content_type):
    mock.get(f"{BASE}/Patient/p1", body=body, content_type=content_type)
    with pytest.raises(RemoteGarbage) as caught:
        client.read("Patient", "p1")
    assert caught.value.retryable
    assert len(mock.calls) == 1, "the caller decides when to try again"


def test_a_resource_of_the_wrong_type_is_garbage(mock, client):
    mock.get(f"{BASE}/Patient", json=PATIENT)
    with pytest.raises(RemoteGarbage, match="expected a Bundle"):
        client.search("Patient", {"name": "x"})


def test_a_write_whose_answer_is_not_json_still_succeeded(mock, client):
    mock.post(f"{BASE}/Patient", status=201, body="Created", content_type="text/plain",
              headers={"Location": f"{BASE}/Patient/p9/_history/1"})
    answer = client.create(PATIENT, if_none_exist="identifier=urn:x|1")
    assert answer.body is None and answer.location.endswith("Patient/p9/_history/1")


# == paging ====================================================================================


def test_search_all_follows_relative_next_links_through_three_pages(mock, client):
    mock.get(f"{BASE}/Patient", match=[matchers.query_param_matcher({"_count": "1"})],
             json=searchset("a", next_url="Patient?_getpages=s1&_getpagesoffset=1"))
    mock.get(f"{BASE}/Patient",
             match=[matchers.query_param_matcher({"_getpages": "s1", "_getpagesoffset": "1"})],
             json=searchset("b", next_url="?_getpages=s1&_getpagesoffset=2"))
    mock.get(BASE,
             match=[matchers.query_param_matcher({"_getpages": "s1", "_getpagesoffset": "2"})],
             json=searchset("c"))
    assert [p["id"] for p in client.search_all("Patient", {"_count": "1"})] == ["a", "b", "c"]
    assert len(mock.calls) == 3


def test_search_all_leaves_out_included_resources(mock, client):
    bundle = searchset("a")
    bundle["entry"].append({"resource": {"resourceType": "Organization", "id": "o"},
                            "search": {"mode": "include"}})
    mock.get(f"{BASE}/Patient", json=bundle)
    assert [r["id"] for r in client.search_all("Patient", {"_include": "Patient:organization"})] \
        == ["a"]


def test_a_next_link_to_another_origin_is_refused_and_never_requested(mock, slept):
    mock.get(f"{BASE}/Patient",
             json=searchset("a", next_url="https://collector.evil.test/fhir?page=2"))
    with FhirClient(BASE, auth=BearerToken("secret-token"), sleep=slept) as client:
        pages = client.search_all("Patient")
        assert next(pages)["id"] == "a"
        with pytest.raises(RemoteRejected, match="collector.evil.test"):
            next(pages)
    assert [urlsplit(c.request.url).hostname for c in mock.calls] == ["fhir.example.test"]


def test_paging_stops_when_the_server_repeats_a_next_link(mock, client):
    mock.get(f"{BASE}/Patient", match=[matchers.query_param_matcher({})],
             json=searchset("a", next_url=f"{BASE}/Patient?page=2"))
    mock.get(f"{BASE}/Patient", match=[matchers.query_param_matcher({"page": "2"})],
             json=searchset("b", next_url=f"{BASE}/Patient?page=2"))
    assert [p["id"] for p in client.search_all("Patient")] == ["a", "b"]
    assert len(mock.calls) == 2


def test_absolute_urls_elsewhere_are_refused_before_any_request(client):
    for url in ["https://other.test/fhir/Patient", "http://fhir.example.test/fhir/Patient",
                "https://fhir.example.test:8443/fhir/Patient", "//other.test/fhir/Patient"]:
        with pytest.raises(RemoteRejected, match="not on the origin"):
            client.request("GET", url)


# == 401 and credentials =======================================================================


@pytest.fixture(scope="module")
def ec_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP384R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _token_answers(mock, token_url: str) -> None:
    issued = []

    def answer(request):
        issued.append(request)
        return 200, {}, json.dumps({"access_token": f"token-{len(issued)}", "expires_in": 300})

    mock.add_callback(responses.POST, token_url, callback=answer)


def test_a_401_fetches_a_new_token_and_retries_once(mock, slept, ec_pem):
    token_url = "https://auth.example.test/token"
    _token_answers(mock, token_url)
    mock.get(f"{BASE}/Patient/p1", status=401)
    mock.get(f"{BASE}/Patient/p1", json=PATIENT)
    auth = SmartBackendAuth(token_url, "bridge", ec_pem, alg="ES384")
    with FhirClient(BASE, auth=auth, sleep=slept) as client:
        assert client.read("Patient", "p1") == PATIENT
    fhir_calls = [c for c in mock.calls if c.request.url.startswith(BASE)]
    assert [c.request.headers["Authorization"] for c in fhir_calls] == ["Bearer token-1",
                                                                        "Bearer token-2"]
    assert slept == [], "a refreshed credential is not a server fault: no backoff"


def test_a_second_401_is_a_rejection(mock, slept, ec_pem):
    token_url = "https://auth.example.test/token"
    _token_answers(mock, token_url)
    mock.get(f"{BASE}/Patient/p1", status=401, json=outcome("token not accepted", "login"))
    auth = SmartBackendAuth(token_url, "bridge", ec_pem, alg="ES384")
    with FhirClient(BASE, auth=auth, sleep=slept) as client:
        with pytest.raises(RemoteRejected) as caught:
            client.read("Patient", "p1")
    assert caught.value.http_status == 401
    assert len([c for c in mock.calls if c.request.url.startswith(BASE)]) == 2


def test_a_401_with_a_static_token_is_not_retried(mock, slept):
    mock.get(f"{BASE}/Patient/p1", status=401)
    with FhirClient(BASE, auth=BearerToken("stale"), sleep=slept) as client:
        with pytest.raises(RemoteRejected):
            client.read("Patient", "p1")
    assert len(mock.calls) == 1


def test_an_unreachable_token_endpoint_is_retried_like_the_server(mock, slept, ec_pem):
    token_url = "https://auth.example.test/token"
    mock.post(token_url, status=503)
    mock.post(token_url, json={"access_token": "t", "expires_in": 300})
    mock.get(f"{BASE}/Patient/p1", json=PATIENT)
    auth = SmartBackendAuth(token_url, "bridge", ec_pem, alg="ES384")
    with FhirClient(BASE, auth=auth, sleep=slept) as client:
        assert client.read("Patient", "p1") == PATIENT
    assert len(slept) == 1


# == on the wire: a recording server on 127.0.0.1 ==============================================


@dataclass
class Recorded:
    method: str
    target: str  # path and query string
    headers: dict[str, str]
    body: bytes
    peer_port: int  # the client's port: equal ports mean one reused connection


class RecordingServer(ThreadingHTTPServer):
    """An HTTP/1.1 server that records each request and plays the answer set for its path."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.requests: list[Recorded] = []
        self.answers: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/fhir"

    def answer(self, method: str, path: str, status: int = 200, body: object = None,
               headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.answers[(method, path)] = (status, headers or {}, payload)


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: RecordingServer = self.server  # type: ignore[assignment]
        server.requests.append(Recorded(self.command, self.path, dict(self.headers), body,
                                        self.client_address[1]))
        status, headers, payload = server.answers.get(
            (self.command, urlsplit(self.path).path), (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the recorded requests instead."""


@pytest.fixture
def server():
    srv = RecordingServer()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture
def local(server, slept):
    with FhirClient(server.base, sleep=slept, user_agent="fhir-bridge-test/1") as c:
        yield c


def test_requests_ask_for_fhir_json_and_label_their_bodies(server, local):
    server.answer("POST", "/fhir/Patient", 201)
    server.answer("GET", "/fhir/Patient/p1", 200, PATIENT)
    local.create(PATIENT)
    local.read("Patient", "p1")
    post, get = server.requests
    assert post.headers["Accept"] == get.headers["Accept"] == "application/fhir+json"
    assert post.headers["Content-Type"] == "application/fhir+json"
    assert "Content-Type" not in get.headers
    assert post.headers["User-Agent"] == "fhir-bridge-test/1"
    assert json.loads(post.body) == PATIENT


def test_conditional_and_versioned_writes_send_their_conditions(server, local):
    server.answer("POST", "/fhir/Patient", 200)
    server.answer("PUT", "/fhir/Patient", 200)
    server.answer("PUT", "/fhir/Patient/p1", 200)
    server.answer("GET", "/fhir/Patient", 200, searchset())
    local.create(PATIENT, if_none_exist={"identifier": "urn:x|1"})
    local.conditional_update("Patient", {"identifier": "urn:x|1"}, PATIENT)
    local.update(PATIENT, if_match="3")
    local.search("Patient", {"identifier": "urn:x|1"})
    create, conditional, update, search = server.requests
    assert create.headers["If-None-Exist"] == "identifier=urn%3Ax%7C1"
    assert conditional.target == "/fhir/Patient?identifier=urn%3Ax%7C1"
    assert update.headers["If-Match"] == 'W/"3"'
    assert search.headers["Cache-Control"] == "no-cache", "HAPI would serve a 60 s old result"


def test_a_transaction_is_posted_to_the_base(server, local):
    server.answer("POST", "/fhir", 200, {"resourceType": "Bundle", "type": "batch-response"})
    local.transaction({"resourceType": "Bundle", "type": "batch", "entry": []})
    assert server.requests[0].target == "/fhir"


def test_the_answer_exposes_location_etag_and_last_modified(server, local):
    server.answer("POST", "/fhir/Patient", 201, PATIENT, headers={
        "Location": f"{server.base}/Patient/p1/_history/4", "ETag": 'W/"4"',
        "Last-Modified": "Tue, 25 Nov 2025 10:00:00 GMT"})
    answer = local.create(PATIENT)
    assert answer.status == 201 and answer.body == PATIENT
    assert answer.location == f"{server.base}/Patient/p1/_history/4"
    assert answer.etag == 'W/"4"' and answer.version_id == "4"
    assert answer.last_modified == "Tue, 25 Nov 2025 10:00:00 GMT"
    assert answer.headers["etag"] == 'W/"4"', "headers are case-insensitive"


def test_a_delete_may_answer_without_a_body(server, local):
    server.answer("DELETE", "/fhir/Patient/p1", 204)
    assert local.delete("Patient", "p1").body is None


def test_requests_reuse_one_pooled_connection(server, local):
    server.answer("GET", "/fhir/Patient/p1", 200, PATIENT)
    for _ in range(5):
        local.read("Patient", "p1")
    assert len({r.peer_port for r in server.requests}) == 1
    adapter = local.session.get_adapter(server.base)
    assert adapter.max_retries.total == 0, "urllib3 must not retry behind our back"


def test_the_log_names_method_path_status_and_time_but_no_query_or_body(server, local,
                                                                        caplog):
    server.answer("GET", "/fhir/Patient", 200, searchset("p1"))
    server.answer("POST", "/fhir/Patient", 400, outcome("bad name"))
    server.answer("GET", "/fhir/Patient/p1", 503, outcome("Patient Zebediah is locked"))
    caplog.set_level(logging.DEBUG, logger="fhir_bridge.sync.client")
    local.search("Patient", {"identifier": "urn:mrn|MRN-4711"})
    with pytest.raises(RemoteRejected):
        local.create(PATIENT)
    with pytest.raises(RemoteUnavailable) as caught:
        local.read("Patient", "p1")
    assert "Zebediah is locked" in caught.value.message, "the caller gets the diagnostics"
    text = caplog.text
    assert re.search(r"GET /fhir/Patient -> 200 in [\d.]+ ms", text)
    assert re.search(r"POST /fhir/Patient -> 400 in [\d.]+ ms", text)
    assert "retry 1 of 5" in text
    assert "MRN-4711" not in text and "Zebediah" not in text, "the log holds no health data"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_is_retried_even_for_a_plain_create(slept):
    base = f"http://127.0.0.1:{_closed_port()}/fhir"
    with FhirClient(base, sleep=slept, max_retries=2) as client:
        with pytest.raises(RemoteUnavailable, match="gave up after 3 attempts"):
            client.create(PATIENT)
    assert len(slept) == 2, "nothing reached a server, so nothing can be duplicated"


# == parsing ===================================================================================


STATEMENT = {
    "resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
    "software": {"name": "HAPI FHIR Server", "version": "8.8.0"},
    "rest": [{"mode": "server", "interaction": [{"code": "transaction"}, {"code": "batch"}],
              "resource": [
                  {"type": "Patient", "versioning": "versioned-update",
                   "conditionalCreate": True, "conditionalUpdate": True,
                   "conditionalDelete": "multiple",
                   "interaction": [{"code": "read"}, {"code": "update"}, {"code": "create"}],
                   "searchParam": [{"name": "identifier", "type": "token"}]},
                  {"type": "CarePlan", "versioning": "versioned",
                   "interaction": [{"code": "read"}]}]}]}


def test_capabilities_summarise_the_statement():
    caps = Capabilities.from_statement(STATEMENT)
    assert (caps.fhir_version, caps.software_name, caps.software_version) == (
        "4.0.1", "HAPI FHIR Server", "8.8.0")
    assert caps.transaction and caps.batch and caps.strategy() == "transaction"
    patient = caps.resource("Patient")
    assert patient.interactions == {"read", "update", "create"}
    assert patient.conditional_create and patient.conditional_update
    assert patient.conditional_delete == "multiple"
    assert patient.supports_if_match and patient.search_params == {"identifier"}
    care_plan = caps.resource("CarePlan")
    assert not care_plan.supports_if_match and not care_plan.conditional_update
    assert care_plan.conditional_delete == "not-supported"
    assert caps.supports("Patient", "update") and not caps.supports("CarePlan", "update")


def test_a_server_without_transactions_gets_requests_one_by_one():
    statement = {**STATEMENT, "rest": [{"mode": "server", "resource": []}]}
    assert Capabilities.from_statement(statement).strategy() == "per-resource"


def test_retry_after_parsing():
    now = 1_700_000_000.0
    assert parse_retry_after("120") == 120
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None


def test_bad_types_and_ids_cannot_bend_the_url(client):
    with pytest.raises(ValueError):
        client.read("Patient", "../metadata")
    with pytest.raises(ValueError):
        client.read("patient/x", "1")


# == a real HAPI FHIR server ===================================================================

TEST_SYSTEM = "urn:fhir-bridge:test:client"


@pytest.fixture
def hapi():
    url = os.environ.get("FHIR_BRIDGE_TEST_HAPI_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("FHIR_BRIDGE_TEST_HAPI_URL is not set: the HAPI server must run in CI")
        pytest.skip("HAPI not configured (scripts/hapi-server start, then set "
                    "FHIR_BRIDGE_TEST_HAPI_URL)")
    with FhirClient(url) as client:
        yield client


def hapi_patient(value: str, family: str) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": TEST_SYSTEM, "value": value}],
            "name": [{"family": family}]}


def _id_from(answer) -> str:
    match = re.search(r"Patient/([^/]+)", answer.location or "")
    assert match, answer.location
    return match.group(1)


@pytest.mark.hapi
def test_hapi_capabilities(hapi):
    caps = hapi.capabilities()
    assert caps.fhir_version == "4.0.1"
    assert caps.transaction and caps.strategy() == "transaction"
    assert caps.resource("Patient").conditional_update


@pytest.mark.hapi
def test_hapi_patient_lifecycle(hapi):
    value = uuid.uuid4().hex
    query = {"identifier": f"{TEST_SYSTEM}|{value}"}
    created = hapi.create(hapi_patient(value, "Before"), if_none_exist=query)
    patient_id = _id_from(created)
    try:
        assert created.status == 201 and created.version_id == "1"
        again = hapi.create(hapi_patient(value, "Before"), if_none_exist=query)
        assert again.status == 200 and _id_from(again) == patient_id, "no duplicate"

        updated = hapi.conditional_update("Patient", query, hapi_patient(value, "After"))
        assert updated.status == 200 and updated.version_id == "2"
        current = hapi.read("Patient", patient_id)
        assert current["name"][0]["family"] == "After"
        assert hapi.vread("Patient", patient_id, "1")["name"][0]["family"] == "Before"

        with pytest.raises(RemoteConflict):  # HAPI answers 409 where the spec says 412
            hapi.update({**current, "name": [{"family": "Stale"}]}, if_match="1")
        assert hapi.update({**current, "name": [{"family": "Fresh"}]},
                           if_match=current["meta"]["versionId"]).version_id == "3"
    finally:
        hapi.delete("Patient", patient_id)
    with pytest.raises(RemoteRejected) as caught:
        hapi.read("Patient", patient_id)
    assert caught.value.http_status == 410


@pytest.mark.hapi
def test_hapi_search_all_follows_next_links(hapi):
    values = [uuid.uuid4().hex for _ in range(3)]
    ids = [_id_from(hapi.create(hapi_patient(v, f"Paging{n}"))) for n, v in enumerate(values)]
    try:
        params = {"identifier": ",".join(f"{TEST_SYSTEM}|{v}" for v in values), "_count": "1"}
        found = [p["id"] for p in hapi.search_all("Patient", params)]
        assert sorted(found) == sorted(ids), "each patient exactly once"
        assert len(list(hapi.pages("Patient", params))) == 3
    finally:
        for patient_id in ids:
            hapi.delete("Patient", patient_id)


@pytest.mark.hapi
def test_hapi_transaction_of_conditional_updates(hapi):
    value = uuid.uuid4().hex
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": hapi_patient(value, "Bundled"),
        "request": {"method": "PUT", "url": f"Patient?identifier={TEST_SYSTEM}|{value}"}}]}
    answer = hapi.transaction(bundle)
    assert answer["type"] == "transaction-response"
    response = answer["entry"][0]["response"]
    assert response["status"].startswith("201")
    hapi.delete("Patient", re.search(r"Patient/([^/]+)", response["location"]).group(1))
