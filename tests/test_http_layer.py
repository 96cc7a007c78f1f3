"""Errors of the HTTP layer, over a real socket to the served app (tests/live_server.py, the
request handler `fhir-bridge serve` uses): every one is an OperationOutcome
(application/fhir+json) naming what was wrong, on /fhir and on /api, and nothing is stored.

Covers what the HTTP parser refuses before Flask sees the request (414, 431, 505, a
malformed request line), what the app refuses early (invalid bytes in the path, query or headers; a
streamed body over the size limit) and routing errors (404, 405, 413 with Content-Length).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
import pytest

from .conftest import FIXTURES, TEST_SECRET, read_json, snapshot, token_for
from .live_server import serving

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def outcome(self) -> dict:
        assert self.headers["content-type"] == "application/fhir+json", self.headers
        doc = orjson.loads(self.body)
        assert doc["resourceType"] == "OperationOutcome"
        return doc

    @property
    def expressions(self) -> set[str]:
        return {e for issue in self.outcome["issue"] for e in issue.get("expression", [])}


def exchange(base: str, request: bytes, timeout: float = 30) -> Answer:
    """Send raw bytes and read the answer: its head, then Content-Length bytes (a server may
    keep reading what is left of a refused body, so the end of the answer is not EOF)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and stop reading before the end of the request
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before the answer's head: {raw!r}"
            raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", -1))
        while length < 0 or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return Answer(int(lines[0].split()[1]), headers, body)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


def request_bytes(method: str, target: str, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int = 65536) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
             for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


@contextmanager
def served(app):
    with serving(app) as base:
        yield base, {"Authorization": "Bearer " + token_for(app, ttl_seconds=3600)}


@pytest.fixture
def loaded_app(app):
    response = app.test_client().post("/api/v1/documents", json=P01)
    assert response.status_code == 200, response.json
    return app


# --- refused by the HTTP parser, before the app -----------------------------------------------

