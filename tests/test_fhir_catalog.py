"""The catalog types (the bridge's conformance resources, Questionnaires, subscription topics in
both shapes, Bulk Data Groups) are searched by the one /fhir engine: the parameters declared for
them in mappings/search-parameters.yaml and no other, the same paging, _count cap, _sort,
_elements, _summary, _total and errors as the types in the store, and a CapabilityStatement
that lists exactly those parameters. The statement also announces the Bulk Data operations."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from fhir.resources.R4B.basic import Basic

from fhir_bridge.facade import parameters
from fhir_bridge.facade.query import MAX_COUNT, parse_search
from fhir_bridge.facade.search import run
from fhir_bridge.subscriptions.topics import load_topics

from .conftest import FIXTURES, module_app, read_json

CATALOG = sorted(parameters.load_catalog())
FHIR_TYPES = "http://hl7.org/fhir/fhir-types"
BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    document = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")
    with module_app(tmp_path_factory, "catalog", [document], full_access=True) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


def _ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def _statement(client) -> dict[str, dict]:
    return {r["type"]: r for r in client.get("/fhir/metadata").json["rest"][0]["resource"]}


# -- one engine, a list as the source ---------------------------------------------------------

def test_the_engine_searches_a_list_by_the_declared_parameters():
    spec = parameters.catalog_for_type("ValueSet")
    resources = [{"resourceType": "ValueSet", "id": rid, "name": name, "status": status}
                 for rid, name, status in (("c", "Beta", "active"), ("a", "Álpha", "retired"),
                                           ("b", "alpine", "active"), ("d", None, "active"))]
    for resource in resources:
        if resource["name"] is None:
            del resource["name"]

    def found(*args):
        return [m.id for m in run(resources, parse_search("ValueSet", list(args), spec)).matches]

    assert found() == ["a", "b", "c", "d"]  # _id order, as the store answers
    assert found(("name", "alp")) == ["a", "b"]  # string: folded prefix
    assert found(("status", "active"), ("name", "b")) == ["c"]
    assert found(("_sort", "-name")) == ["c", "b", "a", "d"]  # no value: last either way
    assert found(("_sort", "status,-_id")) == ["d", "c", "b", "a"]
    assert found(("_count", "2"), ("_offset", "1")) == ["b", "c"]
    counted = run(resources, parse_search("ValueSet", [("_summary", "count")], spec))
    assert (counted.total, counted.matches) == (4, [])


def test_a_token_with_a_closed_set_of_codes_refuses_any_other(client):
    refused = client.get("/fhir/Subscription?status=active,running")
    assert refused.status_code == 400
    assert refused.json["issue"][0]["expression"] == ["status"]
    assert "running" in refused.json["issue"][0]["diagnostics"]
    assert client.get("/fhir/Subscription?status=off&_sort=-_lastUpdated").status_code == 200


@pytest.mark.parametrize("rtype", CATALOG)
def test_an_undeclared_parameter_is_a_400_naming_it(client, rtype):
    refused = client.get(f"/fhir/{rtype}?publisher=x&_id=y&_include={rtype}:subject")
    assert refused.status_code == 400
    outcome = refused.json
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["expression"] for i in outcome["issue"]] == [["publisher"], ["_include"]]


@pytest.mark.parametrize("rtype", CATALOG)
def test_the_capability_statement_lists_exactly_the_declared_parameters(client, rtype):
    entry = _statement(client)[rtype]
    declared = parameters.catalog_for_type(rtype).params
    assert [(p["name"], p["type"]) for p in entry["searchParam"]] == \
        [(name, p.type) for name, p in declared.items()]
    assert {"read", "search-type"} <= {i["code"] for i in entry["interaction"]}


@pytest.mark.parametrize("rtype", CATALOG)
def test_every_declared_parameter_is_answered(client, rtype):
    everything = client.get(f"/fhir/{rtype}?_count={MAX_COUNT}").json
    for name, param in parameters.catalog_for_type(rtype).params.items():
        value = {"token": (param.values or ("x",))[0], "uri": "urn:x", "string": "x",
                 "date": "ge2020", "reference": f"{(param.targets or ('Patient',))[0]}/x"
                 }[param.type]
        answer = client.get(f"/fhir/{rtype}", query_string={name: value})
        assert answer.status_code == 200, (name, answer.json)
        assert set(_ids(answer.json)) <= set(_ids(everything))


def test_paging_count_cap_and_links_are_the_engines(client):
    everything = client.get("/fhir/CodeSystem?_count=1000").json
    assert everything["total"] > 2
    self_link = next(link["url"] for link in everything["link"] if link["relation"] == "self")
    assert parse_qs(urlsplit(self_link).query)["_count"] == [str(MAX_COUNT)]
    first = client.get("/fhir/CodeSystem?_count=2&_sort=-name&_total=accurate").json
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert first["total"] == everything["total"] and len(first["entry"]) == 2
    second = client.get(links["next"].removeprefix("http://localhost")).json
    names = [e["resource"]["name"] for e in first["entry"] + second["entry"]]
    assert names == sorted(names, key=str.casefold, reverse=True)
    assert parse_qs(urlsplit(links["next"]).query)["_sort"] == ["-name"]


def test_elements_and_summary_subset_a_catalog_resource(client):
    found = client.get("/fhir/ValueSet?_elements=url&_count=1").json["entry"][0]["resource"]
    assert set(found) == {"resourceType", "id", "meta", "url", "status"}  # status: 1..1
    assert found["meta"]["tag"][0]["code"] == "SUBSETTED"
    counted = client.get("/fhir/Questionnaire?_summary=count").json
    assert counted["total"] >= 1 and "entry" not in counted
    assert client.get("/fhir/ValueSet?_elements=nope").status_code == 400


def test_a_url_matches_with_or_without_the_resources_version(client):
    resource = client.get("/fhir/CodeSystem?_count=1").json["entry"][0]["resource"]
    url, version = resource["url"], resource["version"]
    for value, expected in ((url, [resource["id"]]), (f"{url}|{version}", [resource["id"]]),
                            (f"{url}|0.0.0-nope", [])):
        assert _ids(client.get("/fhir/CodeSystem", query_string={"url": value}).json) == \
            expected, value


def test_catalog_types_are_searched_by_post_and_get_search_too(client):
    get = client.get("/fhir/SubscriptionTopic?status=active").json
    assert get["total"] == len(load_topics())
    posted = client.post("/fhir/SubscriptionTopic/_search", data={"status": "active"})
    assert posted.status_code == 200 and _ids(posted.json) == _ids(get)
    both = client.get("/fhir/SubscriptionTopic/_search?status=retired").json
    assert both["total"] == 0
    assert client.post("/fhir/Group/_search", data={"_id": "all-patients"}).json["total"] == 1
    refused = client.post("/fhir/Basic/_search", data={"url": "x"})
    assert refused.status_code == 400 and refused.json["issue"][0]["expression"] == ["url"]


def test_groups_are_found_by_member_and_managing_entity(client):
    panels = client.get("/fhir/Group?member=Patient/pat-p01").json
    assert panels["total"] >= 1 and "all-patients" not in _ids(panels)
    first = panels["entry"][0]["resource"]
    practitioner = first["managingEntity"]["reference"]
    by_manager = client.get("/fhir/Group", query_string={"managing-entity": practitioner}).json
    assert _ids(by_manager) == [first["id"]]
    assert client.get("/fhir/Group?member=Patient/nobody").json["total"] == 0
    assert _ids(client.get("/fhir/Group?actual=true&_count=1").json) == ["all-patients"]


def test_a_topic_is_found_by_its_type_relative_or_absolute(client):
    relative = client.get("/fhir/SubscriptionTopic?resource=MedicationRequest").json
    absolute = client.get("/fhir/SubscriptionTopic", query_string={
        "resource": "http://hl7.org/fhir/StructureDefinition/MedicationRequest"}).json
    assert relative["total"] >= 1 and _ids(relative) == _ids(absolute)
    assert client.get("/fhir/SubscriptionTopic?resource=Goal-nope").json["total"] == 0


def test_scopes_still_guard_the_catalog_sources(app):
    from .conftest import token_for

    client = app.test_client()
    patient = {"Authorization": "Bearer " + token_for(app, "patient/*.rs", patient="pat-1")}
    assert client.get("/fhir/Group", headers=patient).status_code == 403
    assert client.post("/fhir/Group/_search", headers=patient, data={"_id": "all-patients"}
                       ).status_code == 403
    topics_only = {"Authorization": "Bearer " + token_for(app, "system/SubscriptionTopic.rs")}
    assert client.get("/fhir/SubscriptionTopic", headers=topics_only).status_code == 200
    assert client.get("/fhir/Basic", headers=topics_only).status_code == 403


# -- the topics in the Backport IG's R4 form (Basic) -------------------------------------------

def test_every_topic_is_served_as_a_basic_subscription_topic(client):
    found = client.get("/fhir/Basic?code=SubscriptionTopic")
    assert found.status_code == 200
    by_system = client.get("/fhir/Basic", query_string={"code": f"{FHIR_TYPES}|SubscriptionTopic"})
    assert _ids(by_system.json) == _ids(found.json)
    basics = [e["resource"] for e in found.json["entry"]]
    assert len(basics) == len(load_topics())
    urls = set()
    for basic in basics:
        Basic.model_validate(basic)  # valid R4B (Basic is the same in R4)
        assert basic["code"] == {"coding": [{"system": FHIR_TYPES, "code": "SubscriptionTopic"}]}
        extensions = {e["url"].rsplit("/", 1)[1]: e for e in basic["extension"]}
        urls.add(extensions["extension-SubscriptionTopic.url"]["valueUri"])
        trigger = {p["url"]: p for p in extensions[
            "extension-SubscriptionTopic.resourceTrigger"]["extension"]}
        assert trigger["resource"]["valueUri"].startswith(
            "http://hl7.org/fhir/StructureDefinition/")
        assert basic["modifierExtension"] == [{
            "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.status",
            "valueCode": "active"}]
        read = client.get(f"/fhir/Basic/{basic['id']}")
        assert read.status_code == 200 and read.json == basic
    assert urls == set(load_topics())
    assert client.get("/fhir/Basic?code=Patient").json["total"] == 0
    assert client.get("/fhir/Basic/nope").status_code == 404


def test_both_topic_shapes_say_the_same(client):
    topics = {e["resource"]["id"]: e["resource"]
              for e in client.get("/fhir/SubscriptionTopic").json["entry"]}
    for entry in client.get("/fhir/Basic").json["entry"]:
        basic, topic = entry["resource"], topics[entry["resource"]["id"]]
        parts = {e["url"].rsplit(".", 1)[1]: e for e in basic["extension"]}
        assert parts["url"]["valueUri"] == topic["url"]
        assert parts["title"]["valueString"] == topic["title"]
        trigger = parts["resourceTrigger"]["extension"]
        assert sorted(p["valueCode"] for p in trigger if p["url"] == "supportedInteraction") \
            == topic["resourceTrigger"][0]["supportedInteraction"]
        filters = sorted(p["valueString"] for e in basic["extension"]
                         if e["url"].endswith(".canFilterBy") for p in e["extension"]
                         if p["url"] == "filterParameter")
        assert filters == [f["filterParameter"] for f in topic.get("canFilterBy", [])]


# -- Bulk Data in the CapabilityStatement ------------------------------------------------------

def test_the_capability_statement_announces_the_bulk_data_operations(client):
    statement = client.get("/fhir/metadata").json
    assert "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data" in \
        statement["instantiates"]
    rest = statement["rest"][0]
    assert {"name": "export", "definition": BULK + "export"} in rest["operation"]
    resources = _statement(client)
    assert {"name": "export", "definition": BULK + "patient-export"} in \
        resources["Patient"]["operation"]
    assert any(o["name"] == "everything" for o in resources["Patient"]["operation"])
    assert resources["Group"]["operation"] == [{"name": "export",
                                                "definition": BULK + "group-export"}]
