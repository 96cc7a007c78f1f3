"""Reads of the catalog types (GET /fhir/CodeSystem/<id>, ValueSet, StructureDefinition,
Questionnaire, SubscriptionTopic, Basic, Group) and of Subscription take `_summary` and `_elements` as reads of the
stored types do: the same subset, the same SUBSETTED tag, the same 400 naming the parameter."""

from __future__ import annotations

import pytest

from fhir_bridge.facade.elements import ALWAYS, SUBSETTED, shape

from .conftest import FIXTURES, module_app, read_json
from .subscription_support import subscribe, topic_subscription

CATALOG_TYPES = ("CodeSystem", "ValueSet", "StructureDefinition", "Questionnaire",
                 "SubscriptionTopic", "Basic", "Group", "Subscription")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    document = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")
    with module_app(tmp_path_factory, "catalog-reads", [document], full_access=True) as app:
        # A receiver's address a Subscription may name (none is ever called here).
        app.extensions["fhir_bridge"].config["subscriptions"]["allowed_endpoints"] = [
            "http://127.0.0.1:*/hook"]
        yield app.test_client()


def _some(client, rtype: str) -> dict:
    """One resource of the type, read whole (with the most elements, so a subset shows)."""
    if rtype == "Subscription" and not client.get("/fhir/Subscription").json.get("entry"):
        # An end beside the elements R4 requires, so a subset has something to leave out.
        subscribe(client, {**topic_subscription("http://127.0.0.1:9/hook"),
                           "end": "2030-01-01T00:00:00+00:00"})
    entries = client.get(f"/fhir/{rtype}?_count=500").json["entry"]
    chosen = max(entries, key=lambda e: len(e["resource"]))["resource"]
    whole = client.get(f"/fhir/{rtype}/{chosen['id']}")
    assert whole.status_code == 200, whole.json
    return whole.json


def _names(resource: dict) -> set[str]:
    """The elements a resource holds; a primitive's extensions (``_criteria``) go with it."""
    return {k.lstrip("_") for k in resource}


def _subsetted(resource: dict) -> bool:
    return any(t.get("system") == SUBSETTED["system"] and t.get("code") == "SUBSETTED"
               for t in resource.get("meta", {}).get("tag", []))


def _required(rtype: str) -> set[str]:
    return {e.name for e in shape(rtype).values() if e.required}


@pytest.mark.parametrize("rtype", CATALOG_TYPES)
def test_elements_on_a_read_keep_the_named_and_mandatory_elements(client, rtype):
    whole = _some(client, rtype)
    optional = [k for k in whole if k not in {*ALWAYS, *_required(rtype)}
                and not k.startswith("_")]
    # An optional element when another optional one is there to be left out (Basic has
    # only its extensions: then its mandatory code, and the extensions go).
    named = optional[0] if len(optional) > 1 else next(k for k in whole if k in _required(rtype))
    answer = client.get(f"/fhir/{rtype}/{whole['id']}?_elements={named}")
    assert answer.status_code == 200, answer.json
    subset = answer.json
    assert named in subset and subset["id"] == whole["id"]
    assert _names(subset) <= {*ALWAYS, named, *_required(rtype)}
    assert set(subset) < set(whole) | {"meta"}
    assert not set(optional) - {named} & set(subset)
    assert _subsetted(subset)
    assert not _subsetted(whole)


@pytest.mark.parametrize("rtype", CATALOG_TYPES)
def test_summary_modes_on_a_read_are_those_of_stored_reads(client, rtype):
    whole = _some(client, rtype)
    url = f"/fhir/{rtype}/{whole['id']}"
    summary = client.get(f"{url}?_summary=true").json
    summary_elements = {e.name for e in shape(rtype).values() if e.summary}
    assert _names(summary) - set(ALWAYS) <= summary_elements
    data = client.get(f"{url}?_summary=data").json
    assert "text" not in data
    assert {k: v for k, v in data.items() if k != "meta"} == \
        {k: v for k, v in whole.items() if k not in ("meta", "text")}
    text = client.get(f"{url}?_summary=text").json
    assert _names(text) <= {*ALWAYS, "text", *_required(rtype)}
    assert client.get(f"{url}?_summary=false").json == whole


def test_a_resource_with_nothing_left_out_is_not_tagged(client):
    whole = _some(client, "CodeSystem")
    answer = client.get(f"/fhir/CodeSystem/{whole['id']}?_elements={','.join(whole)}").json
    assert answer == whole


@pytest.mark.parametrize("query, parameter", [
    ("_summary=count", "_summary"),          # a read has no count
    ("_summary=maybe", "_summary"),
    ("_elements=nope", "_elements"),
    ("_elements=-url", "_elements"),
    ("_summary=true&_elements=url", "_elements"),
])
@pytest.mark.parametrize("rtype", CATALOG_TYPES)
def test_a_bad_subset_on_a_read_is_a_400_naming_the_parameter(client, rtype, query, parameter):
    whole = _some(client, rtype)
    answer = client.get(f"/fhir/{rtype}/{whole['id']}?{query}")
    assert answer.status_code == 400, answer.json
    assert answer.json["resourceType"] == "OperationOutcome"
    assert parameter in [x for i in answer.json["issue"] for x in i.get("expression", [])]


def test_a_questionnaire_read_keeps_its_etag_when_subsetted(client):
    whole = _some(client, "Questionnaire")
    answer = client.get(f"/fhir/Questionnaire/{whole['id']}?_elements=title")
    assert answer.headers["ETag"] == f'W/"{whole["version"]}"'
    assert "item" not in answer.json and answer.json["title"] == whole["title"]
