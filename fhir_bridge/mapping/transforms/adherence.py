"""Adherence: pharmacy fills and the US Core medication-adherence extension."""

from __future__ import annotations

from .codes import coded, decoded
from .registry import transform


@transform("fill_components")
def _fill_components():
    """Pharmacy fills <-> Observation.component entries (local code "fill", args.system) whose
    valuePeriod runs from the fill date through the last day of its supply (append)."""
    import datetime as dt

    def forward(v, a, c):
        system = c.terminology.local_system(a["system"])
        out = []
        for fill in v:
            last = dt.date.fromisoformat(fill["date"]) + dt.timedelta(days=fill["days_supply"] - 1)
            out.append({"code": {"coding": [{"system": system, "code": "fill",
                                             "display": "Pharmacy fill"}],
                                 "text": "Pharmacy fill"},
                        "valuePeriod": {"start": fill["date"], "end": last.isoformat()}})
        return out

    def reverse(v, a, c):
        system = c.terminology.local_system(a["system"])
        fills = []
        for comp in v:
            codes = [(x.get("system"), x.get("code")) for x in comp["code"].get("coding") or []]
            if (system, "fill") in codes and "valuePeriod" in comp:
                start = comp["valuePeriod"]["start"][:10]
                end = comp["valuePeriod"]["end"][:10]
                days = (dt.date.fromisoformat(end) - dt.date.fromisoformat(start)).days + 1
                fills.append({"date": start, "days_supply": days})
        return fills or None

    return forward, reverse


ADHERENCE_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-medication-adherence"
#: Who told us: the verified SNOMED CT role where there is one, else a local code.
INFORMATION_SOURCES = {"self-report": "patient", "caregiver-report": "caregiver"}


@transform("adherence_extension")
def _adherence_extension():
    """{finding, date_asserted, source} <-> the US Core medication adherence extension
    (medicationAdherence: SNOMED CT adherence finding; dateAsserted; informationSource)."""
    def forward(v, a, c):
        role = INFORMATION_SOURCES.get(v["source"])
        source = coded(c, ["care-team-roles"], role, "adherence-source") if role else \
            {"coding": [{"system": c.terminology.local_system("adherence-source"),
                         "code": v["source"],
                         "display": v["source"].replace("-", " ").capitalize()}]}
        return [{"url": ADHERENCE_URL, "extension": [
            {"url": "medicationAdherence",
             "valueCodeableConcept": coded(c, ["adherence"], v["finding"], "adherence-finding")},
            {"url": "dateAsserted", "valueDateTime": v["date_asserted"]},
            {"url": "informationSource", "valueCodeableConcept": source}]}]

    def reverse(v, a, c):
        ext = next((x for x in v if x.get("url") == ADHERENCE_URL), None)
        if ext is None:
            return None
        parts = {x["url"]: x for x in ext.get("extension") or []}
        finding = decoded(c, ["adherence"], "adherence-finding",
                          parts["medicationAdherence"]["valueCodeableConcept"])
        source_concept = parts["informationSource"]["valueCodeableConcept"]
        local = c.terminology.local_system("adherence-source")
        source = next((x.get("code") for x in source_concept.get("coding") or []
                       if x.get("system") == local), None)
        if source is None:
            role = decoded(c, ["care-team-roles"], "adherence-source", source_concept)
            source = {r: s for s, r in INFORMATION_SOURCES.items()}.get(role, role)
        return {"finding": finding, "date_asserted": parts["dateAsserted"]["valueDateTime"],
                "source": source}

    return forward, reverse
