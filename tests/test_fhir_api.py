"""The FHIR R4 API at /fhir, as an EHR uses it: plain HTTP (requests) against the service on
127.0.0.1, bearer tokens, application/fhir+json."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from fhir_bridge.facade.match import date_range, fold
from fhir_bridge.fhir.validate import resource_issues

from .conftest import FIXTURES, fixture_documents, read_json, token_for
from .live_server import serving

CARE_PLAN_QUERY = [("patient", "pat-p01"),
                   ("_include", "CarePlan:care-team"), ("_include", "CarePlan:goal"),
                   ("_include", "CarePlan:activity-reference"),
                   ("_include", "CarePlan:condition"),
                   ("_include:iterate", "CareTeam:participant")]


class Ehr:
    """An EHR-style client: a requests.Session with a bearer token and FHIR JSON."""

    def __init__(self, base: str, bearer: str):
        self.base = base + "/fhir"
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {bearer}",
                                     "Accept": "application/fhir+json"})

    def get(self, path: str, **kwargs) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base}/{path}"
        return self.session.get(url, timeout=30, **kwargs)


@pytest.fixture
def store_app(app):
    """The service holding all six fixture patients."""
    client = app.test_client()
    for path in fixture_documents():
        response = client.post("/api/v1/documents", json=read_json(path))
        assert response.status_code == 200, response.json
    return app


@pytest.fixture
def ehr(store_app):
    with serving(store_app) as base:
        yield Ehr(base, token_for(store_app, "system/*.rs", "system/AuditEvent.rs"))


def entries(bundle: dict, mode: str | None = None) -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", [])
            if mode is None or e["search"]["mode"] == mode]


def keys(resources: list[dict]) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


# -- capability statement ----------------------------------------------------------------------

def test_metadata_is_a_valid_r4_capability_statement_served_without_a_token(sqlite_app):
    with serving(sqlite_app) as base:
        response = requests.get(f"{base}/fhir/metadata", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    statement = response.json()
    assert resource_issues(statement) == []
    assert statement["fhirVersion"] == "4.0.1"
    care_plan = next(r for r in statement["rest"][0]["resource"] if r["type"] == "CarePlan")
    assert {"read", "vread", "search-type", "history-instance"} <= {
        i["code"] for i in care_plan["interaction"]}
    assert {"CarePlan:care-team", "CarePlan:goal", "CarePlan:activity-reference"} <= set(
        care_plan["searchInclude"])
    assert {"patient", "status", "category", "date", "_lastUpdated", "_id"} <= {
        p["name"] for p in care_plan["searchParam"]}


# -- the care plan in one request ----------------------------------------------------------------

def test_one_include_search_returns_the_whole_care_plan(ehr):
    response = ehr.get("CarePlan", params=CARE_PLAN_QUERY)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    assert keys(entries(bundle, "match")) == {"CarePlan/cp-p01-plan"}
    included = keys(entries(bundle, "include"))
    assert {"CareTeam/ct-p01-team", "Goal/goal-p01-goal-remission",
            "MedicationRequest/rx-p01-rx2", "Condition/cond-p01-dx1",
            "Practitioner/prac-dr-lindqvist"} <= included
    assert not any("p02" in key or "p03" in key for key in included)
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == f"{ehr.base}/{entry['resource']['resourceType']}/" \
                                   f"{entry['resource']['id']}"
        assert entry["resource"]["meta"]["versionId"] == "1"
        assert entry["resource"]["meta"]["lastUpdated"].endswith("+00:00")


def test_revinclude_brings_what_points_at_the_result(ehr):
    bundle = ehr.get("MedicationRequest", params={
        "patient": "pat-p03", "_revinclude": "Observation:focus"}).json()
    side_effects = [r for r in entries(bundle, "include") if r["resourceType"] == "Observation"]
    assert side_effects and all(
        any(f["reference"].startswith("MedicationRequest/rx-p03") for f in r["focus"])
        for r in side_effects)


# -- search parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("params, expected", [
    ({"patient": "pat-p01", "status": "active"}, {"MedicationRequest/rx-p01-rx2"}),
    ({"patient": "Patient/pat-p01", "status": "stopped,completed"},
     {"MedicationRequest/rx-p01-rx1"}),
    ({"subject:Patient": "pat-p01", "intent": "order", "status:not": "active"},
     {"MedicationRequest/rx-p01-rx1"}),
    ({"_id": "rx-p01-rx1,rx-p02-rx1"}, {"MedicationRequest/rx-p01-rx1",
                                        "MedicationRequest/rx-p02-rx1"}),
])
def test_medication_requests_filter_by_patient_status_intent_and_id(ehr, params, expected):
    response = ehr.get("MedicationRequest", params=params)
    assert response.status_code == 200, response.text
    assert keys(entries(response.json())) == expected


def test_observations_filter_by_category_code_and_date(ehr):
    surveys = entries(ehr.get("Observation", params={
        "patient": "pat-p01", "category": "survey", "_count": "200"}).json())
    assert surveys and all(any(c.get("code") == "survey" for cat in r["category"]
                               for c in cat["coding"]) for r in surveys)
    totals = entries(ehr.get("Observation", params={
        "patient": "pat-p01", "code": "http://loinc.org|44261-6"}).json())
    phq9 = [a for a in read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")[
        "assessments"] if a["instrument"] == "phq-9"]
    assert len(totals) == len(phq9) >= 2
    first_month = entries(ehr.get("Observation", params=[
        ("patient", "pat-p01"), ("code", "http://loinc.org|44261-6"),
        ("date", "ge2025-03-01"), ("date", "lt2025-03-15")]).json())
    assert 0 < len(first_month) < len(totals)
    for r in first_month:
        assert "2025-03-01" <= r["effectiveDateTime"][:10] < "2025-03-15"
    wrong_system = entries(ehr.get("Observation", params={
        "patient": "pat-p01", "code": "http://snomed.info/sct|44261-6"}).json())
    assert wrong_system == []


def test_sort_by_last_updated_newest_first(ehr, store_app):
    client = store_app.test_client()
    goal = read_json(FIXTURES / "internal" / "p02-bipolar-lithium.json")["care-plans"][0]
    response = client.put(f"/api/v1/care-plans/{goal['id']}",
                          json=dict(goal, description="Lithium with level monitoring; "
                                                      "reviewed"))
    assert response.status_code == 200, response.json
    newest = entries(ehr.get("CarePlan", params={"_sort": "-_lastUpdated",
                                                "_count": "1"}).json())
    assert keys(newest) == {"CarePlan/cp-p02-plan"}
    since = newest[0]["meta"]["lastUpdated"]
    changed = entries(ehr.get("CarePlan", params={"_lastUpdated": f"ge{since}"}).json())
    assert keys(changed) == {"CarePlan/cp-p02-plan"}


@pytest.mark.parametrize("params, bad", [
    ({"colour": "blue"}, "colour"),
    ({"date": "yesterday"}, "date"),
    ({"_count": "-1"}, "_count"),
    ({"status:fuzzy": "active"}, "status:fuzzy"),
    ({"_include": "CarePlan:nonsense"}, "_include"),
    ({"patient.general-practitioner.name": "x"}, "patient.general-practitioner.name"),
    ({"patient.colour": "x"}, "patient.colour"),
    ({"status.name": "x"}, "status.name"),
    ({"_has:Observation:patient:colour": "x"}, "_has:Observation:patient:colour"),
    ({"_has:Observation:patient:_has:Goal:patient:code": "x"},
     "_has:Observation:patient:_has:Goal:patient:code"),
    ({"date": "ap2025-13"}, "date"),
    ({"_sort": "title"}, "_sort"),
    ({"": "0"}, "(query)"),  # found by fuzzing: a nameless parameter is named "(query)"
    ({"_summary": "everything"}, "_summary"),
    ({"_elements": "-status"}, "_elements"),
])
def test_a_search_it_cannot_run_is_refused_with_an_outcome_naming_the_parameter(ehr, params,
                                                                                bad):
    response = ehr.get("CarePlan", params=params)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(issue.get("expression") == [bad] for issue in outcome["issue"])


# -- sorting ---------------------------------------------------------------------------------------

def test_sort_by_a_date_parameter_newest_first_by_the_end_of_each_range(ehr):
    bundle = ehr.get("Observation", params={"_sort": "-date", "_count": "500"}).json()
    observations = entries(bundle)
    assert len(observations) == bundle["total"] > 100
    highs = []
    for r in observations:
        if "effectiveDateTime" in r:
            highs.append(date_range(r["effectiveDateTime"])[1])
        else:  # a Period still open (a side effect that has not ended) ends last of all
            end = r["effectivePeriod"].get("end")
            highs.append(date_range(end)[1] if end else dt.datetime.max.replace(
                tzinfo=dt.timezone.utc))
    assert highs == sorted(highs, reverse=True)
    assert any(r.get("effectivePeriod", {}).get("end") for r in observations)
    oldest = entries(ehr.get("Observation", params={"_sort": "date", "_count": "500"}).json())
    lows = [date_range(r.get("effectiveDateTime") or r["effectivePeriod"]["start"])[0]
            for r in oldest]
    assert lows == sorted(lows)


def test_resources_without_the_sort_value_come_last_both_ways(ehr):
    for sort in ("start-date", "-start-date"):
        goals = entries(ehr.get("Goal", params={"_sort": sort}).json())
        present = ["startDate" in r for r in goals]
        assert True in present and False in present
        assert present == sorted(present, reverse=True)
        starts = [r["startDate"] for r in goals if "startDate" in r]
        assert starts == sorted(starts, reverse=sort.startswith("-"))


def test_sort_by_authoredon_both_ways_and_by_several_keys(ehr):
    ascending = entries(ehr.get("MedicationRequest", params={"_sort": "authoredon"}).json())
    instants = [date_range(r["authoredOn"])[0] for r in ascending]
    assert len(instants) >= 10 and instants == sorted(instants)
    descending = entries(ehr.get("MedicationRequest", params={"_sort": "-authoredon"}).json())
    assert [r["id"] for r in descending] == [r["id"] for r in reversed(ascending)] or [
        date_range(r["authoredOn"])[1] for r in descending] == sorted(
        (date_range(r["authoredOn"])[1] for r in descending), reverse=True)
    by_status = entries(ehr.get("MedicationRequest", params={
        "_sort": "status,-authoredon,_id"}).json())
    keys_seen = [(r["status"], -date_range(r["authoredOn"])[1].timestamp(), r["id"])
                 for r in by_status]
    assert keys_seen == sorted(keys_seen)
    assert len({r["status"] for r in by_status}) > 1


def test_sort_by_string_and_token_parameters(ehr):
    patients = entries(ehr.get("Patient", params={"_sort": "-family"}).json())
    families = [fold(r["name"][0]["family"]) for r in patients]
    assert len(families) == 6 and families == sorted(families, reverse=True)
    query = {"patient": "pat-p02", "_sort": "-code,_id"}
    by_code = entries(ehr.get("Observation", params=query).json())
    codes = [max(c["code"] for c in r["code"]["coding"]) for r in by_code]
    assert len(set(codes)) > 2 and codes == sorted(codes, reverse=True)
    paged = [r["id"] for offset in range(0, len(by_code), 3) for r in entries(ehr.get(
        "Observation", params={**query, "_count": "3", "_offset": str(offset)}).json())]
    assert paged == [r["id"] for r in by_code]


def test_sort_keys_are_the_declared_date_token_and_string_parameters(ehr):
    for bad in ("patient", "-subject", "nonsense", "date,date", ""):
        response = ehr.get("Observation", params={"_sort": bad})
        assert response.status_code == 400, bad
        assert [i["expression"] for i in response.json()["issue"]] == [["_sort"]]


# -- _count, _summary, _elements ------------------------------------------------------------------

def test_a_count_above_the_page_limit_is_capped_and_the_links_say_so(ehr):
    response = ehr.get("Observation", params={"_count": "1000"})
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert len(bundle["entry"]) == min(500, bundle["total"])
    assert all("_count=500" in link["url"] for link in bundle["link"])
    history = ehr.get("Observation/_history", params={"_count": "9" * 40}).json()
    assert all("_count=500" in link["url"] for link in history["link"])


def _subsetted(resource: dict) -> bool:
    return any(t == {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                     "code": "SUBSETTED", "display": "subsetted"}
               for t in resource.get("meta", {}).get("tag", []))


def test_elements_returns_the_named_and_mandatory_elements_tagged_subsetted(ehr):
    bundle = ehr.get("Observation", params={"patient": "pat-p01", "_elements": "code,effective",
                                            "_count": "5"}).json()
    for r in entries(bundle):
        assert set(r) <= {"resourceType", "id", "meta", "status", "code", "effectiveDateTime",
                          "effectivePeriod", "effectiveInstant"}
        assert "status" in r and "code" in r  # status is mandatory: always there
        assert _subsetted(r)
    read = ehr.get("CarePlan/cp-p01-plan", params={"_elements": "title"}).json()
    # status, intent and subject are mandatory (1..1): always returned
    assert set(read) == {"resourceType", "id", "meta", "title", "status", "intent", "subject"}
    assert _subsetted(read)
    mixed = ehr.get("CarePlan", params=[("patient", "pat-p01"), ("_elements", "status"),
                                        ("_include", "CarePlan:goal"),
                                        ("_elements", "Goal.description")]).json()
    goals = [r for r in entries(mixed, "include") if r["resourceType"] == "Goal"]
    assert goals and all(set(g) == {"resourceType", "id", "meta", "lifecycleStatus",
                                    "description", "subject"} for g in goals)
    refused = ehr.get("CarePlan", params={"_elements": "colour"})
    assert refused.status_code == 400
    assert [i["expression"] for i in refused.json()["issue"]] == [["_elements"]]


@pytest.mark.parametrize("mode", ["true", "text", "data"])
def test_summary_modes_on_read_and_search(ehr, mode):
    full = ehr.get("CarePlan/cp-p01-plan").json()
    read = ehr.get("CarePlan/cp-p01-plan", params={"_summary": mode}).json()
    searched = entries(ehr.get("CarePlan", params={"_id": "cp-p01-plan",
                                                   "_summary": mode}).json())[0]
    assert read == searched and _subsetted(read) and not _subsetted(full)
    if mode == "true":  # CarePlan.activity and .text are not summary elements in R4
        assert "activity" not in read and "text" not in read
        assert {"status", "intent", "subject", "category"} <= set(read)
    elif mode == "text":
        assert set(read) <= {"resourceType", "id", "meta", "text", "status", "intent",
                             "subject"}
    else:
        assert "text" not in read and read["activity"] == full["activity"]
    count = ehr.get("CarePlan", params={"_summary": "count"}).json()
    assert count["total"] == 6 and "entry" not in count
    assert ehr.get("CarePlan/cp-p01-plan", params={"_summary": "count"}).status_code == 400


# -- date offsets written with a raw "+" -----------------------------------------------------------

def test_a_raw_plus_in_a_date_offset_is_read_as_an_offset(ehr):
    encoded = entries(ehr.get("Observation", params={
        "patient": "pat-p01", "date": "ge2025-03-01T00:00:00+05:00"}).json())
    raw = entries(ehr.get("Observation?patient=pat-p01&date=ge2025-03-01T00:00:00+05:00").json())
    assert raw and [r["id"] for r in raw] == [r["id"] for r in encoded]
    since = ehr.get("Observation/_history?_since=2000-01-01T00:00:00+00:00&_count=1")
    assert since.status_code == 200, since.text
    assert since.json()["total"] > 100
    assert "_since=2000-01-01T00%3A00%3A00%2B00%3A00" in since.json()["link"][0]["url"]
    updated = ehr.get("CarePlan?_lastUpdated=ge2000-01-01T00:00:00+00:00")
    assert updated.status_code == 200 and updated.json()["total"] == 6


# -- paging ----------------------------------------------------------------------------------------

def test_paging_through_a_large_result_set_sees_every_resource_once(ehr):
    all_observations = ehr.get("Observation", params={"_summary": "count"}).json()["total"]
    assert all_observations > 150
    seen: list[str] = []
    url, pages = "Observation?_count=40", 0
    while url:
        bundle = ehr.get(url).json()
        assert bundle["total"] == all_observations
        seen += [r["id"] for r in entries(bundle)]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        pages += 1
    assert len(seen) == len(set(seen)) == all_observations
    assert pages == -(-all_observations // 40)


# -- read, vread, history, conditional read ------------------------------------------------------

def test_a_conditional_read_answers_304_until_the_resource_changes(ehr, store_app):
    first = ehr.get("CarePlan/cp-p01-plan")
    assert first.status_code == 200
    assert first.headers["ETag"] == 'W/"1"' and first.headers["Last-Modified"]
    assert ehr.get("CarePlan/cp-p01-plan",
                   headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert ehr.get("CarePlan/cp-p01-plan",
                   headers={"If-Modified-Since": first.headers["Last-Modified"]}
                   ).status_code == 304
    plan = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")[
        "care-plans"][0]
    store_app.test_client().put("/api/v1/care-plans/p01-plan",
                                json=dict(plan, title="Depression plan, revised"))
    again = ehr.get("CarePlan/cp-p01-plan", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200 and again.headers["ETag"] == 'W/"2"'
    assert again.json()["title"] == "Depression plan, revised"


def test_a_dose_change_shows_in_history_and_vread(ehr, store_app):
    response = store_app.test_client().post(
        "/api/v1/prescriptions/p01-rx2/dose-changes",
        json={"id": "p01-rx3", "dose": {"value": 150, "unit": "mg"},
              "effective_date": "2025-04-28", "reason": "PHQ-9 still 10 after 4 weeks",
              "changed_by_id": "dr-lindqvist",
              "authored_on": "2025-04-28T09:00:00-04:00"})
    assert response.status_code == 201, response.json
    history = ehr.get("MedicationRequest/rx-p01-rx2/_history").json()
    assert history["type"] == "history" and history["total"] == 2
    newest, oldest = entries(history)
    assert (newest["meta"]["versionId"], newest["status"]) == ("2", "stopped")
    assert (oldest["meta"]["versionId"], oldest["status"]) == ("1", "active")
    v1 = ehr.get("MedicationRequest/rx-p01-rx2/_history/1")
    assert v1.status_code == 200 and v1.json()["status"] == "active"
    assert ehr.get("MedicationRequest/rx-p01-rx2/_history/9").status_code == 404
    new = ehr.get("MedicationRequest/rx-p01-rx3").json()
    assert new["priorPrescription"] == {"reference": "MedicationRequest/rx-p01-rx2"}


def test_unknown_resources_types_formats_and_writes_get_outcomes(ehr):
    for path, status in [("CarePlan/nope", 404), ("Spaceship/1", 404), ("Spaceship", 404)]:
        response = ehr.get(path)
        assert response.status_code == status
        assert response.json()["resourceType"] == "OperationOutcome"
    xml = ehr.get("CarePlan/cp-p01-plan", headers={"Accept": "application/fhir+xml"})
    assert xml.status_code == 406
    assert ehr.get("CarePlan/cp-p01-plan", params={"_format": "xml"}).status_code == 406
    post = ehr.session.post(f"{ehr.base}/CarePlan", json={"resourceType": "CarePlan"},
                            timeout=30)
    assert post.status_code == 403 and post.json()["resourceType"] == "OperationOutcome"
    patch = ehr.session.patch(f"{ehr.base}/CarePlan/cp-p01-plan", data="[]", timeout=30,
                              headers={"Content-Type": "application/json-patch+json"})
    assert patch.status_code == 403 and patch.json()["resourceType"] == "OperationOutcome"


# -- who sees what ---------------------------------------------------------------------------------

def test_a_patient_token_sees_only_its_patient(store_app):
    with serving(store_app) as base:
        mine = Ehr(base, token_for(store_app, "patient/*.rs", patient="pat-p02"))
        observations = entries(mine.get("Observation", params={"_count": "500"}).json())
        assert observations and {r["subject"]["reference"] for r in observations} == {
            "Patient/pat-p02"}
        assert mine.get("CarePlan/cp-p01-plan").status_code == 404
        assert mine.get("CarePlan/cp-p02-plan").status_code == 200
        assert entries(mine.get("CarePlan", params={"patient": "pat-p01"}).json()) == []
        plan = mine.get("CarePlan", params=[("patient", "pat-p02"),
                                            ("_include", "CarePlan:care-team"),
                                            ("_include:iterate", "CareTeam:participant")]).json()
        assert {r["resourceType"] for r in entries(plan)} >= {"CarePlan", "CareTeam",
                                                            "Practitioner"}


def test_scopes_limit_types_and_interactions(store_app):
    with serving(store_app) as base:
        plans_only = Ehr(base, token_for(store_app, "system/CarePlan.rs"))
        assert plans_only.get("CarePlan/cp-p01-plan").status_code == 200
        assert plans_only.get("Observation", params={"patient": "pat-p01"}).status_code == 403
        bundle = plans_only.get("CarePlan", params=CARE_PLAN_QUERY).json()
        assert {r["resourceType"] for r in entries(bundle)} == {"CarePlan"}
        read_only = Ehr(base, token_for(store_app, "system/CarePlan.r"))
        assert read_only.get("CarePlan/cp-p01-plan").status_code == 200
        assert read_only.get("CarePlan").status_code == 403
        anonymous = requests.get(f"{base}/fhir/CarePlan/cp-p01-plan", timeout=30)
        assert anonymous.status_code == 401


# -- audit ------------------------------------------------------------------------------------------

def test_every_read_and_search_leaves_an_audit_event(ehr):
    assert ehr.get("CarePlan/cp-p01-plan").status_code == 200
    assert ehr.get("Observation", params={"patient": "pat-p01"}).status_code == 200
    assert ehr.get("CarePlan/cp-p02-plan", headers={"Accept": "text/xml"}).status_code == 406
    events = entries(ehr.get("AuditEvent", params={"patient": "pat-p01",
                                                   "_sort": "-_lastUpdated"}).json())
    subtypes = [e["subtype"][0]["code"] for e in events]
    assert "read" in subtypes and "search-type" in subtypes
    for event in events:
        assert resource_issues(event) == []
        assert event["agent"][0]["altId"] == "fhir-bridge-dev"
        assert {"what": {"reference": "Patient/pat-p01"}}.items() <= event["entity"][0].items()
    refused = entries(ehr.get("AuditEvent", params={"outcome": "4"}).json())
    assert any("406" in e.get("outcomeDesc", "") for e in refused)


def test_audit_events_need_their_own_scope(store_app):
    with serving(store_app) as base:
        clinician = Ehr(base, token_for(store_app, "user/*.rs"))
        assert clinician.get("CarePlan/cp-p01-plan").status_code == 200
        assert clinician.get("AuditEvent").status_code == 403
        auditor = Ehr(base, token_for(store_app, "user/AuditEvent.rs"))
        assert auditor.get("AuditEvent").status_code == 200


# -- the clinical rules' output -------------------------------------------------------------------

def test_safety_issues_monitoring_items_and_flags_are_searchable(ehr):
    issues = entries(ehr.get("DetectedIssue", params={
        "patient": "pat-p03", "_include": "DetectedIssue:implicated"}).json())
    found = [r for r in issues if r["resourceType"] == "DetectedIssue"]
    assert [r["code"]["coding"][0]["code"] for r in found] == ["duplicate.antipsychotics"]
    assert {"MedicationRequest/rx-p03-rx1", "MedicationRequest/rx-p03-rx3"} <= keys(issues)
    plan = ehr.get("CarePlan/cp-p03-plan").json()
    monitoring = [a for a in plan["activity"] if a.get("id", "").startswith("mon-")]
    assert monitoring and {"completed", "scheduled"} <= {a["detail"]["status"]
                                                         for a in monitoring}
    alerts = entries(ehr.get("Flag", params={"patient": "pat-p06", "status": "active"}).json())
    assert alerts
