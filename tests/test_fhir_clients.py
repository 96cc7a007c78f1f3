"""/fhir as third-party FHIR clients use it unchanged: the media types and parameters they
send (FHIR R4 http.html), the base URL they reached the server by, CORS for browser apps,
and a maintained Python FHIR client (fhirpy) reading, searching, sorting and paging."""

from __future__ import annotations

import json
import re

import pytest
import requests
from fhirpy import SyncFHIRClient

from fhir_bridge.app import create_app
from fhir_bridge.facade import parameters

from .conftest import fixture_documents, module_app, read_json, token_for
from .live_server import serving

SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, token) of the service holding the six fixture patients, on SQLite."""
    documents = [read_json(path) for path in fixture_documents()]
    with module_app(tmp_path_factory, "fhir-clients", documents) as app:
        with serving(app) as base:
            yield base, token_for(app, "system/*.rs", "system/AuditEvent.rs",
                                  ttl_seconds=3600)


def get(served, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
    base, token = served
    return requests.get(f"{base}/fhir/{path}", timeout=30,
                        headers={"Authorization": f"Bearer {token}", **(headers or {})},
                        **kwargs)


def empties(node, where: str = "$") -> list[str]:
    """Where a JSON document holds an empty array, object or string."""
    if node in ([], {}, ""):
        return [where]
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in empties(value, f"{where}.{key}")]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in empties(value, f"{where}[{i}]")]
    return []


READ, SEARCH = "CarePlan/cp-p01-plan", "CarePlan?patient=pat-p01"
HISTORY, METADATA = "CarePlan/cp-p01-plan/_history", "metadata"


# -- content negotiation ------------------------------------------------------------------------

@pytest.mark.parametrize("path", [READ, SEARCH, HISTORY, METADATA, "CarePlan/_search"])
@pytest.mark.parametrize("accept, content_type", [
    ("application/fhir+json; fhirVersion=4.0", "application/fhir+json; fhirVersion=4.0"),
    ("application/fhir+json; charset=utf-8", "application/fhir+json"),
    ("application/fhir+json;charset=UTF-8;fhirVersion=4.0.1",
     "application/fhir+json; fhirVersion=4.0"),
    ("application/json", "application/json"),
    ("application/json; charset=utf-8", "application/json"),
    ("application/json+fhir", "application/fhir+json"),
    ("application/fhir+xml;q=1.0, application/fhir+json;q=0.9", "application/fhir+json"),
    ("application/fhir+json;q=0.5, application/json;q=0.8", "application/json"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
     "application/fhir+json"),
    ("application/*", "application/fhir+json"),
    ("*/*", "application/fhir+json"),
    ("", "application/fhir+json"),
])
def test_json_media_types_with_parameters_and_q_values_are_served(served, path, accept,
                                                                  content_type):
    response = get(served, path, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == content_type + "; charset=utf-8"
    assert response.json()["resourceType"] in ("CarePlan", "Bundle", "CapabilityStatement")


@pytest.mark.parametrize("path", [READ, SEARCH, HISTORY, METADATA])
@pytest.mark.parametrize("accept", [
    "application/fhir+xml", "application/xml", "text/xml", "text/turtle",
    "application/fhir+json; fhirVersion=3.0", "application/fhir+json; charset=iso-8859-1",
    "application/fhir+json;q=0", "application/fhir+xml, text/html"])
def test_a_format_that_is_not_served_is_406_on_every_interaction(served, path, accept):
    response = get(served, path, headers={"Accept": accept})
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("path", [READ, SEARCH, HISTORY, METADATA])
@pytest.mark.parametrize("fmt, status, content_type", [
    ("json", 200, "application/fhir+json"),
    ("application/fhir+json", 200, "application/fhir+json"),
    ("application/json", 200, "application/json"),
    ("application/fhir+json;fhirVersion=4.0", 200, "application/fhir+json; fhirVersion=4.0"),
    ("xml", 406, None), ("application/fhir+xml", 406, None), ("ttl", 406, None),
    ("html", 406, None), ("application/fhir+json;fhirVersion=3.0", 406, None),
])
def test_format_wins_over_accept_with_the_same_answer_on_read_and_search(
        served, path, fmt, status, content_type):
    sep = "&" if "?" in path else "?"
    response = get(served, f"{path}{sep}_format={fmt}", headers={"Accept": "application/xml"})
    assert response.status_code == status, response.text
    if content_type:
        assert response.headers["Content-Type"] == content_type + "; charset=utf-8"
    else:
        outcome = response.json()
        assert [i["expression"] for i in outcome["issue"]] == [["_format"]]


def test_a_raw_plus_in_format_is_read_as_plus(served):
    # requests would encode the "+"; written into the URL it arrives as a space.
    for path in (READ, SEARCH):
        sep = "&" if "?" in path else "?"
        response = get(served, f"{path}{sep}_format=application/fhir+json")
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/fhir+json")


@pytest.mark.parametrize("path", [READ, SEARCH, HISTORY, METADATA])
def test_pretty_indents_every_interaction_and_takes_only_true_or_false(served, path):
    sep = "&" if "?" in path else "?"
    pretty = get(served, f"{path}{sep}_pretty=true")
    compact = get(served, f"{path}{sep}_pretty=false")
    assert pretty.status_code == compact.status_code == 200
    assert pretty.text.startswith('{\n  "resourceType"') and "\n" not in compact.text
    first, second = pretty.json(), compact.json()
    for doc in (first, second):
        doc.pop("date", None)  # the CapabilityStatement is dated when it is asked for
    if first["resourceType"] == "Bundle" and first["type"] == "searchset":  # pages stay pretty
        assert all("_pretty=true" in link["url"] for link in first.pop("link"))
        assert all("_pretty=false" in link["url"] for link in second.pop("link"))
    assert first == second
    refused = get(served, f"{path}{sep}_pretty=yes")
    assert refused.status_code == 400
    assert [i["expression"] for i in refused.json()["issue"]] == [["_pretty"]]


@pytest.mark.parametrize("path, status", [("CarePlan?colour=blue&_pretty=true", 400),
                                          ("CarePlan/nope?_pretty=true", 404),
                                          ("Spaceship?_pretty=true", 404)])
def test_pretty_indents_errors_too(served, path, status):
    response = get(served, path)
    assert response.status_code == status
    assert response.text.startswith('{\n  "resourceType": "OperationOutcome"')


def test_total_and_fhirpys_total_method_are_accepted_where_they_cannot_mislead(served):
    for value in ("none", "estimate", "accurate"):
        bundle = get(served, f"{SEARCH}&_total={value}").json()
        assert bundle["total"] == 1  # always exact
    assert get(served, f"{SEARCH}&_totalMethod=count").json()["total"] == 1
    refused = get(served, f"{SEARCH}&_totalMethod=guess")
    assert refused.status_code == 400
    assert [i["expression"] for i in refused.json()["issue"]] == [["_totalMethod"]]


# -- conformance details ------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, allow", [
    ("PATCH", "CarePlan", "GET, HEAD, POST, PUT"),
    ("POST", "CarePlan/cp-p01-plan", "GET, HEAD, PUT, PATCH, DELETE"),
    ("DELETE", "metadata", "GET, HEAD"),
    ("PATCH", "CarePlan/_search", "GET, HEAD, POST"),
    ("DELETE", "CarePlan/cp-p01-plan/_history/1", "GET, HEAD"),
])
def test_every_405_says_what_is_allowed(served, method, path, allow):
    base, token = served
    response = requests.request(method, f"{base}/fhir/{path}", timeout=30, json={},
                                headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("path, code", [
    ("$convert", "not-supported"), ("Patient/$everything", "not-supported"),
    ("Patient/pat-p01/$lastn", "not-supported"), ("_history/1", "not-supported"),
    ("Patient/pat-p01/_history/1/more", "not-found"),
    ("Patient/pat-p01/nonsense", "not-supported"),  # the compartment has no such type
])
def test_unknown_operations_and_history_paths_answer_an_operation_outcome(served, path, code):
    response = get(served, path)
    assert response.status_code == 404
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code


def test_no_output_holds_an_empty_array_or_object(served):
    documents = [get(served, "metadata").json(),
                 get(served, "CarePlan?patient=nobody").json(),
                 get(served, "Practitioner?_count=5").json(),
                 get(served, "Observation?_count=500").json(),
                 get(served, "CarePlan?_include=CarePlan:goal&_elements=status").json(),
                 get(served, "Patient/pat-p01/_history").json(),
                 get(served, "Subscription").json()]  # another blueprint under /fhir
    assert "entry" not in documents[1]
    for doc in documents:
        assert empties(doc) == []
    practitioner = next(r for r in get(served, "metadata").json()["rest"][0]["resource"]
                        if r["type"] == "Practitioner")
    assert "searchInclude" not in practitioner


def test_every_sort_key_the_capability_statement_names_works_both_ways(served):
    statement = get(served, "metadata").json()
    checked = 0
    searched = set(parameters.load())  # the types the one search engine serves; the
    # catalogs (CodeSystem, Questionnaire, Group, ...) take no _sort
    for resource in statement["rest"][0]["resource"]:
        if resource["type"] == "Subscription" or resource["type"] not in searched:
            continue
        listed = re.search(r"_sort by ([^(]+) \(", resource["documentation"]).group(1)
        keys = [key.strip() for key in listed.split(",")]
        declared = {p["name"]: p["type"] for p in resource["searchParam"]}
        assert set(keys) == {n for n, t in declared.items() if t in ("date", "token", "string")}
        for key in keys:
            for sort in (key, "-" + key):
                response = get(served, f"{resource['type']}?_sort={sort}&_count=3")
                assert response.status_code == 200, (resource["type"], sort, response.text)
                checked += 1
    assert checked > 100


def test_get_search_at_the_search_endpoint_equals_the_plain_search(served):
    plain = get(served, "Observation?patient=pat-p01&_sort=-date&_count=5").json()
    at_search = get(served, "Observation/_search?patient=pat-p01&_sort=-date&_count=5").json()
    assert [e["fullUrl"] for e in plain["entry"]] == [e["fullUrl"] for e in at_search["entry"]]


# -- the base URL -------------------------------------------------------------------------------

def _urls(bundle: dict) -> list[str]:
    return ([link["url"] for link in bundle["link"]]
            + [entry["fullUrl"] for entry in bundle.get("entry", [])])


def test_links_and_full_urls_name_the_port_the_client_used(served):
    base, _ = served
    bundle = get(served, "Observation?patient=pat-p01&_count=2").json()
    assert {link["relation"] for link in bundle["link"]} >= {"self", "next"}
    assert all(url.startswith(f"{base}/fhir/Observation") for url in _urls(bundle))
    history = get(served, "CarePlan/cp-p01-plan/_history").json()
    assert all(url.startswith(f"{base}/fhir/CarePlan") for url in _urls(history))
    assert get(served, "metadata").json()["implementation"]["url"] == f"{base}/fhir"


PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ehr.example.org"}


@pytest.mark.parametrize("settings, expected", [
    ({}, None),  # not trusted: the headers could be anyone's
    ({"trust_proxy": True}, "https://ehr.example.org/fhir"),
    ({"trust_proxy": True, "public_base_url": "https://bridge.example.org/r4/"},
     "https://bridge.example.org/r4"),
    ({"public_base_url": "https://bridge.example.org/r4"}, "https://bridge.example.org/r4"),
])
def test_the_base_url_comes_from_config_or_a_trusted_proxy(tmp_path, settings, expected):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'b.db'}", **settings})
    try:
        with serving(app) as base:
            response = requests.get(f"{base}/fhir/Goal", headers={
                "Authorization": "Bearer " + token_for(app, "system/*.rs"), **PROXY},
                timeout=30)
            metadata = requests.get(f"{base}/fhir/metadata", headers=PROXY, timeout=30).json()
    finally:
        app.extensions["fhir_bridge"].engine.dispose()
    assert response.status_code == 200
    want = expected or f"{base}/fhir"
    assert all(url.startswith(want + "/Goal?") for url in _urls(response.json()))
    assert metadata["implementation"]["url"] == want


def test_a_forged_forwarded_host_is_not_used_even_when_proxies_are_trusted(tmp_path):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'b.db'}", "trust_proxy": True})
    try:
        metadata = app.test_client().get("/fhir/metadata", headers={
            "X-Forwarded-Host": "evil.example/\"><script>", "X-Forwarded-Proto": "gopher"})
    finally:
        app.extensions["fhir_bridge"].engine.dispose()
    assert metadata.json["implementation"]["url"] == "http://localhost/fhir"


@pytest.mark.parametrize("bad", [{"public_base_url": "bridge.example.org"},
                                 {"public_base_url": "https://x.org/fhir?a=1"},
                                 {"trust_proxy": "yes"},
                                 {"cors": {"allowed_origins": ["https://app.example.org/path"]}},
                                 {"cors": {"allowed_origins": "*"}}])
def test_bad_fhir_api_settings_stop_start_up(tmp_path, bad):
    with pytest.raises(ValueError):
        create_app({"database_url": f"sqlite:///{tmp_path / 'b.db'}", **bad})


# -- CORS ---------------------------------------------------------------------------------------

APP_ORIGIN = "https://app.example.org"
PREFLIGHT = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "GET",
             "Access-Control-Request-Headers": "authorization, accept, x-unknown"}


def test_cors_is_off_by_default(served):
    base, _ = served
    read = get(served, READ, headers={"Origin": APP_ORIGIN})
    assert read.status_code == 200 and "Access-Control-Allow-Origin" not in read.headers
    preflight = requests.options(f"{base}/fhir/{READ}", headers=PREFLIGHT, timeout=30)
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_answers_preflights_and_exposes_headers_to_allowed_origins(tmp_path):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'b.db'}",
                      "cors": {"allowed_origins": [APP_ORIGIN], "max_age_seconds": 60}})
    token = token_for(app, "system/*.rs")
    try:
        with serving(app) as base:
            preflight = requests.options(f"{base}/fhir/Goal", headers=PREFLIGHT, timeout=30)
            other = requests.options(f"{base}/fhir/Goal", timeout=30,
                                     headers=dict(PREFLIGHT, Origin="https://evil.example"))
            search = requests.get(f"{base}/fhir/Goal", timeout=30, headers={
                "Origin": APP_ORIGIN, "Authorization": f"Bearer {token}"})
            refused = requests.get(f"{base}/fhir/Goal", timeout=30,
                                   headers={"Origin": APP_ORIGIN})
            foreign = requests.get(f"{base}/fhir/Goal", timeout=30, headers={
                "Origin": "https://evil.example", "Authorization": f"Bearer {token}"})
            metadata = requests.get(f"{base}/fhir/metadata", timeout=30).json()
            discovery = requests.get(f"{base}/.well-known/smart-configuration", timeout=30,
                                     headers={"Origin": APP_ORIGIN})
    finally:
        app.extensions["fhir_bridge"].engine.dispose()
    assert discovery.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "authorization, accept"
    assert preflight.headers["Access-Control-Max-Age"] == "60"
    assert "Access-Control-Allow-Origin" not in other.headers and other.status_code == 401
    assert search.status_code == 200
    assert search.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert {"ETag", "Location", "Content-Location"} <= {
        h.strip() for h in search.headers["Access-Control-Expose-Headers"].split(",")}
    assert "Origin" in search.headers["Vary"]
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"]
    assert foreign.status_code == 200 and "Access-Control-Allow-Origin" not in foreign.headers
    assert metadata["rest"][0]["security"]["cors"] is True


# -- a maintained FHIR client ---------------------------------------------------------------------

@pytest.fixture
def fhirpy_client(app):
    client = app.test_client()
    for path in fixture_documents():
        assert client.post("/api/v1/documents", json=read_json(path)).status_code == 200
    with serving(app) as base:
        yield SyncFHIRClient(f"{base}/fhir", authorization="Bearer " + token_for(
            app, "system/*.rs", ttl_seconds=3600), requests_config={"timeout": 30})


def test_fhirpy_reads_searches_sorts_pages_and_subsets(fhirpy_client):
    plan = fhirpy_client.reference("CarePlan", "cp-p01-plan").to_resource()
    assert plan["subject"]["reference"] == "Patient/pat-p01"

    newest_first = (fhirpy_client.resources("MedicationRequest").search(patient="pat-p01")
                    .sort("-authoredon").fetch())
    dates = [r["authoredOn"] for r in newest_first]
    assert len(dates) >= 2 and dates == sorted(dates, reverse=True)

    everything = fhirpy_client.resources("Observation").sort("_id").limit(25).fetch_all()
    assert len(everything) == fhirpy_client.resources("Observation").count() > 100
    ids = [r["id"] for r in everything]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    slim = (fhirpy_client.resources("Observation").search(patient="pat-p01")
            .elements("status", "code").limit(5).fetch())
    assert slim
    for observation in slim:
        assert set(observation) <= {"resourceType", "id", "meta", "status", "code"}
        assert SUBSETTED in {(t["system"], t["code"]) for t in observation["meta"]["tag"]}

    families = (fhirpy_client.resources("Patient").sort("family", "-birthdate")
                .fetch_all())
    names = [p["name"][0]["family"].casefold() for p in families]
    assert len(names) == 6 and names == sorted(names)


def test_fhirpy_sees_a_clear_outcome_for_what_is_not_supported(fhirpy_client):
    from fhirpy.base.exceptions import OperationOutcome

    with pytest.raises(OperationOutcome) as refused:
        fhirpy_client.resources("CarePlan").search(colour="blue").fetch()
    assert json.dumps(refused.value.resource).count("colour") >= 1
