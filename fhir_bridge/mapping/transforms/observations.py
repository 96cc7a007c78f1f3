"""Assessments and measurements: instrument panels, items, scores, measurement codes, values,
components and profiles."""

from __future__ import annotations

from ...errors import MappingError
from ..catalogs import instruments, measurement_kinds
from ..context import Context
from .answers import item_of_code, score_of
from .codes import coded, decoded
from .quantities import internal_unit, ucum_quantity
from .registry import get_transform, transform


def _instrument_code(ctx: Context, term_key: str) -> dict:
    code = ctx.terminology.table("instruments").get(term_key)
    if code is None:
        raise MappingError(f"instrument code {term_key!r} is not in the terminology", "render")
    return {"coding": [code.coding()], "text": code.display}


def _instrument_of(ctx: Context, concept: dict, part: str) -> str | None:
    for coding in concept.get("coding") or []:
        code = ctx.terminology.table("instruments").lookup(coding.get("system"),
                                                           coding.get("code"))
        if code is not None and code.key.endswith("." + part):
            return code.key[: -len(part) - 1]
    return None


@transform("instrument_panel")
def _instrument_panel():
    def forward(v, a, c):
        return _instrument_code(c, instruments()[v].panel)

    def reverse(v, a, c):
        found = _instrument_of(c, v, "panel")
        if found is None:
            c.unmapped.append(("code", "not a panel of a known instrument"))
        return found

    return forward, reverse


@transform("instrument_total")
def _instrument_total():
    """instrument <-> the code of its total score (read back to tell a panel's total)."""
    return (lambda v, a, c: _instrument_code(c, instruments()[v].total)), \
        (lambda v, a, c: _instrument_of(c, v, "total"))


@transform("score_text")
def _score_text():
    """Reverse only: a total sent as valueString ("12", as US Core's PHQ-9 example does) or
    valueInteger/valueDecimal, as a whole number; anything else is reported."""
    def reverse(v, a, c):
        text = str(v).strip()
        if text.isdigit() or (isinstance(v, float) and v.is_integer()):
            return int(float(text))
        c.unmapped.append(("value[x]", f"total score {text!r} is not a whole number"))
        return None

    return (lambda v, a, c: None), reverse


@transform("instrument_item")
def _instrument_item():
    """[instrument, item number] <-> the item's code: verified LOINC where the terminology has
    it, else local code "<instrument>.item-<n>" in the instrument-item system, with the text."""
    def forward(v, a, c):
        key, number = v
        item = instruments()[key].item(number)
        if item.code:
            return _instrument_code(c, item.code)
        coding = {"system": c.terminology.local_system("instrument-item"),
                  "code": f"{key}.item-{number}", "display": item.text}
        return {"coding": [coding], "text": item.text}

    return forward, (lambda v, a, c: item_of_code(c, v))


@transform("score")
def _score():
    """A whole-number score <-> Quantity in UCUM unit 1 with unit "score"."""
    return (lambda v, a, c: ucum_quantity(v, "score", c)), (lambda v, a, c: int(v["value"]))


@transform("measurement_code")
def _measurement_code():
    def forward(v, a, c):
        return coded(c, ["measurements"], measurement_kinds()[v].code, "measurement")

    def reverse(v, a, c):
        key = decoded(c, ["measurements"], "measurement", v)
        for kind in measurement_kinds().values():
            if kind.code == key:
                return kind.key
        c.unmapped.append(("code", f"{key!r} is not a measurement the bridge monitors"))
        return None

    return forward, reverse


@transform("measurement_category")
def _measurement_category():
    def forward(v, a, c):
        return [coded(c, ["categories"], measurement_kinds()[v].category, "category")]

    return forward, (lambda v, a, c: None)


@transform("measurement_value")
def _measurement_value():
    """[kind, value, unit] -> valueQuantity; read back as (None, value, unit)."""
    def forward(v, a, c):
        _, value, unit = v
        return None if value is None else ucum_quantity(value, unit, c)

    def reverse(v, a, c):
        return None, float(v["value"]), internal_unit(v, c)

    return forward, reverse


