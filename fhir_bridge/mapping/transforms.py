"""Named transforms used by the mapping files: each converts one value both ways.

A transform is a pair of functions ``forward(value, args, ctx) -> fhir`` and
``reverse(fhir, args, ctx) -> value``. ``None`` means "nothing to write". When a rule names
several internal fields, ``value`` is a tuple and ``reverse`` returns a tuple of the same length.
These are the shared partials of the mapping language; mapping files say which one to use.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import MappingError
from .catalogs import instruments, measurement_kinds
from .context import Context
from .terminology import local_code

UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Transform:
    forward: Callable[[Any, dict, Context], Any]
    reverse: Callable[[Any, dict, Context], Any]


TRANSFORMS: dict[str, Transform] = {}


def transform(name: str):
    """Register a class-less pair: decorate a function returning (forward, reverse)."""

    def register(factory):
        forward, reverse = factory()
        TRANSFORMS[name] = Transform(forward, reverse)
        return factory

    return register


def get_transform(name: str) -> Transform:
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise MappingError(f"unknown transform {name!r}", "load") from None


# --- scalars -------------------------------------------------------------------------------

@transform("copy")
def _copy():
    return (lambda v, a, c: v), (lambda v, a, c: v)


@transform("date")
def _date():
    """An internal date. Read back from a FHIR date or dateTime (the date part)."""
    return (lambda v, a, c: v), (lambda v, a, c: v[:10] if isinstance(v, str) else None)


@transform("number")
def _number():
    """Decimals as floats internally; whole numbers are written without a fraction."""
    def forward(v, a, c):
        return int(v) if float(v).is_integer() else v

    return forward, (lambda v, a, c: float(v))


@transform("text_concept")
def _text_concept():
    """Free text as a CodeableConcept with only text."""
    return (lambda v, a, c: {"text": v}), (lambda v, a, c: v.get("text"))


@transform("annotation")
def _annotation():
    return (lambda v, a, c: [{"text": v}]), (lambda v, a, c: v[0].get("text") if v else None)


@transform("value_map")
def _value_map():
    """A word through a value map of value-maps.yaml; lists are mapped item by item."""
    def forward(v, a, c):
        vm = c.value_maps[a["map"]]
        return [vm.to_fhir(x) for x in v] if isinstance(v, list) else vm.to_fhir(v)

    def reverse(v, a, c):
        vm = c.value_maps[a["map"]]
        return [vm.to_internal(x) for x in v] if isinstance(v, list) else vm.to_internal(v)

    return forward, reverse


@transform("boolean_flag")
def _boolean_flag():
    """Internal True is written as the constant in args; anything read back is True."""
    return (lambda v, a, c: a["value"] if v else None), (lambda v, a, c: True)


# --- codes ---------------------------------------------------------------------------------

def coded(ctx: Context, tables: list[str], key: str, local: str, text: bool = True,
          display: str | None = None) -> dict:
    """A CodeableConcept for key: the verified code when a table holds it, else a local code
    (the key as code and display, unless a display is given)."""
    for name in tables:
        code = ctx.terminology.table(name).get(key)
        if code is not None:
            return {"coding": [code.coding()], "text": code.display} if text \
                else {"coding": [code.coding()]}
    shown = display or key
    coding = {"system": ctx.terminology.local_system(local), "code": local_code(key),
              "display": shown}
    return {"coding": [coding], "text": shown} if text else {"coding": [coding]}


def decoded(ctx: Context, tables: list[str], local: str, concept: dict) -> str | None:
    """The internal key of a CodeableConcept: a table key, else a local code's display."""
    codings = concept.get("coding") or []
    for coding in codings:
        for name in tables:
            code = ctx.terminology.table(name).lookup(coding.get("system"), coding.get("code"))
            if code is not None:
                return code.key
    local_system = ctx.terminology.local_system(local)
    for coding in codings:
        if coding.get("system") == local_system:
            return coding.get("display") or coding.get("code")
    return concept.get("text") or (codings[0].get("display") if codings else None)


