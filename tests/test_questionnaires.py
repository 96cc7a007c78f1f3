"""Questionnaires: one per instrument at /fhir/Questionnaire; a QuestionnaireResponse to one
of them is checked against it, scored and saved as the same assessment record as the same
answers sent through the JSON API, and served back as a US Core QuestionnaireResponse."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fhir_bridge.fhir.validate import resource_issues
from fhir_bridge.mapping.catalogs import instruments
from fhir_bridge.mapping.context import Context
from fhir_bridge.mapping.document import load_record
from fhir_bridge.model import concept_by_name
from fhir_bridge.questionnaires.intake import to_assessment

from .auth_support import dev_token
from .conftest import FIXTURES, module_app, read_json, snapshot

ASSESSMENT = concept_by_name("assessment")
P01 = FIXTURES / "internal" / "p01-depression-ssri-titration.json"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
US_CORE_QR = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-questionnaireresponse"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with module_app(tmp_path_factory, "questionnaires", [read_json(P01)],
                    full_access=True) as app:
        yield app


@pytest.fixture(scope="module")
def served(app) -> dict[str, dict]:
    """Every Questionnaire as GET /fhir/Questionnaire serves it."""
    found = app.test_client().get("/fhir/Questionnaire?_count=100").json
    return {e["resource"]["id"]: e["resource"] for e in found["entry"]}


def response_to(questionnaire: dict, answers: dict[int, int], patient: str = "pat-p01",
                **extra) -> dict:
    """A QuestionnaireResponse made from a served Questionnaire: answer n of item k is the
    answer option whose score (ordinalValue, or the integer itself) is n."""
    items = []
    questions = [q for q in questionnaire["item"] if q["type"] == "choice"]
    for number, value in answers.items():
        question = next(q for q in questions if q["prefix"] == f"{number}.")
        for option in question["answerOption"]:
            score = option.get("valueInteger", next(
                (e["valueDecimal"] for e in option.get("extension", []) if e["url"] == ORDINAL),
                None))
            if score == value:
                answer = {k: v for k, v in option.items() if k.startswith("value")}
                items.append({"linkId": question["linkId"], "answer": [answer]})
    return {"resourceType": "QuestionnaireResponse", "questionnaire": questionnaire["url"],
            "status": "completed", "subject": {"reference": f"Patient/{patient}"},
            "authored": "2025-05-02T09:30:00-04:00", "item": items, **extra}


def _assessment(key: str, answers: dict[int, int], record_id: str) -> dict:
    return {"id": record_id, "patient_id": "p01", "instrument": key,
            "effective": "2025-05-02T09:30:00-04:00",
            "items": [{"number": n, "value": v} for n, v in answers.items()]}


# --- the Questionnaires -----------------------------------------------------------------------

def test_every_instrument_has_a_valid_questionnaire(served):
    assert set(served) == set(instruments())
    for key, questionnaire in served.items():
        assert resource_issues(questionnaire) == [], key
        instrument = instruments()[key]
        questions = [q for q in questionnaire["item"] if q["type"] == "choice"]
        assert [q["text"] for q in questions] == [i.text for i in instrument.items]
        assert [q["required"] for q in questions] == [not i.optional for i in instrument.items]


@pytest.mark.parametrize("key", ["phq-9", "gad-7"])
def test_phq9_and_gad7_are_loinc_coded_with_scored_loinc_answer_options(served, key):
    questionnaire = served[key]
    assert questionnaire["code"][0]["system"] == "http://loinc.org"
    for question in (q for q in questionnaire["item"] if q["type"] == "choice"):
        assert question["code"][0]["system"] == "http://loinc.org"
        assert question["linkId"] == "/" + question["code"][0]["code"]
        scores = [e["valueDecimal"] for o in question["answerOption"] for e in o["extension"]
                  if e["url"] == ORDINAL]
        assert scores == [0, 1, 2, 3]
        assert all(o["valueCoding"]["code"].startswith("LA") for o in question["answerOption"])


def test_items_asked_after_an_answer_carry_enable_when(served):
    questions = {q["linkId"]: q for q in served["c-ssrs-screener"]["item"]}
    assert questions["item-3"]["enableWhen"] == [
        {"question": "item-2", "operator": "=", "answerInteger": 1}]
    assert "enableWhen" not in questions["item-2"]


def test_questionnaires_are_read_and_searched_by_url_id_and_code(app, served):
    client = app.test_client()
    read = client.get("/fhir/Questionnaire/gad-7")
    assert read.status_code == 200 and read.json == served["gad-7"]
    for query, expected in (("url=urn:fhir-bridge:questionnaire:mdq", ["mdq"]),
                            ("url=urn:fhir-bridge:questionnaire:mdq|1", ["mdq"]),
                            ("_id=phq-2,audit-c", ["audit-c", "phq-2"]),  # _id order
                            ("code=http://loinc.org|44249-1", ["phq-9"]),
                            ("code=69725-0", ["gad-7"]),  # an item's code finds its form
                            ("code=http://snomed.info/sct|44249-1", [])):
        found = client.get(f"/fhir/Questionnaire?{query}").json
        assert [e["resource"]["id"] for e in found.get("entry", [])] == expected, query
        assert found["total"] == len(expected)
    assert client.get("/fhir/Questionnaire/nope").status_code == 404
    refused = client.get("/fhir/Questionnaire?publisher=PHQ")
    assert refused.status_code == 400
    assert refused.json["issue"][0]["expression"] == ["publisher"]


def test_the_capability_statement_lists_questionnaires_and_response_create(app):
    resources = {r["type"]: r for r in app.test_client().get("/fhir/metadata").json["rest"][0]
                 ["resource"]}
    assert {i["code"] for i in resources["Questionnaire"]["interaction"]} == \
        {"read", "search-type"}
    response = resources["QuestionnaireResponse"]
    assert {"create", "read", "search-type"} <= {i["code"] for i in response["interaction"]}
    assert response["supportedProfile"] == [US_CORE_QR]


# --- responses --------------------------------------------------------------------------------

def test_a_response_is_scored_flagged_and_served_back_as_us_core(app, served):
    client = app.test_client()
    answers = {n: 1 for n in range(1, 10)}
    created = client.post("/fhir/QuestionnaireResponse",
                          json=response_to(served["phq-9"], answers),
                          headers={"Content-Type": "application/fhir+json"})
    assert created.status_code == 201, created.json
    qr = created.json
    assert created.headers["Location"].endswith(f"/fhir/QuestionnaireResponse/{qr['id']}"
                                                "/_history/1")
    assert qr["meta"]["profile"] == [US_CORE_QR]
    assert resource_issues(qr) == []
    for element in ("questionnaire", "status", "subject", "authored", "item"):
        assert qr[element], element  # the profile's required and must-support elements
    assert qr["questionnaire"] == served["phq-9"]["url"] + "|1"
    assert qr["item"][-1] == {"linkId": "/44261-6", "text": "Total score",
                              "answer": [{"valueInteger": 9}]}
    assert client.get(f"/fhir/QuestionnaireResponse/{qr['id']}").json == qr
    found = client.get("/fhir/QuestionnaireResponse?patient=Patient/pat-p01").json
    assert qr["id"] in [e["resource"]["id"] for e in found["entry"]]
    record = client.get(f"/api/v1/assessments/{qr['id'].removeprefix('qr-')}").json
    assert (record["total"], record["band"], record["alerts"]) == (9, "mild", ["suicide-risk"])
    panel = client.get(f"/fhir/Observation/asmt-{record['id']}").json
    assert panel["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{qr['id']}"}]
    flag = client.get(f"/fhir/Flag/flag-{record['id']}.suicide-risk")
    assert flag.status_code == 200 and flag.json["status"] == "active"


def test_every_problem_is_named_at_its_item_and_nothing_is_written(app, served):
    client = app.test_client()
    phq9 = served["phq-9"]
    bad = response_to(phq9, {n: 0 for n in range(3, 10)})
    bad["item"][0]["answer"] = [{"valueInteger": 0}]  # item 3: a number for a coded answer
    bad["item"][1]["answer"] = [{"valueCoding": {"system": "http://loinc.org",
                                                 "code": "LA6573-5"}}]  # not an option
    bad["item"].append({"linkId": "/99999-9", "answer": [{"valueInteger": 1}]})
    before = snapshot(app)
    refused = client.post("/fhir/QuestionnaireResponse", json=bad)
    assert refused.status_code == 422
    issues = {(i["expression"][0], i["diagnostics"].split(": ", 1)[1])
              for i in refused.json["issue"]}
    assert ("item[0].answer[0]", "must be valueCoding (answer type of item 3), not "
                                 "valueInteger") in issues
    assert any(path == "item[1].answer[0].valueCoding" and "not an answer option" in why
               for path, why in issues)
    assert ("item[7].linkId", "'/99999-9' is not an item of the phq-9 Questionnaire") in issues
    missing = sorted(why for path, why in issues if path == "item")
    assert len(missing) == 2 and "'/44250-9'" in missing[0] + missing[1] and \
        "'/44255-8'" in missing[0] + missing[1]
    assert snapshot(app) == before


@pytest.mark.parametrize("change, path", [
    ({"questionnaire": "http://example.org/Questionnaire/other"}, "questionnaire"),
    ({"status": "in-progress"}, "status"),
    ({"subject": {"reference": "Group/g1"}}, "subject"),
    ({"subject": {"reference": "Patient/pat-nobody"}}, "subject"),
    ({"authored": None}, "authored"),  # None: left out
    ({"item": [{"linkId": "/44250-9", "answer": [{"valueBoolean": True}]}]}, "item[0].answer[0]"),
])
def test_a_response_that_does_not_fit_is_refused_naming_the_element(app, served, change, path):
    response = {**response_to(served["phq-9"], {n: 0 for n in range(1, 10)}), **change}
    refused = app.test_client().post("/fhir/QuestionnaireResponse",
                                     json={k: v for k, v in response.items() if v is not None})
    assert refused.status_code == 422, refused.json
    assert path in [i["expression"][0] for i in refused.json["issue"]]


def test_an_item_answered_that_the_questionnaire_does_not_ask_then_is_refused(app, served):
    screener = served["c-ssrs-screener"]
    refused = app.test_client().post("/fhir/QuestionnaireResponse", json=response_to(
        screener, {1: 1, 2: 0, 3: 1, 6: 0}))
    assert refused.status_code == 422
    assert [i["expression"][0] for i in refused.json["issue"]] == ["item[2]"]
    created = app.test_client().post("/fhir/QuestionnaireResponse", json=response_to(
        screener, {1: 1, 2: 1, 3: 1, 4: 0, 5: 0, 6: 0}))
    assert created.status_code == 201
    record_id = created.json["id"].removeprefix("qr-")
    record = app.test_client().get(f"/api/v1/assessments/{record_id}").json
    assert record["risk"] == "moderate" and record["alerts"] == ["suicide-risk"]


def test_a_stated_total_must_agree_with_the_answers(app, served):
    response = response_to(served["gad-7"], {n: 2 for n in range(1, 8)})
    response["item"].append({"linkId": "/70274-6", "answer": [{"valueInteger": 13}]})
    refused = app.test_client().post("/fhir/QuestionnaireResponse", json=response)
    assert refused.status_code == 422
    assert refused.json["issue"][0]["expression"] == ["item[7].answer[0]"]
    response["item"][-1]["answer"] = [{"valueInteger": 14}]
    assert app.test_client().post("/fhir/QuestionnaireResponse", json=response).status_code \
        == 201


def test_the_json_api_takes_a_response_and_answers_the_assessment_record(app, served):
    client = app.test_client()
    response = response_to(served["gad-7"], {n: 3 for n in range(1, 8)}, id="gad-from-app")
    created = client.post("/api/v1/questionnaire-responses", json=response,
                          headers={"Idempotency-Key": "qr-gad-1"})
    assert created.status_code == 201, created.json
    assert created.headers["Location"].endswith("/api/v1/assessments/gad-from-app")
    assert (created.json["total"], created.json["band"]) == (21, "severe")
    again = client.post("/api/v1/questionnaire-responses", json=response,
                        headers={"Idempotency-Key": "qr-gad-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert client.post("/api/v1/questionnaire-responses", json=response).status_code == 409
    assert client.get("/fhir/QuestionnaireResponse/qr-gad-from-app").status_code == 200


# --- access -----------------------------------------------------------------------------------

def _post_as(app, served, token: str, patient: str = "pat-p01"):
    return app.test_client().post(
        "/fhir/QuestionnaireResponse",
        json=response_to(served["phq-2"], {1: 0, 2: 1}, patient=patient),
        headers={"Authorization": f"Bearer {token}"})


def test_writing_a_response_needs_a_create_scope_on_questionnaire_response(app, served):
    assert _post_as(app, served, dev_token("system/Observation.cruds")).status_code == 403
    assert _post_as(app, served, dev_token("system/QuestionnaireResponse.r")).status_code == 403
    assert _post_as(app, served, dev_token("system/QuestionnaireResponse.c")).status_code == 201
    assert _post_as(app, served, dev_token("user/QuestionnaireResponse.write")).status_code \
        == 201


def test_a_patient_token_writes_only_its_own_patients_answers(app, served):
    own = dev_token("patient/QuestionnaireResponse.c", patient="pat-p01")
    assert _post_as(app, served, own).status_code == 201
    other = dev_token("patient/QuestionnaireResponse.c", patient="pat-p02")
    assert _post_as(app, served, other).status_code == 403


# --- the same answers either way --------------------------------------------------------------

@st.composite
def answer_sets(draw, keys=("phq-9", "gad-7")):
    key = draw(st.sampled_from(keys))
    answers = {}
    for item in instruments()[key].items:
        if item.optional and draw(st.booleans()):
            continue
        answers[item.number] = draw(st.integers(item.min, item.max))
    return key, answers


def _phq9(item_9: int, others: int) -> tuple[str, dict[int, int]]:
    return "phq-9", {**{n: others for n in range(1, 9)}, 9: item_9}


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer_sets())
@example(_phq9(0, 0)).via("no answer at all")
@example(_phq9(1, 0)).via("item 9 alone positive")
@example(_phq9(3, 0)).via("item 9 at its highest, all else 0")
@example(_phq9(0, 3)).via("severe without item 9")
@example(_phq9(3, 3)).via("everything at its highest")
@example(("phq-9", {1: 1, 2: 1, 3: 1, 4: 1, 5: 0, 6: 0, 7: 0, 8: 0, 9: 1})).via("5: mild")
@example(("gad-7", {1: 3, 2: 3, 3: 3, 4: 1, 5: 0, 6: 0, 7: 0})).via("10: moderate")
def test_a_response_scores_bands_and_alerts_as_the_same_answers_sent_as_an_assessment(
        app, served, answer_set):
    key, answers = answer_set
    context = Context(app.extensions["fhir_bridge"].mapper)
    via_response = load_record(ASSESSMENT, to_assessment(
        context, response_to(served[key], answers), "a1"))
    via_api = load_record(ASSESSMENT, _assessment(key, answers, "a1"))
    assert via_response.pop("received_as") == "questionnaire-response"
    assert via_response == via_api


@pytest.mark.parametrize("item_9", [0, 1, 2, 3])
def test_both_paths_save_the_same_record_flags_and_resources(app, served, item_9):
    """Item 9 edge cases end to end: the same Flags, Observations and record either way."""
    client = app.test_client()
    _, answers = _phq9(item_9, 1)
    by_api = client.post("/api/v1/assessments",
                         json=_assessment("phq-9", answers, f"api-item9-{item_9}"))
    assert by_api.status_code == 201, by_api.json
    by_form = client.post("/api/v1/questionnaire-responses",
                          json=response_to(served["phq-9"], answers, id=f"qr-item9-{item_9}"))
    assert by_form.status_code == 201, by_form.json
    api_record, form_record = by_api.get_json(), by_form.get_json()
    assert (api_record.pop("id"), form_record.pop("id")) == (f"api-item9-{item_9}",
                                                             f"qr-item9-{item_9}")
    assert form_record.pop("received_as") == "questionnaire-response"
    assert api_record == form_record
    flags = [client.get(f"/fhir/Flag/flag-{prefix}-item9-{item_9}.suicide-risk").status_code
             for prefix in ("api", "qr")]
    assert flags == ([200, 200] if item_9 else [404, 404])
