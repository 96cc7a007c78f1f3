"""Item answers of rating scales, both ways: the answer's LOINC answer code with its score (the
``ordinalValue`` extension on the Coding, as R4 core defines it for scored answers), or a plain
integer for items whose answers have no codes (``answers`` in mappings/instruments.yaml).

Read back from an item Observation (or a panel's component) sent any of the ways systems send
them: ``valueInteger``, ``valueCodeableConcept`` with a LOINC answer code of the item's answer
list, or any coding that carries its score as ``ordinalValue`` (or ``itemWeight``, the name the
FHIR Extensions Pack 5.x gives the same extension).
"""

from __future__ import annotations

from ..catalogs import Item, instruments
from ..context import Context
from .registry import transform

ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"


def item_of_code(ctx: Context, concept: dict) -> tuple[str | None, int | None]:
    """(instrument, item number) of an item code: a LOINC item code of the terminology, or the
    local code "<instrument>.item-<n>" of the instrument-item system; (None, None) if neither."""
    for coding in concept.get("coding") or []:
        code = ctx.terminology.table("instruments").lookup(coding.get("system"),
                                                           coding.get("code"))
        if code is not None and ".item-" in code.key:
            key, number = code.key.rsplit(".item-", 1)
            return key, int(number)
        if coding.get("system") == ctx.terminology.local_system("instrument-item") and \
                ".item-" in str(coding.get("code")):
            key, number = coding["code"].rsplit(".item-", 1)
            if number.isdigit():
                return key, int(number)
    return None, None


def answer_coding(ctx: Context, item: Item, value: int) -> dict:
    """The coding of answer ``value`` of a coded item, with its score."""
    code = ctx.terminology.table("instruments").get(item.answers[value - item.min])
    return {**code.coding(), "extension": [{"url": ORDINAL_VALUE, "valueDecimal": value}]}


def ordinal_of(coding: dict) -> int | None:
    """The score a coding states in an ordinalValue/itemWeight extension (a whole number)."""
    for ext in coding.get("extension") or []:
        if ext.get("url") in (ORDINAL_VALUE, ITEM_WEIGHT):
            value = ext.get("valueDecimal", ext.get("valueInteger"))
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and float(value).is_integer():
                return int(value)
    return None


def score_of(ctx: Context, item: Item, element: dict) -> tuple[int | None, str | None]:
    """(score, None) of an answer element (an Observation, a component, a QuestionnaireResponse
    answer), or (None, why) when it holds no answer the item can take."""
    if "valueInteger" in element and isinstance(element["valueInteger"], int):
        return element["valueInteger"], None
    concept = element.get("valueCodeableConcept")
    codings = (concept.get("coding") or []) if isinstance(concept, dict) else \
        [element["valueCoding"]] if isinstance(element.get("valueCoding"), dict) else []
    table = ctx.terminology.table("instruments")
    for coding in codings:
        code = table.lookup(coding.get("system"), coding.get("code"))
        if code is not None and code.key in item.answers:
            return item.min + item.answers.index(code.key), None
    for coding in codings:
        found = ordinal_of(coding)
        if found is not None:
            return found, None
    sent = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in codings)
    if sent:
        return None, f"{sent} is not an answer of this item and states no ordinalValue"
    return None, "holds no valueInteger, valueCodeableConcept or valueCoding"


@transform("item_answer_code")
def _item_answer_code():
    """[instrument, number, value] -> valueCodeableConcept, for items with coded answers."""
    def forward(v, a, c):
        key, number, value = v
        item = instruments()[key].item(number)
        if not item.answers:
            return None
        coding = answer_coding(c, item, value)
        return {"coding": [coding], "text": coding["display"]}

    return forward, (lambda v, a, c: None)


@transform("item_answer_integer")
def _item_answer_integer():
    """[instrument, number, value] -> valueInteger, for items whose answers are numbers."""
    def forward(v, a, c):
        key, number, value = v
        return None if instruments()[key].item(number).answers else value

    return forward, (lambda v, a, c: None)


@transform("item_answer")
def _item_answer():
    """Reverse only: the score of the item Observation being read, however it is sent (the
    rule sits on ``code``; the value is read from the resource beside it)."""
    def reverse(v, a, c):
        key, number = item_of_code(c, v)
        item = instruments()[key].item(number) if key in instruments() else None
        if item is None:
            return None  # the code rule reports it
        score, why = score_of(c, item, c.resource or {})
        if score is None:
            c.unmapped.append(("value[x]", f"{key} item {number}: {why}"))
        return score

    return (lambda v, a, c: None), reverse
