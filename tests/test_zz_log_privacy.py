"""No log line of the whole test session names a fixture person or their birth date, whatever
the status of the request, and neither does the output of the command line.

tests/log_privacy.py scans every log record of the session (every logger, DEBUG and up,
including the HTTP servers' request lines) and every command output handed to it; this module
runs last and reads its findings."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys

import pytest
import requests

from fhir_bridge.app import create_app

from .conftest import FIXTURES, read_json, token_for
from .live_server import serving
from .log_privacy import SCANNER

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")
FAMILY = P01["patients"][0]["name"]["family"]
GIVEN = P01["patients"][0]["name"]["given"][0]
BORN = P01["patients"][0]["birth_date"]
QUERY = {"family": FAMILY, "given": GIVEN, "birthdate": BORN}


class RequestLines(logging.Handler):
    """The werkzeug request lines logged while it is attached, as written (after filters)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def failing_app(tmp_path):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'bridge.db'}",
                      "max_request_bytes": 4096})

    def boom():
        raise RuntimeError(f"a bug that names {FAMILY} born {BORN}")

    app.add_url_rule("/boom", "boom", boom)
    yield app
    app.extensions["fhir_bridge"].engine.dispose()


def test_the_names_being_searched_for_are_ones_the_scan_looks_for():
    assert {FAMILY, GIVEN, BORN} <= SCANNER.forbidden


def test_a_name_search_does_not_put_the_name_in_the_request_log(sqlite_app):
    """Request lines are logged without their query strings (names can be search values)."""
    with serving(sqlite_app) as base:
        response = requests.get(f"{base}/fhir/Patient", params={"family": FAMILY},
                                headers={"Authorization": "Bearer " + token_for(sqlite_app)},
                                timeout=30)
    assert response.status_code == 200


def test_requests_that_fail_do_not_put_names_in_the_log(failing_app):
    """Every failing status: the request line (which werkzeug colours for non-200 answers)
    is logged, without its query, and no other record names the person."""
    full = {"Authorization": "Bearer " + token_for(failing_app)}
    narrow = {"Authorization": "Bearer " + token_for(failing_app, "system/Observation.rs")}
    big = json.dumps({"id": "x", "note": "y" * 8000})
    bad_patient = dict(P01["patients"][0], gender="nonsense", id="p99")
    cases = [
        (400, "GET", "/fhir/Patient", {**QUERY, "no-such-parameter": FAMILY}, full, None),
        (401, "GET", "/fhir/Patient", QUERY, {}, None),
        (403, "GET", "/fhir/Patient", QUERY, narrow, None),
        (404, "GET", "/fhir/NoSuchType", QUERY, full, None),
        (404, "GET", "/api/v1/no-such-collection", QUERY, full, None),
        (405, "PATCH", "/fhir/Patient", QUERY, full, None),
        (413, "POST", "/api/v1/patients", QUERY, {**full, "Content-Type": "application/json"},
         big),
        (422, "POST", "/api/v1/patients", QUERY, {**full, "Content-Type": "application/json"},
         json.dumps(bad_patient)),
        (500, "GET", "/boom", QUERY, full, None),
    ]
    watcher = RequestLines()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(watcher)
    leaks_before = len(SCANNER.leaks)
    try:
        with serving(failing_app) as base:
            statuses = [requests.request(method, base + path, params=params, headers=headers,
                                         data=body, timeout=30).status_code
                        for _, method, path, params, headers, body in cases]
            raw = _raw_request(base, f"GET /fhir/Patient?family={FAMILY} HTTP/1.1 extra\r\n\r\n")
    finally:
        werkzeug.removeHandler(watcher)
    assert statuses == [status for status, *_ in cases]
    assert "400" in raw  # a request line the HTTP server cannot parse
    assert any("code 400" in line for line in watcher.lines)
    for status, method, path, *_ in cases:
        logged = [line for line in watcher.lines if f"{method} {path}?" in line
                  and f" {status} " in line]
        assert logged, (status, path, watcher.lines)
        assert all("?(query omitted) HTTP/1.1" in line for line in logged), logged
    assert not any("\x1b" in line for line in watcher.lines), "colour codes reached the log"
    assert SCANNER.leaks[leaks_before:] == []


def _raw_request(base: str, text: str) -> str:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(text.encode())
        return sock.recv(65536).decode(errors="replace")


def run_cli(*args: str, stdin: str | None = None, env: dict | None = None):
    """Run the command line; its stdout and stderr go through the scan (stdout of ``map``
    is the requested Bundle, which names the patient by design, and is not scanned)."""
    import os

    result = subprocess.run([sys.executable, "-m", "fhir_bridge.cli", *args], input=stdin,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    SCANNER.scan_output(f"fhir-bridge {args[0]} stderr", result.stderr)
    if args[0] != "map":
        SCANNER.scan_output(f"fhir-bridge {args[0]} stdout", result.stdout)
    return result


def test_the_command_line_does_not_print_names_it_was_given(tmp_path):
    leaks_before = len(SCANNER.leaks)
    bad = dict(P01, patients=[dict(P01["patients"][0], gender=FAMILY, birth_date=BORN + "x",
                                   phone=GIVEN)])
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "good.json").write_text(json.dumps(P01))
    patient = {"resourceType": "Patient", "name": [{"family": FAMILY, "given": GIVEN}],
               "birthDate": BORN + "-13", "gender": FAMILY}
    db = {"FHIR_BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    results = [
        run_cli("map", str(tmp_path / "bad.json")),
        run_cli("map", str(tmp_path / "good.json")),
        run_cli("validate", "-", stdin=json.dumps(patient)),
        run_cli("validate", "-", stdin=json.dumps({"resourceType": "Patient",
                                                   "name": [{"family": FAMILY}]})),
        run_cli("demo", env=db),
        run_cli("demo", env=db),
        run_cli("monitoring", "check", "--now", BORN + "T00:00:00", env=db),
        run_cli("monitoring", "check", "--now", FAMILY, env=db),
    ]
    assert [r.returncode for r in results] == [1, 0, 1, 0, 0, 0, 2, 2], \
        [r.stderr for r in results]
    assert FAMILY in results[1].stdout  # the scan is not blind: the Bundle names the patient
    assert SCANNER.leaks[leaks_before:] == []


def test_no_log_record_of_the_suite_names_a_fixture_person():
    assert SCANNER.forbidden, "the fixtures name nobody?"
    assert SCANNER.scanned > 0, "the scanner saw nothing: is it attached?"
    assert SCANNER.outputs > 0, "no command-line output was scanned"
    assert logging.getLogger().handlers.count(SCANNER) == 1
    assert SCANNER.leaks == []
