"""A QuestionnaireResponse, checked against the bridge's Questionnaire it answers, becomes the
internal assessment record the JSON API would make from the same answers.

Checked, each problem an Issue at its path in the response (all at once, 422): valid R4; the
``questionnaire`` is one of the bridge's; status completed or amended; a subject that is a
Patient the bridge wrote; ``authored``; every ``item`` has a known linkId, is answered once, with
the answer type of the Questionnaire (valueCoding for coded answers, valueInteger for numbers),
with one of its answer options; no item answered that the Questionnaire does not ask then
(enableWhen); every required item answered; a stated total agrees with the answers. The
record's id is chosen by the caller (the JSON API: the response's id), else a new one.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..errors import Issue, InvalidInput
from ..fhir.validate import resource_issues
from ..mapping.catalogs import Instrument, instruments
from ..mapping.context import Context
from ..mapping.transforms.answers import score_of
from .build import answer_options, instrument_of_canonical, link_id

#: QuestionnaireResponse.status -> the assessment's (Observation) status.
STATUSES = {"completed": "final", "amended": "amended"}


def _reference_id(ctx: Context, concept: str, value: Any, path: str,
                  issues: list[Issue]) -> str | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    m = ctx.mapper.mapping_for(concept)
    prefix = f"{m.resource_type}/{m.id_prefix}-"
    if not isinstance(reference, str) or not reference.startswith(prefix):
        issues.append(Issue(path, f"must reference a {m.resource_type} of this server "
                                  f"({prefix}<id>)"))
        return None
    return reference[len(prefix):]


def _answer_issue(ctx: Context, instrument: Instrument, number: int, answer: dict,
                  path: str) -> tuple[int | None, Issue | None]:
    item = instrument.item(number)
    coded = bool(item.answers)
    wanted = "valueCoding" if coded else "valueInteger"
    sent = [k for k in answer if k.startswith("value")]
    if sent != [wanted]:
        return None, Issue(path, f"must be {wanted} (answer type of item {number}), not "
                                 f"{', '.join(sent) or 'nothing'}")
    if coded:
        options = [o["valueCoding"] for o in answer_options(ctx, item)]
        coding = answer[wanted]
        if not any(coding.get("system") == o["system"] and coding.get("code") == o["code"]
                   for o in options):
            allowed = ", ".join(f"{o['code']} ({o['display']})" for o in options)
            return None, Issue(f"{path}.valueCoding", f"is not an answer option of item "
                                                      f"{number}: one of {allowed}")
        return score_of(ctx, item, answer)[0], None
    if not item.min <= answer[wanted] <= item.max:
        return None, Issue(f"{path}.valueInteger",
                           f"must be one of {item.min}-{item.max} for item {number}")
    return answer[wanted], None


def _answers(ctx: Context, instrument: Instrument, items: Any,
             issues: list[Issue]) -> tuple[dict[int, int], int | None]:
    """(item number -> score, stated total) of the response's items."""
    by_link = {link_id(ctx.terminology, instrument, i.number): i.number for i in instrument.items}
    total_link = link_id(ctx.terminology, instrument, None) if instrument.total else None
    scores: dict[int, int] = {}
    total = None
    seen: set[str] = set()
    if items is not None and not isinstance(items, list):
        issues.append(Issue("item", "must be a list"))
        items = []
    for index, entry in enumerate(items or []):
        path = f"item[{index}]"
        link = entry.get("linkId") if isinstance(entry, dict) else None
        if link not in by_link and link != total_link:
            issues.append(Issue(f"{path}.linkId", f"{link!r} is not an item of the "
                                                  f"{instrument.key} Questionnaire"))
            continue
        if link in seen:
            issues.append(Issue(f"{path}.linkId", f"{link!r} is answered twice"))
            continue
        seen.add(link)
        if entry.get("item"):
            issues.append(Issue(f"{path}.item", "the Questionnaire has no nested items"))
        answers = entry.get("answer") or []
        if len(answers) != 1:
            if answers or link in by_link:
                issues.append(Issue(f"{path}.answer", "must hold exactly one answer"))
            continue
        if link == total_link:
            value = answers[0].get("valueInteger", answers[0].get("valueDecimal"))
            if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                    not float(value).is_integer():
                issues.append(Issue(f"{path}.answer[0]", "the total must be valueInteger"))
            else:
                total = int(value)
            continue
        score, issue = _answer_issue(ctx, instrument, by_link[link], answers[0],
                                     f"{path}.answer[0]")
        if issue is not None:
            issues.append(issue)
        else:
            scores[by_link[link]] = score
    for item in instrument.items:
        link = link_id(ctx.terminology, instrument, item.number)
        if item.asked_if is not None and item.number in scores:
            opener, needed = item.asked_if
            if scores.get(opener) != needed:
                issues.append(Issue(f"item[{_position(items, link)}]", f"{link!r} is asked "
                                    f"only when item {opener} is answered {needed}"))
        elif not item.optional and item.number not in scores and link not in seen:
            issues.append(Issue("item", f"required item {link!r} (item {item.number}: "
                                        f"{item.text}) is not answered"))
    return scores, total


