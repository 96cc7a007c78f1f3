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

def capability_entries() -> list[dict[str, Any]]:
    """CapabilityStatement.rest.resource entries this package contributes."""
    from ..facade.catalog import capability_entry

    return [capability_entry(
        "Questionnaire", "One Questionnaire per rating scale the bridge scores. A "
        "QuestionnaireResponse to one of them, posted to /fhir/QuestionnaireResponse, is scored "
        "like an assessment.",
        supportedProfile=["http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"]), {
        # Joins the entry the search-parameter table makes (read, vread, history, search).
        "type": "QuestionnaireResponse",
        "supportedProfile": [
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-questionnaireresponse"],
        "interaction": [{"code": "create"}],
    }]


def install(app: Flask) -> None:
    """Register the endpoints (literal /fhir/Questionnaire... rules win over /fhir/<type>) and
    the search source, and announce them in the CapabilityStatement."""
    from ..facade import catalog
    from . import api

    app.register_blueprint(api.bp)
    catalog.register(app, "Questionnaire", api.searchable_questionnaires)
    app.extensions.setdefault("fhir_capability_resources", []).extend(capability_entries())