@transform("measurement_components")
def _measurement_components():
    """[{name, value}] <-> Observation.component, each coded by its key in measurements.csv
    (blood pressure: LOINC 8480-6 / 8462-4). Read back by that code, or by the local
    measurement-component code older output used."""
    def forward(v, a, c):
        kind = measurement_kinds()[c.record["kind"]]
        codes = {comp["name"]: comp["code"] for comp in kind.components}
        return [{"code": coded(c, ["measurements"], codes[comp["name"]], "measurement-component"),
                 "valueQuantity": ucum_quantity(comp["value"], kind.unit, c)}
                for comp in v]

    def reverse(v, a, c):
        by_code = {comp["code"]: comp["name"] for kind in measurement_kinds().values()
                   for comp in kind.components}
        local = c.terminology.local_system("measurement-component")
        out = []
        for comp in v:
            key = decoded(c, ["measurements"], "measurement-component", comp.get("code") or {})
            name = by_code.get(key)
            if name is None:  # a local code: its code is the component's name
                name = next((x.get("code") for x in comp["code"].get("coding") or []
                             if x.get("system") == local), None)
            if name is None or "valueQuantity" not in comp:
                c.unmapped.append(("component", "a component without a known code or value"))
                continue
            out.append({"name": name, "value": float(comp["valueQuantity"]["value"])})
        return out

    return forward, reverse


@transform("measurement_unit")
def _measurement_unit():
    """Read the unit back from valueQuantity or the first component (forward: nothing)."""
    def reverse(v, a, c):
        return internal_unit(v, c)

    return (lambda v, a, c: None), reverse


@transform("goal_target")
def _goal_target():
    """{measure, comparator, value} <-> Goal.target[0] measure + detailQuantity."""
    def forward(v, a, c):
        key = v["measure"]
        if key in instruments():
            measure = _instrument_code(c, instruments()[key].total)
            unit = "score"
        else:
            kind = measurement_kinds()[key]
            measure = coded(c, ["measurements"], kind.code, "measurement")
            unit = kind.unit
        return {"measure": measure,
                "detailQuantity": ucum_quantity(v["value"], unit, c, v.get("comparator"))}

    def reverse(v, a, c):
        if "measure" not in v:
            return None
        key = _instrument_of(c, v["measure"], "total")
        if key is None:
            code_key = decoded(c, ["measurements"], "measurement", v["measure"])
            key = next((k.key for k in measurement_kinds().values() if k.code == code_key), None)
        if key is None:
            c.unmapped.append(("target.measure", "not an instrument total or a measurement"))
            return None
        quantity = v.get("detailQuantity") or {}
        out = {"measure": key}
        if quantity.get("comparator"):
            out["comparator"] = quantity["comparator"]
        out["value"] = float(quantity["value"])
        return out

    return forward, reverse


@transform("measurement_profile")
def _measurement_profile():
    """Forward only: the kind's specific US Core profile (measurements.yaml ``profile``: body
    weight, BMI, heart rate, blood pressure, ...), else the one for its category (args:
    category -> URL)."""
    def forward(v, a, c):
        kind = measurement_kinds()[v]
        return [kind.profile or a[kind.category]]

    return forward, (lambda v, a, c: None)


@transform("assessment_components")
def _assessment_components():
    """Reverse only: a panel that carries its answers as ``component`` (code + value each)
    instead of hasMember Observations -> (items, total, unread_members). A component whose
    code is no item or total of the panel's instrument is kept as sent, with the reason."""
    def reverse(v, a, c):
        key = _instrument_of(c, (c.resource or {}).get("code") or {}, "panel")
        if key is None:
            return None  # the panel's code rule reports it
        items, total, kept = [], None, []
        for comp in v:
            code = comp.get("code") or {}
            item_key, number = item_of_code(c, code)
            item = instruments()[key].item(number) if item_key == key else None
            if item is not None:
                score, why = score_of(c, item, comp)
                if score is None:
                    c.unmapped.append((f"component ({key} item {number})", why))
                else:
                    items.append({"number": number, "value": score})
            elif _instrument_of(c, code, "total") == key:
                total = _component_total(comp, c)
            else:
                kept.append({"component": comp, "reason": f"{_code_text(code)} is not an item "
                             f"of {key} the bridge knows: kept as sent, not scored"})
        return items, total, kept or None

    return (lambda v, a, c: None), reverse


@transform("kept_components")
def _kept_components():
    """Forward only: the components a panel was read with that the bridge could not read,
    written back as they were sent."""
    def forward(v, a, c):
        return [k["component"] for k in v if "component" in k] or None

    return forward, (lambda v, a, c: None)


def _component_total(comp: dict, ctx: Context) -> int | None:
    for name in ("valueInteger", "valueString", "valueDecimal"):
        if name in comp:
            return get_transform("score_text").reverse(comp[name], {}, ctx)
    if isinstance(comp.get("valueQuantity"), dict):
        return get_transform("score").reverse(comp["valueQuantity"], {}, ctx)
    ctx.unmapped.append(("component (total)", "no whole-number value"))
    return None


def _code_text(code: dict) -> str:
    codings = code.get("coding") or [{}]
    first = codings[0]
    return f"{first.get('system')}|{first.get('code')}" if first.get("code") else \
        repr(code.get("text") or "an uncoded component")