def _tables(args: dict) -> list[str]:
    tables = args.get("tables") or [args["table"]]
    return list(tables)


@transform("concept")
def _concept():
    """A key of terminology tables (args.table or args.tables) <-> CodeableConcept.

    Keys the tables do not hold are written as a local code (args.local names the local code
    system) with the key as display and text: never a guessed code."""
    def forward(v, a, c):
        return coded(c, _tables(a), v, a.get("local", a.get("table", "concept")))

    def reverse(v, a, c):
        return decoded(c, _tables(a), a.get("local", a.get("table", "concept")), v)

    return forward, reverse


@transform("local_concept")
def _local_concept():
    """A word of a closed internal list as a local code (args.system) with a readable display."""
    def forward(v, a, c):
        display = v.replace("-", " ").capitalize()
        return {"coding": [{"system": c.terminology.local_system(a["system"]), "code": v,
                            "display": display}], "text": display}

    def reverse(v, a, c):
        system = c.terminology.local_system(a["system"])
        for coding in v.get("coding") or []:
            if coding.get("system") == system:
                return coding.get("code")
        c.unmapped.append((a["system"], f"no {system} coding"))
        return None

    return forward, reverse


@transform("medication")
def _medication():
    """[drug, product] <-> medicationCodeableConcept. The drug is an RxNorm ingredient when the
    table holds it, else a local code; the product, when given, is the concept's text."""
    def forward(v, a, c):
        drug, product = v
        concept = coded(c, ["rxnorm-drugs"], drug, "medication", text=False)
        if product:
            concept["text"] = product
        elif concept["coding"][0]["system"] != "http://www.nlm.nih.gov/research/umls/rxnorm":
            concept["text"] = drug
        return concept

    def reverse(v, a, c):
        drug = decoded(c, ["rxnorm-drugs"], "medication", {"coding": v.get("coding") or []})
        text = v.get("text")
        if drug is None:
            return text, None
        product = text if text and text != drug else None
        return drug, product

    return forward, reverse


# --- identity and references ---------------------------------------------------------------

@transform("identifier")
def _identifier():
    """The internal id <-> Identifier list [{system: <base>/<concept>, value: id}]."""
    def forward(v, a, c):
        return [{"system": c.mapper.identifier_system(a["concept"]), "value": v}]

    def reverse(v, a, c):
        system = c.mapper.identifier_system(a["concept"])
        for identifier in v or []:
            if identifier.get("system") == system:
                return identifier.get("value")
        if a.get("or_first_foreign"):  # an EHR's own identifier (e.g. its MRN) stands in
            bridge_systems = c.mapper.identifier_system("")
            for identifier in v or []:
                if not str(identifier.get("system", "")).startswith(bridge_systems) \
                        and identifier.get("value"):
                    return identifier["value"]
        return None

    return forward, reverse


@transform("reference")
def _reference():
    """An internal id of concept args.kind <-> Reference to the resource it maps to."""
    def forward(v, a, c):
        return {"reference": c.mapper.reference(a["kind"], v)}

    def reverse(v, a, c):
        return c.mapper.internal_id(a["kind"], v.get("reference"), c)

    return forward, reverse


@transform("references")
def _references():
    def forward(v, a, c):
        return [{"reference": c.mapper.reference(a["kind"], x)} for x in v] or None

    def reverse(v, a, c):
        return [c.mapper.internal_id(a["kind"], r.get("reference"), c) for r in v]

    return forward, reverse


PERSON_KINDS = {"patient": "patient", "practitioner": "practitioner", "caregiver": "caregiver"}


def _person_forward(v, c):
    return {"reference": c.mapper.reference(PERSON_KINDS[v["type"]], v["id"])}


def _person_reverse(ref, c):
    reference = ref.get("reference") or ""
    for person_type, kind in PERSON_KINDS.items():
        if reference.startswith(c.mapper.resource_type(kind) + "/"):
            return {"type": person_type, "id": c.mapper.internal_id(kind, reference, c)}
    c.unmapped.append(("reference", f"{reference!r} is not a patient, practitioner or caregiver"))
    return None


