"""Questionnaires: the bridge's rating scales as SDC-style Questionnaires, and
QuestionnaireResponses scored into assessment records.

- ``build``: Questionnaire resources from mappings/instruments.yaml (linkIds, answer options);
- ``intake``: a QuestionnaireResponse checked against its Questionnaire -> assessment record;
- ``api``: /fhir/Questionnaire, POST /fhir/QuestionnaireResponse, POST
  /api/v1/questionnaire-responses.

The QuestionnaireResponse served back is mapped from the assessment record
(mappings/assessment-questionnaire-response.map.yaml). docs/model.md, "The questionnaire path".
"""

from __future__ import annotations

from typing import Any

from flask import Flask

#: CapabilityStatement.rest.resource entries this package contributes.
CAPABILITY: list[dict[str, Any]] = [{
    "type": "Questionnaire",
    "supportedProfile": ["http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"],
    "documentation": "One Questionnaire per rating scale the bridge scores (read; search by "
                     "url, _id, code, status). A QuestionnaireResponse to one of them, posted to "
                     "/fhir/QuestionnaireResponse, is scored like an assessment.",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "searchParam": [{"name": "url", "type": "uri"}, {"name": "_id", "type": "token"},
                    {"name": "code", "type": "token"}, {"name": "status", "type": "token"}],
}, {
    # Joins the entry the search-parameter table makes (read, vread, history, search).
    "type": "QuestionnaireResponse",
    "supportedProfile": [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-questionnaireresponse"],
    "interaction": [{"code": "create"}],
}]


def install(app: Flask) -> None:
    """Register the endpoints (literal /fhir/Questionnaire... rules win over /fhir/<type>) and
    announce them in the CapabilityStatement."""
    from . import api

    app.register_blueprint(api.bp)
    app.extensions.setdefault("fhir_capability_resources", []).extend(CAPABILITY)
