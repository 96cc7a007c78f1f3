"""QuestionnaireResponses of assessments received as one (forward only: the response is
rendered from the assessment record, with the linkIds and answer options of the bridge's
Questionnaire, fhir_bridge/questionnaires/build.py), and the panel's link to it."""

from __future__ import annotations

from ..catalogs import instruments
from .registry import transform

#: The assessment's (Observation) status -> QuestionnaireResponse.status.
RESPONSE_STATUS = {"final": "completed", "amended": "amended", "corrected": "amended",
                   "preliminary": "in-progress", "registered": "in-progress",
                   "cancelled": "stopped"}


def _build():
    from ...questionnaires import build  # the Questionnaire module builds on the mappings

    return build


@transform("questionnaire_canonical")
def _questionnaire_canonical():
    """instrument -> the canonical URL of its Questionnaire, with its version."""
    def forward(v, a, c):
        build = _build()
        return f"{build.canonical(v)}|{build.VERSION}"

    return forward, (lambda v, a, c: None)


@transform("response_status")
def _response_status():
    return (lambda v, a, c: RESPONSE_STATUS[v]), (lambda v, a, c: None)


@transform("response_items")
def _response_items():
    """[instrument, items, total] -> QuestionnaireResponse.item: one per answer, valueCoding
    (with its score) for coded answers, valueInteger otherwise, and the total."""
    def forward(v, a, c):
        key, answers, total = v
        build = _build()
        instrument = instruments()[key]
        out = []
        for answer in answers or []:
            item = instrument.item(answer["number"])
            option = build.answer_options(c, item)[answer["value"] - item.min]
            value = {"valueCoding": {**option["valueCoding"], "extension": option["extension"]}} \
                if "valueCoding" in option else {"valueInteger": option["valueInteger"]}
            out.append({"linkId": build.link_id(c.terminology, instrument, item.number),
                        "text": item.text, "answer": [value]})
        if instrument.total and total is not None:
            out.append({"linkId": build.link_id(c.terminology, instrument, None),
                        "text": "Total score", "answer": [{"valueInteger": total}]})
        return out

    return forward, (lambda v, a, c: None)


@transform("derived_from_response")
def _derived_from_response():
    """[id, received_as] <-> the panel's derivedFrom: the QuestionnaireResponse the answers
    came in (US Core's screening-assessment examples point at theirs the same way)."""
    def forward(v, a, c):
        record_id, received_as = v
        if received_as != "questionnaire-response":
            return None
        return [{"reference": c.mapper.reference("assessment-questionnaire-response",
                                                 record_id)}]

    def reverse(v, a, c):
        prefix = "QuestionnaireResponse/" + \
            c.mapper.mapping_for("assessment-questionnaire-response").id_prefix + "-"
        ours = any(str(ref.get("reference", "")).startswith(prefix) for ref in v or [])
        return (None, "questionnaire-response" if ours else None)

    return forward, reverse