@transform("person_ref")
def _person_ref():
    """{type: patient|practitioner|caregiver, id} <-> Reference."""
    return (lambda v, a, c: _person_forward(v, c)), (lambda v, a, c: _person_reverse(v, c))


@transform("person_refs")
def _person_refs():
    def reverse(v, a, c):
        return [p for p in (_person_reverse(r, c) for r in v) if p is not None]

    return (lambda v, a, c: [_person_forward(x, c) for x in v] or None), reverse


# --- quantities and timing -----------------------------------------------------------------

def ucum_quantity(value: float, unit: str, ctx: Context, comparator: str | None = None) -> dict:
    code = ctx.value_maps["units"].to_fhir(unit)
    quantity: dict[str, Any] = {"value": int(value) if float(value).is_integer() else value}
    if comparator:
        quantity["comparator"] = comparator
    quantity.update({"unit": unit, "system": UCUM, "code": code})
    return quantity


def internal_unit(quantity: dict, ctx: Context) -> str | None:
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
        out = {"frequency": repeat.get("frequency", 1), "period": float(repeat["period"]),
               "period_unit": c.value_maps["period-unit"].to_internal(repeat["periodUnit"]),
               "start": bounds["start"][:10]}
        if bounds.get("end"):
            out["end"] = bounds["end"][:10]
        return out

    return forward, reverse


# --- assessments and measurements ----------------------------------------------------------

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
    return (lambda v, a, c: _instrument_code(c, instruments()[v].total)), (lambda v, a, c: None)


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

    def reverse(v, a, c):
        for coding in v.get("coding") or []:
            code = c.terminology.table("instruments").lookup(coding.get("system"),
                                                             coding.get("code"))
            if code is not None and ".item-" in code.key:
                key, number = code.key.rsplit(".item-", 1)
                return key, int(number)
            if coding.get("system") == c.terminology.local_system("instrument-item"):
                key, number = coding["code"].rsplit(".item-", 1)
                return key, int(number)
        return None, None

    return forward, reverse


@transform("score")
def _score():
    """A whole-number score <-> Quantity in UCUM {score}."""
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
    """[{name, value}] <-> Observation.component with local codes (text per measurements.yaml)."""
    def forward(v, a, c):
        kind = measurement_kinds()[c.record["kind"]]
        texts = {comp["name"]: comp["text"] for comp in kind.components}
        system = c.terminology.local_system("measurement-component")
        return [{"code": {"coding": [{"system": system, "code": comp["name"],
                                      "display": texts[comp["name"]]}],
                          "text": texts[comp["name"]]},
                 "valueQuantity": ucum_quantity(comp["value"], kind.unit, c)}
                for comp in v]

    def reverse(v, a, c):
        system = c.terminology.local_system("measurement-component")
        out = []
        for comp in v:
            coding = next((x for x in comp["code"].get("coding") or []
                           if x.get("system") == system), None)
            if coding is None or "valueQuantity" not in comp:
                c.unmapped.append(("component", "a component without a local code or value"))
                continue
            out.append({"name": coding["code"], "value": float(comp["valueQuantity"]["value"])})
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


# --- care plan -----------------------------------------------------------------------------

@transform("activity_reference")
def _activity_reference():
    """[kind, prescription_id] <-> activity.reference (medication activities only)."""
    def forward(v, a, c):
        kind, prescription_id = v
        if kind != "medication":
            return None
        return {"reference": c.mapper.reference("prescription", prescription_id)}

    def reverse(v, a, c):
        return "medication", c.mapper.internal_id("prescription", v.get("reference"), c)

    return forward, reverse


