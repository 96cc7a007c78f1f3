"""The questionnaire endpoints: ``/fhir/Questionnaire`` (read, and search by the /fhir engine:
facade/catalog.py, parameters in mappings/search-parameters.yaml), ``POST
/fhir/QuestionnaireResponse``, and ``POST /api/v1/questionnaire-responses``
(the same answers through the JSON API, answered with the assessment record).

A response is checked against its Questionnaire (intake.py), turned into the assessment record
the JSON API would make of the same answers, and saved through the JSON API's path
(api/records.py ``_save``: idempotency keys, one transaction, scoring, Flags, monitoring,
subscriptions, audit, outbox). Reading it back, searching it and its history are the /fhir
facade's, like every resource mapped from a record (mappings/search-parameters.yaml).

Access: writing needs a scope granting create on QuestionnaireResponse (``.c``, v1 ``.write``);
a patient-context token writes only its own patient's answers (403 otherwise). Questionnaires
are read with a scope granting read/search on Questionnaire.
"""

from __future__ import annotations

import re
from typing import Callable

from flask import Blueprint, Response, current_app, g, request

from ..api import records
from ..api.body import json_body
from ..auth import compartment
from ..auth.principal import current_principal
from ..errors import InvalidInput, Issue, NotFound
from ..facade.catalog import read_answer
from ..facade.negotiate import negotiate
from ..facade.responses import fhir
from ..facade.urls import fhir_base
from ..mapping.context import Context
from ..mapping.document import load_record
from ..model import concept_by_name
from ..model.common import ID_PATTERN
from ..store.records import with_meta
from .build import all_questionnaires
from .intake import to_assessment

bp = Blueprint("questionnaires", __name__)

#: Where an assessment field's problem is in the QuestionnaireResponse.
RESPONSE_PATHS = {"effective": "authored", "patient_id": "subject",
                  "administered_by_id": "author", "id": "id"}


def _bridge():
    return current_app.extensions["fhir_bridge"]


@bp.before_request
def _negotiate():
    if request.path.startswith("/fhir/"):
        g.fhir_answer = negotiate(request.headers.get("Accept"),
                                  request.args.getlist("_format"),
                                  request.args.getlist("_pretty"))


# -- Questionnaire ------------------------------------------------------------------------------

def searchable_questionnaires() -> list[dict]:
    """The Questionnaires a search sees (the caller may search them): the catalog source."""
    current_principal().require("Questionnaire", "s")
    return all_questionnaires(_bridge().mapper)


@bp.get("/fhir/Questionnaire/<questionnaire_id>")
def read_questionnaire(questionnaire_id: str):
    current_principal().require("Questionnaire", "r")
    for questionnaire in all_questionnaires(_bridge().mapper):
        if questionnaire["id"] == questionnaire_id:
            return read_answer(questionnaire, {"ETag": f'W/"{questionnaire["version"]}"'})
    raise NotFound(f"Questionnaire/{questionnaire_id} is not known",
                   [Issue("id", "the bridge has one Questionnaire per instrument: "
                                "GET /fhir/Questionnaire lists them", "not-found")])


# -- QuestionnaireResponse ----------------------------------------------------------------------

def _save_response(choose_id: Callable[[dict], str | None], respond) -> Response:
    """Check the body, make its assessment record (id: ``choose_id(body)``, else a new one)
    and save it as the JSON API saves one; ``respond(concept, saved)`` makes the answer."""
    current_principal().require("QuestionnaireResponse", "c")
    response = json_body()
    concept = concept_by_name("assessment")
    record_id = choose_id(response) if isinstance(response, dict) else None
    record = to_assessment(Context(_bridge().mapper), response, record_id)
    try:
        record = load_record(concept, record)
        compartment.check_write(concept, record)
        return records._save([(concept, record)], lambda saved: respond(concept, saved),
                             create_only=[0])
    except InvalidInput as exc:
        raise InvalidInput(exc.message, [Issue(RESPONSE_PATHS.get(i.path, i.path), i.message,
                                               i.code, i.severity) for i in exc.issues]) from None


@bp.post("/fhir/QuestionnaireResponse")
@records.idempotent
def create_response():
    """201 with the QuestionnaireResponse as served (US Core profile), rendered from the new
    assessment record; the server chooses its id."""
    mapper = _bridge().mapper

    def respond(concept, saved):
        stored = saved[0]
        resource = next(r for r in mapper.to_fhir(concept.name, stored.data)
                        if r["resourceType"] == "QuestionnaireResponse")
        # The id is new (to_assessment made it), so this is the resource's first version.
        served = with_meta(resource, 1, stored.updated_at)
        location = f"{fhir_base(_bridge().config)}/QuestionnaireResponse/{resource['id']}"
        return fhir(served, 201, {"Location": f"{location}/_history/1", "ETag": 'W/"1"'})

    return _save_response(lambda response: None, respond)


def _record_id(response: dict) -> str | None:
    rid = response.get("id")
    return rid if isinstance(rid, str) and re.match(ID_PATTERN, rid) else None


@bp.post("/api/v1/questionnaire-responses")
@records.idempotent
def create_response_record():
    """201 with the assessment record made of the answers (as POST /api/v1/assessments
    answers); its id is the response's id when that is a valid record id."""
    return _save_response(_record_id,
                          lambda concept, saved: records._record_response(concept, saved[0],
                                                                          201, saved))
