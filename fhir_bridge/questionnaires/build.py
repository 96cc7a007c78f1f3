"""Questionnaires from the instrument catalog (mappings/instruments.yaml): the one place where
an instrument becomes an SDC-style Questionnaire and where its items get their linkIds.

Each instrument is one Questionnaire (id = the instrument's key): coded with its LOINC panel
code, each item with its LOINC item code where the terminology has one; an item's answers are
its answer options: LOINC answer codes with their score (``ordinalValue``) where
instruments.yaml lists ``answers``, else the whole numbers min..max. Items asked only after
another answer (``asked_if``) carry ``enableWhen``. The total score, when the instrument sums
one, is a read-only integer item: a response may leave it out (the bridge adds it up) or state
it (it must agree).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..mapping.catalogs import Instrument, Item, instruments
from ..mapping.terminology import Terminology
from ..mapping.transforms.answers import answer_coding
from ..mapping.context import Context

#: Canonical URLs of the bridge's Questionnaires: stable, whatever host serves them.
CANONICAL_BASE = "urn:fhir-bridge:questionnaire"
SDC_PROFILE = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"
VERSION = "1"
TOTAL = "total"


def canonical(key: str) -> str:
    return f"{CANONICAL_BASE}:{key}"


def instrument_of_canonical(url: str | None) -> str | None:
    """The instrument a ``questionnaire`` value names: our canonical (with or without
    ``|version``), or a reference to our Questionnaire (``Questionnaire/phq-9``, absolute or
    relative)."""
    if not isinstance(url, str):
        return None
    url = url.split("|", 1)[0]
    if url.startswith(CANONICAL_BASE + ":"):
        key = url[len(CANONICAL_BASE) + 1:]
    elif "Questionnaire/" in url:
        key = url.rsplit("Questionnaire/", 1)[1].strip("/")
    else:
        return None
    return key if key in instruments() else None


def _code(terminology: Terminology, key: str | None):
    return terminology.table("instruments").get(key) if key else None


def link_id(terminology: Terminology, instrument: Instrument, number: int | None) -> str:
    """An item's linkId: "/<LOINC code>" as US Core's and LHC-Forms' questionnaires write
    it where the item has a code, else "item-<n>"; the total is "/<LOINC code>" or "total"."""
    if number is None:
        code = _code(terminology, instrument.total)
        return f"/{code.code}" if code is not None else TOTAL
    code = _code(terminology, instrument.item(number).code)
    return f"/{code.code}" if code is not None else f"item-{number}"


def answer_options(ctx: Context, item: Item) -> list[dict]:
    if item.answers:
        return [{"valueCoding": {k: v for k, v in coding.items() if k != "extension"},
                 "extension": coding["extension"]}
                for coding in (answer_coding(ctx, item, n)
                               for n in range(item.min, item.max + 1))]
    return [{"valueInteger": n} for n in range(item.min, item.max + 1)]


def _question(ctx: Context, instrument: Instrument, item: Item) -> dict:
    terminology = ctx.terminology
    out: dict[str, Any] = {"linkId": link_id(terminology, instrument, item.number)}
    code = _code(terminology, item.code)
    if code is not None:
        out["code"] = [code.coding()]
    out.update({"prefix": f"{item.number}.", "text": item.text, "type": "choice",
                "required": not item.optional})
    if item.asked_if is not None:
        opener, needed = item.asked_if
        answer = answer_options(ctx, instrument.item(opener))[needed - instrument.item(opener).min]
        value = {"answerCoding": answer["valueCoding"]} if "valueCoding" in answer else \
            {"answerInteger": answer["valueInteger"]}
        out["enableWhen"] = [{"question": link_id(terminology, instrument, opener),
                              "operator": "=", **value}]
    out["answerOption"] = answer_options(ctx, item)
    return out


def questionnaire(ctx: Context, key: str) -> dict:
    """The Questionnaire of one instrument."""
    instrument = instruments()[key]
    terminology = ctx.terminology
    out: dict[str, Any] = {
        "resourceType": "Questionnaire", "id": key, "meta": {"profile": [SDC_PROFILE]},
        "url": canonical(key), "version": VERSION,
        "name": "".join(ch for ch in key.title() if ch.isalnum()),
        "title": instrument.title, "status": "active", "subjectType": ["Patient"],
        "publisher": "fhir-bridge",
    }
    if instrument.scoring is not None and instrument.scoring.source:
        out["description"] = f"Scored as the bridge scores it; source: " \
                             f"{instrument.scoring.source}"
    panel = _code(terminology, instrument.panel)
    if panel is not None:
        out["code"] = [panel.coding()]
    items = [_question(ctx, instrument, item) for item in instrument.items]
    if instrument.total:
        total: dict[str, Any] = {"linkId": link_id(terminology, instrument, None)}
        code = _code(terminology, instrument.total)
        if code is not None:
            total["code"] = [code.coding()]
        total.update({"text": "Total score", "type": "integer", "required": False,
                      "readOnly": True})
        items.append(total)
    out["item"] = items
    return out


@lru_cache(maxsize=4)
def _all(mapper) -> tuple[dict, ...]:
    ctx = Context(mapper)
    return tuple(questionnaire(ctx, key) for key in instruments())


def all_questionnaires(mapper) -> list[dict]:
    """Every instrument's Questionnaire (built once per mapper)."""
    return [dict(q) for q in _all(mapper)]
