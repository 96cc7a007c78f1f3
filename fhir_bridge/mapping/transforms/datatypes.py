"""Small FHIR data types and prescriptions: HL7 codes, contact points, languages, diagnosis
codes, dose components, discontinuation."""

from __future__ import annotations

from typing import Any

from .quantities import ucum_quantity
from .registry import UCUM, transform


@transform("hl7_code")
def _hl7_code():
    """A word that is itself a code of a FHIR-defined system (args.system), as CodeableConcept."""
    def forward(v, a, c):
        return {"coding": [{"system": a["system"], "code": v}]}

    def reverse(v, a, c):
        return next((x.get("code") for x in v.get("coding") or []
                     if x.get("system") == a["system"]), None)

    return forward, reverse


@transform("contact_point")
def _contact_point():
    """A phone number or e-mail (args.system) <-> one ContactPoint in a telecom list (append)."""
    def forward(v, a, c):
        return [{"system": a["system"], "value": v}]

    def reverse(v, a, c):
        return next((x.get("value") for x in v if x.get("system") == a["system"]), None)

    return forward, reverse


@transform("language")
def _language():
    def forward(v, a, c):
        return {"coding": [{"system": "urn:ietf:bcp:47", "code": v}]}

    def reverse(v, a, c):
        return next((x.get("code") for x in v.get("coding") or []
                     if x.get("system") == "urn:ietf:bcp:47"), None)

    return forward, reverse


@transform("diagnosis_code")
def _diagnosis_code():
    """[icd10cm, description] <-> Condition.code: ICD-10-CM coding when the record has one
    (the practice's own code, passed through), the description as text."""
    system = "http://hl7.org/fhir/sid/icd-10-cm"

    def forward(v, a, c):
        code, description = v
        concept: dict[str, Any] = {}
        if code:
            concept["coding"] = [{"system": system, "code": code}]
        concept["text"] = description
        return concept

    def reverse(v, a, c):
        code = next((x.get("code") for x in v.get("coding") or [] if x.get("system") == system),
                    None)
        text = v.get("text") or next((x.get("display") for x in v.get("coding") or []
                                      if x.get("display")), None)
        return code, text

    return forward, reverse


@transform("days")
def _days():
    """A whole number of days <-> Duration."""
    return (lambda v, a, c: {"value": v, "unit": "days", "system": UCUM, "code": "d"}), \
        (lambda v, a, c: int(v["value"]))


@transform("components")
def _components():
    """Several internal fields <-> Observation.component entries with local codes.

    args.system names the local code system; args.parts lists, in the order of the rule's
    internal fields, {name, text, type: integer | percent | word}. Absent fields make no
    component; "word" values are local codes of system "<args.system>-value".
    """
    def forward(v, a, c):
        system = c.terminology.local_system(a["system"])
        out = []
        for part, value in zip(a["parts"], v):
            if value is None:
                continue
            comp: dict[str, Any] = {"code": {"coding": [{"system": system, "code": part["name"],
                                                         "display": part["text"]}],
                                             "text": part["text"]}}
            if part["type"] == "integer":
                comp["valueInteger"] = value
            elif part["type"] == "percent":
                comp["valueQuantity"] = ucum_quantity(value, "%", c)
            else:
                word_system = c.terminology.local_system(a["system"] + "-value")
                shown = value.replace("-", " ").capitalize()
                comp["valueCodeableConcept"] = {"coding": [{"system": word_system,
                                                            "code": value, "display": shown}],
                                                "text": shown}
            out.append(comp)
        return out or None

    def reverse(v, a, c):
        system = c.terminology.local_system(a["system"])
        by_name = {}
        for comp in v:
            for coding in comp.get("code", {}).get("coding") or []:
                if coding.get("system") == system:
                    by_name[coding.get("code")] = comp
        values = []
        for part in a["parts"]:
            comp = by_name.get(part["name"])
            if comp is None:
                values.append(None)
            elif part["type"] == "integer":
                values.append(comp.get("valueInteger"))
            elif part["type"] == "percent":
                values.append(float(comp["valueQuantity"]["value"]))
            else:
                codings = comp.get("valueCodeableConcept", {}).get("coding") or [{}]
                values.append(codings[0].get("code"))
        return tuple(values)

    return forward, reverse


@transform("discontinuation")
def _discontinuation():
    """{date, reason, by_id} <-> the bridge's medicationrequest-discontinuation extension
    (args.url): FHIR R4 has no element for when and by whom an order was stopped."""
    def forward(v, a, c):
        return [{"url": a["url"], "extension": [
            {"url": "date", "valueDate": v["date"]},
            {"url": "reason", "valueString": v["reason"]},
            {"url": "author",
             "valueReference": {"reference": c.mapper.reference("practitioner", v["by_id"])}},
        ]}]

    def reverse(v, a, c):
        ext = next((x for x in v if x.get("url") == a["url"]), None)
        if ext is None:
            return None
        parts = {x["url"]: x for x in ext.get("extension") or []}
        return {"date": parts["date"]["valueDate"], "reason": parts["reason"]["valueString"],
                "by_id": c.mapper.internal_id("practitioner",
                                              parts["author"]["valueReference"]["reference"], c)}

    return forward, reverse
