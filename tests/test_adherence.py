"""Adherence: proportion of days covered from refills, doses taken, and the latest report on
the prescription as the US Core adherence extension."""

import pytest

from fhir_bridge.clinical.adherence import proportion_of_days_covered, rules

from .conftest import FIXTURES, read_json

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")
EXTENSION = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-medication-adherence"


@pytest.mark.parametrize("fills,pdc", [
    ([("2025-01-01", 30)], 100.0),
    ([("2025-01-01", 10), ("2025-01-21", 10)], 66.7),
    ([("2025-01-01", 10), ("2025-01-05", 10)], 66.7),  # an early refill carries over
    ([("2024-12-20", 20)], 26.7),  # a fill before the period counts from its first day in it
    ([("2025-01-25", 30)], 20.0),  # supply beyond the period does not count
])
def test_proportion_of_days_covered(fills, pdc):
    assert proportion_of_days_covered("2025-01-01", "2025-01-30",
                                      [{"date": d, "days_supply": n} for d, n in fills]) == pdc


def report(**fields):
    base = {"id": "p01-adh2", "patient_id": "p01", "prescription_id": "p01-rx2",
            "period_start": "2025-03-31", "period_end": "2025-04-27",
            "recorded_at": "2025-04-28T09:30:00-04:00"}
    return {**base, **fields}


@pytest.fixture
def client(sqlite_app):
    client = sqlite_app.test_client()
    assert client.post("/api/v1/documents", json=P01).status_code == 200
    return client


def test_refill_data_give_the_proportion_and_the_finding(client):
    response = client.post("/api/v1/adherence-reports", json=report(
        source="refill-data", fills=[{"date": "2025-03-31", "days_supply": 14}]))
    assert response.status_code == 201, response.json
    assert (response.json["proportion_percent"], response.json["finding"]) == (50.0,
                                                                               "non-adherent")
    fhir = client.get("/api/v1/adherence-reports/p01-adh2/fhir").json["entry"][0]["resource"]
    assert fhir["code"]["coding"][0]["code"] == "71799-1"
    assert fhir["valueCodeableConcept"]["coding"][0]["code"] == "702565001"
    fills = [c for c in fhir["component"] if c["code"]["coding"][0]["code"] == "fill"]
    assert fills[0]["valuePeriod"] == {"start": "2025-03-31", "end": "2025-04-13"}


def test_a_proportion_that_the_fills_do_not_give_is_refused(client):
    response = client.post("/api/v1/adherence-reports", json=report(
        source="refill-data", proportion_percent=90,
        fills=[{"date": "2025-03-31", "days_supply": 14}]))
    assert response.status_code == 422
    assert response.json["issue"][0]["expression"] == ["proportion_percent"]


def test_the_latest_report_becomes_the_adherence_extension_of_the_prescription(client):
    assert client.post("/api/v1/adherence-reports", json=report(
        source="pill-count", doses_prescribed=28, doses_taken=27)).status_code == 201
    prescription = client.get("/api/v1/prescriptions/p01-rx2").json
    assert prescription["adherence"] == {"finding": "adherent", "source": "pill-count",
                                         "date_asserted": "2025-04-28T09:30:00-04:00"}
    request = client.get("/api/v1/prescriptions/p01-rx2/fhir").json["entry"][0]["resource"]
    [extension] = [e for e in request["extension"] if e["url"] == EXTENSION]
    parts = {p["url"]: p for p in extension["extension"]}
    assert parts["medicationAdherence"]["valueCodeableConcept"]["coding"][0]["code"] == \
        "1156699004"
    assert parts["dateAsserted"]["valueDateTime"] == "2025-04-28T09:30:00-04:00"
    # An older report arriving later does not replace the newer statement.
    older = report(id="p01-adh0", source="self-report", doses_prescribed=10, doses_taken=2,
                   recorded_at="2025-04-01T09:00:00-04:00", period_end="2025-03-31")
    assert client.post("/api/v1/adherence-reports", json=older).status_code == 201
    assert client.get("/api/v1/prescriptions/p01-rx2").json["adherence"]["source"] == \
        "pill-count"


def test_the_adherence_threshold_names_its_source():
    assert rules()["adherent_at_percent"] == 80 and len(rules()["source"]) > 20