@transform("activity_code")
def _activity_code():
    """[kind, topic, measure] <-> activity.detail.code: local activity-kind coding, topic as
    text; a monitoring activity's test adds the measurement's coding (verified LOINC or local)."""
    def forward(v, a, c):
        kind, topic, measure = v
        if kind == "medication":
            return None
        display = kind.replace("-", " ").capitalize()
        codings = [{"system": c.terminology.local_system("care-plan-activity"),
                    "code": kind, "display": display}]
        if measure is not None:
            codings += coded(c, ["measurements"], measurement_kinds()[measure].code,
                             "measurement")["coding"]
        return {"coding": codings, "text": topic}

    def reverse(v, a, c):
        system = c.terminology.local_system("care-plan-activity")
        kind = next((x["code"] for x in v.get("coding") or [] if x.get("system") == system),
                    None)
        if kind is None:
            c.unmapped.append(("activity.detail.code", "no care-plan-activity coding"))
        measure = None
        others = [x for x in v.get("coding") or [] if x.get("system") != system]
        if others:
            key = decoded(c, ["measurements"], "measurement", {"coding": others})
            measure = next((k.key for k in measurement_kinds().values() if k.code == key),
                           None)
            if measure is None:
                c.unmapped.append(("activity.detail.code", f"{key!r} is not a measurement"))
        return kind, v.get("text"), measure

    return forward, reverse


@transform("monitored_prescription")
def _monitored_prescription():
    """A monitoring item's prescription <-> an extension (args.url) of activity.detail with a
    Reference to the MedicationRequest: R4 detail.reasonReference may not point at one."""
    def forward(v, a, c):
        return [{"url": a["url"],
                 "valueReference": {"reference": c.mapper.reference("prescription", v)}}]

    def reverse(v, a, c):
        ext = next((x for x in v if x.get("url") == a["url"]), None)
        if ext is None:
            return None
        return c.mapper.internal_id("prescription", ext["valueReference"].get("reference"), c)

    return forward, reverse


_OVERDUE = re.compile(r"^Overdue since (\d{4}-\d\d-\d\d)$")


@transform("overdue_reason")
def _overdue_reason():
    """overdue_since <-> activity.detail.statusReason (local code "overdue", the date in the
    text)."""
    def forward(v, a, c):
        return {"coding": [{"system": c.terminology.local_system("activity-status-reason"),
                            "code": "overdue", "display": "Overdue"}],
                "text": f"Overdue since {v}"}

    def reverse(v, a, c):
        found = _OVERDUE.match(v.get("text") or "")
        if found is None:
            c.unmapped.append(("activity.detail.statusReason", "not an overdue reason"))
            return None
        return found.group(1)

    return forward, reverse


@transform("overdue_flag_status")
def _overdue_flag_status():
    """Forward only: an overdue item's Flag is active until the item is done."""
    def forward(v, a, c):
        return "inactive" if v in ("completed", "cancelled", "stopped") else "active"

    return forward, (lambda v, a, c: None)


@transform("overdue_flag_code")
def _overdue_flag_code():
    """Forward only: [topic, due_by] as the Flag's code (local code, readable text)."""
    def forward(v, a, c):
        topic, due_by = v
        text = f"Monitoring overdue: {topic} (due {due_by})"
        return {"coding": [{"system": c.terminology.local_system("clinical-alert"),
                            "code": "monitoring-overdue", "display": "Monitoring overdue"}],
                "text": text}

    return forward, (lambda v, a, c: None)


@transform("safety_rule_code")
def _safety_rule_code():
    """[rule, text] <-> DetectedIssue.code: local code (system medication-safety-rule)."""
    def forward(v, a, c):
        rule, text = v
        return {"coding": [{"system": c.terminology.local_system("medication-safety-rule"),
                            "code": rule, "display": text}], "text": text}

    def reverse(v, a, c):
        system = c.terminology.local_system("medication-safety-rule")
        coding = next((x for x in v.get("coding") or [] if x.get("system") == system), None)
        if coding is None:
            c.unmapped.append(("code", "no medication-safety-rule coding"))
            return None, v.get("text")
        return coding.get("code"), v.get("text") or coding.get("display")

    return forward, reverse


