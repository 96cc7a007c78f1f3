"""Treatment response over weeks of care: baseline, latest, response, remission, review."""

import pytest

from fhir_bridge.clinical.response import rules

from .conftest import FIXTURES, read_json

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")


def phq9(client, assessment_id, effective, values):
    response = client.post("/api/v1/assessments", json={
        "id": assessment_id, "patient_id": "p01", "instrument": "phq-9",
        "effective": effective,
        "items": [{"number": n, "value": v} for n, v in enumerate(values, start=1)]})
    assert response.status_code == 201, response.json
    return response.json


def phq9_trend(client):
    body = client.get("/api/v1/patients/p01/score-trends").json
    return next(t for t in body["instruments"] if t["instrument"] == "phq-9")


@pytest.fixture
def client(sqlite_app):
    client = sqlite_app.test_client()
    assert client.post("/api/v1/documents", json=P01).status_code == 200
    return client


def test_weeks_of_care_from_partial_response_to_review_to_remission(client):
    # Week 0: PHQ-9 16 on sertraline 50 mg; week 4: 12 (-25%), dose raised to 100 mg that day.
    trend = phq9_trend(client)
    assert [p["total"] for p in trend["trend"]] == [16, 12]
    assert (trend["change_percent"], trend["response"], trend["remission"]) == (-25.0, False,
                                                                                 False)
    assert trend["review_treatment"] is False  # 0 weeks at the new dose
    # Week 10: 6 weeks at 100 mg, PHQ-9 still 11: an adequate trial without response.
    phq9(client, "p01-phq9-w10", "2025-05-12T09:20:00-04:00", [2, 1, 1, 2, 1, 1, 2, 1, 0])
    trend = phq9_trend(client)
    assert trend["weeks_at_steady_dose"] == 6.0 and trend["review_treatment"] is True
    assert "after 6 weeks at a steady dose" in trend["reasons"][0]
    # Week 16: PHQ-9 4: response (-75%) and remission.
    record = phq9(client, "p01-phq9-w16", "2025-06-23T09:20:00-04:00",
                  [1, 1, 0, 1, 0, 0, 1, 0, 0])
    assert record["band"] == "minimal"
    trend = phq9_trend(client)
    assert (trend["latest"]["total"], trend["change_percent"]) == (4, -75.0)
    assert trend["response"] and trend["remission"] and not trend["review_treatment"]


def test_an_unknown_patient_is_404(client):
    assert client.get("/api/v1/patients/nobody/score-trends").status_code == 404


def test_every_response_rule_names_its_source():
    config = rules()
    for rule in [config["response"], config["adequate_trial"], *config["remission"].values()]:
        assert len(rule["source"]) > 20
