"""No log line of the whole test session names a fixture person or their birth date.

tests/log_privacy.py scans every log record of the session (every logger, DEBUG and up,
including the HTTP servers' request lines); this test runs last and reads its findings."""

from __future__ import annotations

import logging

from .live_server import serving
from .conftest import token_for
from .log_privacy import SCANNER


def test_a_name_search_does_not_put_the_name_in_the_request_log(sqlite_app):
    """Request lines are logged without their query strings (names can be search values)."""
    import requests

    with serving(sqlite_app) as base:
        response = requests.get(f"{base}/fhir/Patient", params={"family": "Testperson"},
                                headers={"Authorization": "Bearer " + token_for(sqlite_app)},
                                timeout=30)
    assert response.status_code == 200
    assert "Testperson" in SCANNER.forbidden


def test_no_log_record_of_the_suite_names_a_fixture_person():
    assert SCANNER.forbidden, "the fixtures name nobody?"
    assert SCANNER.scanned > 0, "the scanner saw nothing: is it attached?"
    assert logging.getLogger().handlers.count(SCANNER) == 1
    assert SCANNER.leaks == []
