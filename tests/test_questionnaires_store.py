"""A QuestionnaireResponse saved on each database (SQLite and PostgreSQL) as the JSON API
saves the same answers: one transaction with its Observations, Flag, outbox rows and the
QuestionnaireResponse, and nothing at all when it is refused."""

from __future__ import annotations

import sqlalchemy as sa

from fhir_bridge.store import tables as t

from .conftest import snapshot
from .test_questionnaires import response_to


def _questionnaire(client, key: str) -> dict:
    return client.get(f"/fhir/Questionnaire/{key}").json


def test_a_response_writes_the_assessment_its_resources_and_outbox_rows(app, loaded_client):
    phq9 = _questionnaire(loaded_client, "phq-9")
    answers = {**{n: 2 for n in range(1, 9)}, 9: 1}
    created = loaded_client.post("/fhir/QuestionnaireResponse", json=response_to(phq9, answers))
    assert created.status_code == 201, created.json
    record_id = created.json["id"].removeprefix("qr-")
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        written = {r.resource_type + "/" + r.id for r in conn.execute(
            sa.select(t.resources.c.resource_type, t.resources.c.id).where(
                t.resources.c.record_id == record_id))}
        queued = {r.resource_type + "/" + r.resource_id for r in conn.execute(
            sa.select(t.outbox.c.resource_type, t.outbox.c.resource_id))}
    expected = {f"Observation/asmt-{record_id}", f"Observation/asmt-{record_id}.total",
                f"Flag/flag-{record_id}.suicide-risk", f"QuestionnaireResponse/qr-{record_id}",
                *(f"Observation/asmt-{record_id}.item-{n}" for n in range(1, 10))}
    assert written == expected
    assert expected <= queued
    record = loaded_client.get(f"/api/v1/assessments/{record_id}").json
    assert (record["total"], record["band"], record["alerts"]) == \
        (17, "moderately-severe", ["suicide-risk"])


def test_a_refused_response_writes_nothing(app, loaded_client):
    phq9 = _questionnaire(loaded_client, "phq-9")
    before = snapshot(app)
    response = response_to(phq9, {n: 0 for n in range(1, 10)}, patient="pat-nobody")
    refused = loaded_client.post("/fhir/QuestionnaireResponse", json=response)
    assert refused.status_code == 422
    assert [i["expression"][0] for i in refused.json["issue"]] == ["subject"]
    assert snapshot(app) == before