def _position(items: list, link: str) -> int:
    return next(i for i, e in enumerate(items) if isinstance(e, dict) and e.get("linkId") == link)


def to_assessment(ctx: Context, response: Any, record_id: str | None = None) -> dict:
    """The assessment record of a QuestionnaireResponse (InvalidInput naming every problem);
    its id is ``record_id``, else a new one."""
    if not isinstance(response, dict) or response.get("resourceType") != "QuestionnaireResponse":
        raise InvalidInput("the body must be a QuestionnaireResponse",
                           [Issue("resourceType", "must be QuestionnaireResponse")])
    issues = [Issue(i.path.removeprefix("QuestionnaireResponse."), i.message, i.code)
              for i in resource_issues(response)]
    if issues:
        raise InvalidInput("the QuestionnaireResponse is not valid FHIR R4", issues)
    key = instrument_of_canonical(response.get("questionnaire"))
    if key is None:
        raise InvalidInput("the QuestionnaireResponse answers no Questionnaire of this server",
                           [Issue("questionnaire", f"{response.get('questionnaire')!r} is not "
                                  "the url of a Questionnaire served at /fhir/Questionnaire")])
    instrument = instruments()[key]
    status = STATUSES.get(response.get("status"))
    if status is None:
        issues.append(Issue("status", f"is {response.get('status')!r}: only completed or "
                                      "amended responses are scored"))
    patient_id = _reference_id(ctx, "patient", response.get("subject"), "subject", issues)
    if not response.get("authored"):
        issues.append(Issue("authored", "is required (when the answers were given)"))
    author = response.get("author")
    practitioner_id = None
    if author is not None and str(author.get("reference", "")).startswith("Practitioner/"):
        practitioner_id = _reference_id(ctx, "practitioner", author, "author", issues)
    elif author is not None and author != response.get("subject"):
        issues.append(Issue("author", "must be a Practitioner of this server or the subject"))
    scores, total = _answers(ctx, instrument, response.get("item"), issues)
    summed = sum(v for n, v in scores.items() if instrument.item(n).in_total)
    if total is not None and not issues and total != summed:
        where = _position(response["item"], link_id(ctx.terminology, instrument, None))
        issues.append(Issue(f"item[{where}].answer[0]",
                            f"is {total} but the answers add up to {summed}"))
    if issues:
        raise InvalidInput(f"the QuestionnaireResponse does not fit the {key} Questionnaire",
                           issues)
    record: dict[str, Any] = {
        "id": record_id or uuid.uuid4().hex[:24],
        "patient_id": patient_id, "instrument": key, "status": status,
        "effective": response["authored"],
        "items": [{"number": n, "value": v} for n, v in sorted(scores.items())],
        "received_as": "questionnaire-response",
    }
    if practitioner_id is not None:
        record["administered_by_id"] = practitioner_id
    return record