PARSER_ERRORS = [
    ("request line over 65536 bytes", b"GET /fhir/Patient?family=" + b"a" * 70_000
     + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "(request line)"),
    ("101 headers", b"GET /api/v1/patients HTTP/1.1\r\nHost: x\r\n"
     + b"".join(b"X-Filler-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431, "(headers)"),
    ("a header line over 65536 bytes", b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nX-Big: "
     + b"a" * 70_000 + b"\r\n\r\n", 431, "(headers)"),
    ("a request line that is not one", b"GARBAGE\r\n\r\n", 400, "(request)"),
    ("a request line with four words", b"GET /fhir/metadata HTTP/1.1 extra\r\n\r\n", 400,
     "(request)"),
    ("an HTTP version that is not one", b"GET /fhir/metadata HTTX/1.1\r\n\r\n", 400,
     "(request)"),
    ("HTTP/2.0 in a request line", b"GET /fhir/metadata HTTP/2.0\r\n\r\n", 505,
     "(request line)"),
]


@pytest.mark.parametrize("name,raw,status,where", PARSER_ERRORS,
                         ids=[case[0] for case in PARSER_ERRORS])
def test_the_http_parser_answers_with_an_operation_outcome(loaded_app, name, raw, status,
                                                           where):
    before = snapshot(loaded_app)
    with served(loaded_app) as (base, _):
        answer = exchange(base, raw)
    assert answer.status == status
    assert answer.expressions == {where}
    assert answer.headers["connection"] == "close"
    assert snapshot(loaded_app) == before


# --- refused by the app's first check ---------------------------------------------------------

BAD_BYTES = [
    ("GET", "/api/v1/patients/p01%00", "(path)"),
    ("GET", "/api/v1/patients/%FF", "(path)"),
    ("GET", "/fhir/Patient/pt-p01%00", "(path)"),
    ("GET", "/fhir/Patient?family=Test%00", "family"),
    ("GET", "/fhir/Patient?name=%C3%28", "name"),
    ("GET", "/api/v1/assessments?patient_id=p01%00", "patient_id"),
    ("POST", "/api/v1/prescriptions/p01-rx2%00/discontinuation", "(path)"),
]


@pytest.mark.parametrize("method,target,where", BAD_BYTES,
                         ids=[f"{m} {t}" for m, t, _ in BAD_BYTES])
def test_invalid_bytes_in_path_or_query_answer_400_over_http(loaded_app, method, target, where):
    before = snapshot(loaded_app)
    body = orjson.dumps({"date": "2025-06-30", "reason": "x", "by_id": "dr-lindqvist"})
    with served(loaded_app) as (base, auth):
        answer = exchange(base, request_bytes(method, target, {
            **auth, "Content-Type": "application/json", "Content-Length": str(len(body))},
            body if method == "POST" else b""))
    assert answer.status == 400, answer.body
    assert answer.expressions == {where}
    assert snapshot(loaded_app) == before


def test_a_control_character_in_a_header_answers_400_naming_the_header(loaded_app):
    before = snapshot(loaded_app)
    patient = orjson.dumps(dict(P01["patients"][0], id="px"))
    with served(loaded_app) as (base, auth):
        answer = exchange(base, request_bytes("POST", "/api/v1/patients", {
            **auth, "Content-Type": "application/json", "Content-Length": str(len(patient)),
            "Idempotency-Key": "key\x00one"}, patient))
    assert answer.status == 400
    assert answer.expressions == {"Idempotency-Key"}
    assert snapshot(loaded_app) == before


def test_a_raw_nul_in_a_search_is_refused_and_the_refusal_audited(loaded_app):
    """The refusal is audited like any other (the query is kept base64-encoded, as AuditEvent's
    entity.query is base64Binary, so a NUL can be stored on PostgreSQL too)."""
    import sqlalchemy as sa

    from fhir_bridge.store import tables

    engine = loaded_app.extensions["fhir_bridge"].engine
    count = sa.select(sa.func.count()).select_from(tables.audit_events)
    with engine.connect() as conn:
        audits = conn.execute(count).scalar()
    with served(loaded_app) as (base, auth):
        answer = exchange(base, request_bytes("GET", "/fhir/Patient?family=a\x00b", auth))
    assert answer.status == 400, answer.body
    assert answer.expressions == {"family"}
    with engine.connect() as conn:
        assert conn.execute(count).scalar() == audits + 1


# --- the size limit, with and without Content-Length ----------------------------------------

def _padded_patient(size: int) -> bytes:
    """A valid patient followed by spaces: cut anywhere after the record, still valid JSON."""
    record = orjson.dumps(dict(P01["patients"][0], id="p-big"))
    return record + b" " * (size - len(record))


@pytest.mark.parametrize("path", ["/api/v1/patients", "/api/v1/documents"])
def test_a_chunked_body_over_the_limit_answers_413_and_stores_nothing(app, path):
    limit = app.config["MAX_CONTENT_LENGTH"]
    before = snapshot(app)
    with served(app) as (base, auth):
        answer = exchange(base, request_bytes("POST", path, {
            **auth, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            chunked(_padded_patient(limit + 1000))))
    assert answer.status == 413
    assert answer.expressions == {"(body)"}
    assert snapshot(app) == before


def test_a_chunked_body_within_the_limit_is_read_in_full(app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    with served(app) as (base, auth):
        answer = exchange(base, request_bytes("POST", "/api/v1/patients", {
            **auth, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            chunked(_padded_patient(limit - 10))))
    assert answer.status == 201, answer.body
    assert orjson.loads(answer.body)["id"] == "p-big"


def test_a_broken_chunk_encoding_answers_400_and_stores_nothing(app):
    before = snapshot(app)
    with served(app) as (base, auth):
        answer = exchange(base, request_bytes("POST", "/api/v1/patients", {
            **auth, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            b"zz\r\n{}\r\n0\r\n\r\n"))
    assert answer.status == 400
    assert answer.expressions == {"(body)"}
    assert snapshot(app) == before


@pytest.mark.parametrize("path,content_type", [
    ("/api/v1/patients", "application/json"),
    ("/fhir/Patient/_search", "application/x-www-form-urlencoded")])
def test_a_body_over_the_limit_with_content_length_answers_413(app, path, content_type):
    size = app.config["MAX_CONTENT_LENGTH"] + 1
    before = snapshot(app)
    with served(app) as (base, auth):
        answer = exchange(base, request_bytes("POST", path, {
            **auth, "Content-Type": content_type, "Content-Length": str(size)},
            _padded_patient(size)))
    assert answer.status == 413
    assert answer.outcome["issue"][0]["code"] == "too-costly"
    assert snapshot(app) == before


# --- routing errors, on both APIs ------------------------------------------------------------

@pytest.mark.parametrize("method,path,status", [
    ("GET", "/api/v1/unicorns", 404),
    ("GET", "/fhir/Unicorn/1", 404),
    ("GET", "/nowhere", 404),
    ("DELETE", "/api/v1/patients/p01", 405),
    ("DELETE", "/fhir/Patient/pat-p01", 405),  # a patient is never deleted
])
def test_routing_errors_are_operation_outcomes(loaded_app, method, path, status):
    before = snapshot(loaded_app)
    with served(loaded_app) as (base, auth):
        answer = exchange(base, request_bytes(method, path, auth))
    assert answer.status == status
    assert answer.outcome["issue"]
    assert snapshot(loaded_app) == before


# --- `fhir-bridge serve` itself --------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fhir_bridge_serve_answers_http_layer_errors_as_operation_outcomes(tmp_path):
    port = _free_port()
    env = dict(os.environ, FHIR_BRIDGE_DEV_SECRET=TEST_SECRET,
               FHIR_BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
               FHIR_BRIDGE_SUBSCRIPTIONS__DELIVER_IN_SERVE="false")
    server = subprocess.Popen([sys.executable, "-m", "fhir_bridge.cli", "serve", "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        too_long = exchange(base, b"GET /fhir/" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
        garbage = exchange(base, b"GARBAGE\r\n\r\n")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (too_long.status, too_long.expressions) == (414, {"(request line)"})
    assert (garbage.status, garbage.expressions) == (400, {"(request)"})
