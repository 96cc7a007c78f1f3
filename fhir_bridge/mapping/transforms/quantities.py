"""Quantities and timing: UCUM quantities, as-needed, dosage schedules."""

from __future__ import annotations

from typing import Any

from ..context import Context
from .registry import UCUM, transform


#: The UCUM unit of a count ("30 tablets") or a score: the word itself goes in Quantity.unit.
COUNT = "1"


def ucum_quantity(value: float, unit: str, ctx: Context, comparator: str | None = None) -> dict:
    code = COUNT if unit in ctx.value_maps["count-units"].forward \
        else ctx.value_maps["units"].to_fhir(unit)
    quantity: dict[str, Any] = {"value": int(value) if float(value).is_integer() else value}
    if comparator:
        quantity["comparator"] = comparator
    quantity.update({"unit": unit, "system": UCUM, "code": code})
    return quantity


def internal_unit(quantity: dict, ctx: Context) -> str | None:
    if quantity.get("system") == UCUM and quantity.get("code") == COUNT:
        return quantity.get("unit")
    if quantity.get("system") == UCUM and quantity.get("code") in ctx.value_maps["units"].reverse:
        return ctx.value_maps["units"].to_internal(quantity["code"])
    return quantity.get("unit")


@transform("quantity")
def _quantity():
    """{value, unit} <-> Quantity with its UCUM code."""
    def forward(v, a, c):
        return ucum_quantity(v["value"], v["unit"], c)

    def reverse(v, a, c):
        return {"value": float(v["value"]), "unit": internal_unit(v, c)}

    return forward, reverse


@transform("as_needed")
def _as_needed():
    """[as_needed, as_needed_reason] <-> Dosage.asNeeded[x] (merged into the Dosage)."""
    def forward(v, a, c):
        flag, reason = v
        if reason:
            return {"asNeededCodeableConcept": {"text": reason}}
        return {"asNeededBoolean": bool(flag)}

    def reverse(v, a, c):
        if "asNeededCodeableConcept" in v:
            return True, v["asNeededCodeableConcept"].get("text")
        if "asNeededBoolean" in v:
            return v["asNeededBoolean"], None
        return None, None

    return forward, reverse


@transform("schedule")
def _schedule():
    """An activity schedule <-> Timing (repeat frequency/period/periodUnit within boundsPeriod)."""
    def forward(v, a, c):
        bounds = {"start": v["start"]}
        if v.get("end"):
            bounds["end"] = v["end"]
        period = v["period"]
        return {"repeat": {"boundsPeriod": bounds, "frequency": v.get("frequency", 1),
                           "period": int(period) if float(period).is_integer() else period,
                           "periodUnit": c.value_maps["period-unit"].to_fhir(v["period_unit"])}}

    def reverse(v, a, c):
        repeat = v.get("repeat") or {}
        bounds = repeat.get("boundsPeriod") or {}
        if not (repeat.get("period") and repeat.get("periodUnit") and bounds.get("start")):
            c.unmapped.append(("scheduledTiming", "not a repeating schedule (repeat.period, "
                                                  "periodUnit and boundsPeriod.start)"))
            return None
        out = {"frequency": repeat.get("frequency", 1), "period": float(repeat["period"]),
               "period_unit": c.value_maps["period-unit"].to_internal(repeat["periodUnit"]),
               "start": bounds["start"][:10]}
        if bounds.get("end"):
            out["end"] = bounds["end"][:10]
        return out

    return forward, reverse
