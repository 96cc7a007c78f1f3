"""Fuzzing the internal API (/api/v1) with schemathesis, from the OpenAPI document the live app
serves: in process (WSGI), on SQLite, with fixture patients loaded and a full-access token.

Every generated request (valid and invalid, from the examples, coverage and fuzzing phases)
must get no 5xx, a response that conforms to the document (status code, content type, body
schema), and when it is refused (status >= 400) the store must be exactly as before, apart
from ``audit_events`` (which records every access, refused ones included).

The run is bounded for CI (``MAX_EXAMPLES`` per operation and phase, deterministic
generation, no example database) and counts its cases: the count is written to
``.run/fuzz-api-cases.json`` and to the terminal summary, and the last test checks that every
operation ran at least ``MIN_CASES_PER_OPERATION`` cases.
"""

from __future__ import annotations

import collections
import json
import os

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from fhir_bridge.api.openapi import build_spec

from .conftest import FIXTURES, module_app, read_json, snapshot, token_for
from .fuzz_support import counted

#: Examples per operation, generation mode and phase (the coverage phase adds its own
#: deterministic cases on top). Raise it locally: FHIR_BRIDGE_FUZZ_EXAMPLES=200.
MAX_EXAMPLES = int(os.environ.get("FHIR_BRIDGE_FUZZ_EXAMPLES", "25"))
MIN_CASES_PER_OPERATION = 10
PHASES = os.environ.get("FHIR_BRIDGE_FUZZ_PHASES", "examples,coverage,fuzzing").split(",")
DOCUMENTS = ("p01-depression-ssri-titration.json", "p05-anxiety-discontinuation.json")

#: cases run per operation label ("POST /api/v1/patients"), and per status code.
CASES: collections.Counter[str] = collections.Counter()
STATUSES: collections.Counter[int] = collections.Counter()


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    """One app for the whole fuzz run, holding two fixture patients."""
    documents = [read_json(FIXTURES / "internal" / name) for name in DOCUMENTS]
    with module_app(tmp_path_factory, "fuzz-api", documents) as app:
        app.config["FUZZ_BEARER"] = "Bearer " + token_for(app, ttl_seconds=3600)
        yield app


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    """After the module: the counts to .run/fuzz-api-cases.json and the terminal summary."""
    def describe(seconds, statuses):
        return (f"schemathesis on /api/v1: {sum(CASES.values())} cases over {len(CASES)} "
                f"operations in {seconds} s (phases {','.join(PHASES)}, max_examples "
                f"{MAX_EXAMPLES}), statuses {statuses}",
                {"cases": sum(CASES.values()), "operations": len(CASES), "phases": PHASES,
                 "max_examples": MAX_EXAMPLES, "seconds": seconds, "statuses": statuses,
                 "per_operation": dict(sorted(CASES.items()))})

    with counted(request, "fuzz-api-cases", CASES, STATUSES, describe):
        yield


#: The store as the last case left it, or None when that case may have changed it.
_LAST: dict = {"store": None}


# The document the app serves at /api/v1/openapi.json (the first test proves it is the same).
# Loaded at import because schemathesis parametrizes at collection; its lazy loader
# (schemathesis.pytest.from_fixture) does not run under pytest 9.2 (it sets Node._nodeid).
schema = schemathesis.openapi.from_dict(build_spec())
schema.config.phases.update(phases=PHASES)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,  # the same cases on every run (derandomized Hypothesis)
    database="none",     # and no example database replaying earlier failures
)


def test_the_fuzzed_document_is_the_one_the_app_serves(fuzz_app):
    response = fuzz_app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json == json.loads(json.dumps(build_spec()))


@schema.parametrize()
def test_no_server_error_conforming_answers_and_refusals_change_nothing(case, fuzz_app):
    before = _LAST["store"] or snapshot(fuzz_app)
    _LAST["store"] = None
    response = case.call(app=fuzz_app, headers={"Authorization": fuzz_app.config["FUZZ_BEARER"]})
    CASES[case.operation.label] += 1
    STATUSES[response.status_code] += 1
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance,
                                             response_schema_conformance])
    if response.status_code >= 400:
        after = snapshot(fuzz_app)
        changed = sorted(name for name in before if before[name] != after[name])
        assert not changed, (f"{case.method} {case.formatted_path} answered "
                             f"{response.status_code} but wrote to {changed}")
        _LAST["store"] = after


@pytest.mark.parametrize("items, field", [([{"number": 1}], "items[0].value"),
                                          ([{"value": 1}], "items[0].number"),
                                          (["x"], "items[0]")])
def test_an_answer_without_number_or_value_is_named_not_a_500(fuzz_app, items, field):
    """Found by this fuzz run: the instrument check read answer["value"] before the field
    errors were reported (KeyError, 500)."""
    body = {"id": "a-fuzz", "patient_id": "p01", "instrument": "phq-9",
            "effective": "2025-03-03T09:50:00-05:00", "items": items}
    response = fuzz_app.test_client().post(
        "/api/v1/assessments", json=body, headers={"Authorization": fuzz_app.config["FUZZ_BEARER"]})
    assert response.status_code == 422, response.json
    named = {e for issue in response.json["issue"] for e in issue["expression"]}
    assert any(name.startswith(field) for name in named), named


def test_every_operation_ran_enough_cases(request):
    """Every operation the run selected ran: at least MIN_CASES_PER_OPERATION cases when it
    takes any input (GET /healthz takes none: one case)."""
    selected = {item.operation_label for item in request.session.items
                if getattr(item, "operation_label", None)}
    if not selected:
        pytest.skip("no fuzz test was selected")
    inputs = {op.label: len(op.path_parameters) + len(op.query) + len(op.headers) + len(op.body)
              for op in (result.ok() for result in schema.get_all_operations())}
    starved = {op: CASES[op] for op in selected
               if CASES[op] < (MIN_CASES_PER_OPERATION if inputs[op] else 1)}
    assert not starved, f"operations that ran too few cases: {starved}"