@transform("fixed_by_word")
def _fixed_by_word():
    """Forward only: a word looked up in args.map (e.g. activity kind -> detail.kind)."""
    return (lambda v, a, c: a["map"].get(v)), (lambda v, a, c: None)


@transform("careplan_narrative")
def _careplan_narrative():
    """Forward only: the CarePlan's generated narrative (title, period, goals, activities)."""
    def forward(v, a, c):
        plan = c.record
        esc = html.escape
        parts = [f"<p><b>{esc(plan['title'])}</b> ({esc(plan['status'])}), from "
                 f"{esc(plan['period_start'])}"
                 + (f" to {esc(plan['period_end'])}" if plan.get("period_end") else "") + "</p>"]
        if plan.get("description"):
            parts.append(f"<p>{esc(plan['description'])}</p>")
        if plan.get("goals"):
            parts.append("<p>Goals:</p><ul>" + "".join(
                f"<li>{esc(g['description'])} ({esc(g['status'])})</li>" for g in plan["goals"])
                + "</ul>")
        if plan.get("activities"):
            items = []
            for act in plan["activities"]:
                if act["kind"] == "medication":
                    items.append(f"<li>Medication: prescription {esc(act['prescription_id'])}</li>")
                else:
                    label = act["kind"].replace("-", " ").capitalize()
                    due = f", due {esc(act['due_by'])}" if act.get("due_by") else ""
                    late = f", overdue since {esc(act['overdue_since'])}" \
                        if act.get("overdue_since") else ""
                    items.append(f"<li>{esc(label)}: {esc(act['topic'])} "
                                 f"({esc(act['status'])}{due}{late})</li>")
            parts.append("<p>Activities:</p><ul>" + "".join(items) + "</ul>")
        return {"status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">' + "".join(parts) + "</div>"}

    return forward, (lambda v, a, c: None)


# --- small FHIR data types -----------------------------------------------------------------

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


@transform("measurement_profile")
def _measurement_profile():
    """Forward only: the US Core profile for the kind's category (args: category -> URL).
    Kinds with components (blood pressure) claim none: their parts have local codes."""
    def forward(v, a, c):
        kind = measurement_kinds()[v]
        if kind.components:
            return None
        return [a[kind.category]]

    return forward, (lambda v, a, c: None)


# --- scoring ---------------------------------------------------------------------------------

def _reading(record: dict):
    from ..clinical.scoring import read

    parent = record.get("_parent", record)
    instrument = instruments()[parent["instrument"]]
    return read(instrument, {a["number"]: a["value"] for a in parent["items"]},
                parent.get("total"))


@transform("score_band")
def _score_band():
    """Forward only: the band of a total as Observation.interpretation (local code
    "<instrument>.<band>" with the band's text from the scoring rules)."""
    def forward(v, a, c):
        instrument, band = v
        if band is None:
            return None
        text = _reading(c.record).band_text
        return [{"coding": [{"system": c.terminology.local_system("score-band"),
                             "code": f"{instrument}.{band}", "display": text}], "text": text}]

    return forward, (lambda v, a, c: None)


@transform("risk_level")
def _risk_level():
    """Forward only: a screener's risk level as a CodeableConcept (local code, rule text)."""
    def forward(v, a, c):
        text = _reading(c.record).risk_text
        return {"coding": [{"system": c.terminology.local_system("suicide-risk-level"),
                            "code": v, "display": text}], "text": text}

    return forward, (lambda v, a, c: None)


@transform("alert_code")
def _alert_code():
    """Forward only: an alert as a CodeableConcept (local code, the rule's text)."""
    def forward(v, a, c):
        text = next(x.text for x in _reading(c.record).alerts if x.alert == v)
        return {"coding": [{"system": c.terminology.local_system("clinical-alert"), "code": v,
                            "display": text}], "text": text}

    return forward, (lambda v, a, c: None)


# --- adherence -------------------------------------------------------------------------------

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
