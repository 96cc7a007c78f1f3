"""The search examples docs/fhir-api.md gives (every `Type?query` in backticks, and the
request of a code block) work as written against the fixture documents: each answers 200 with
at least one match. Its shell examples run in tests/test_auth_docs.py."""

from __future__ import annotations

import re

import pytest

from fhir_bridge import PROJECT_ROOT

from .conftest import fixture_documents, module_app, read_json

DOC = PROJECT_ROOT / "docs" / "fhir-api.md"
# A backticked search: optional "GET /fhir/", a type, an optional path, "?", then a query
# (an example may wrap onto the next line inside its backticks).
EXAMPLE = re.compile(r"`(?:GET /fhir/)?([A-Z][A-Za-z]+(?:/[\w.$-]+)*\?[^`]+)`")


def examples() -> list[str]:
    found = []
    for match in EXAMPLE.finditer(DOC.read_text()):
        query = re.sub(r"\s*\n\s*", "", match.group(1))
        if " " not in query and not query.endswith("="):  # `Type?param=` names a parameter
            found.append(query)
    return sorted(set(found))


def test_the_doc_has_search_examples():
    assert len(examples()) >= 15


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    documents = [read_json(path) for path in fixture_documents()]
    with module_app(tmp_path_factory, "docs", documents, full_access=True) as app:
        yield app.test_client()


@pytest.mark.parametrize("query", examples())
def test_each_search_example_of_the_doc_finds_something(client, query):
    answer = client.get(f"/fhir/{query}")
    assert answer.status_code == 200, answer.json
    assert answer.json["total"] >= 1, query


def test_the_whole_care_plan_request_returns_the_plan_and_what_it_names(client):
    """The code block under "One request for a whole care plan", its lines joined."""
    block = re.search(r"^```\n(GET /fhir/CarePlan\?.*?)^```", DOC.read_text(), re.M | re.S)
    query = re.sub(r"\s*\n\s*", "", block.group(1)).removeprefix("GET /fhir/")
    answer = client.get(f"/fhir/{query}")
    assert answer.status_code == 200, answer.json
    modes: dict[str, set[str]] = {}
    for entry in answer.json["entry"]:
        modes.setdefault(entry["search"]["mode"], set()).add(entry["resource"]["resourceType"])
    assert modes["match"] == {"CarePlan"}
    # "with its CareTeam, Goals, MedicationRequests, Conditions and the team's members" (the
    # team of pat-p01 has no caregiver, so no RelatedPerson)
    assert modes["include"] == {"CareTeam", "Goal", "MedicationRequest", "Condition",
                                "Practitioner", "Patient"}
