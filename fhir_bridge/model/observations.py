"""Rating-scale assessments, side-effect reports, adherence reports and measurements."""

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from ..clinical.adherence import finding, proportion_of_days_covered
from ..clinical.scoring import read
from ..mapping.catalogs import instruments, measurement_kinds
from ..mapping.valuemaps import words
from .common import AwareDateTime, BaseSchema, Choice, Id, Int, IsoDate, Line, Number, \
    PersonRefSchema, String, TermKey, Text, check_period

SEVERITIES = ("mild", "moderate", "severe")
SIDE_EFFECT_ACTIONS = ("none", "monitor", "dose-reduced", "dose-held", "switched", "discontinued",
                       "treated")
# How a side effect turned out (the outcomes FHIR's AdverseEvent.outcome names, as local
# words: that code system is not in the reference packages). Resolved ones have a date.
SIDE_EFFECT_OUTCOMES = ("ongoing", "recovering", "resolved", "resolved-with-sequelae", "unknown")
RESOLVED_OUTCOMES = ("resolved", "resolved-with-sequelae")
ADHERENCE_SOURCES = ("self-report", "pill-count", "refill-data", "caregiver-report")
ADHERENCE_FINDINGS = ("adherent", "non-adherent", "not-taking")


class ItemAnswerSchema(BaseSchema):
    number = Int("item-number", required=True)
    value = Int("item-value", required=True)


class UnreadMemberSchema(BaseSchema):
    """A member of a panel read from another system that the bridge could not read (an item
    whose code it does not know, or one it could not fetch): kept as sent, with the reason, and
    written back as it was (a hasMember reference, or the component itself)."""

    reference = Line(300)
    component = fields.Dict()
    reason = Text(500, required=True)


class AssessmentSchema(BaseSchema):
    id = Id(required=True)
    patient_id = Id(required=True)
    instrument = Choice(list(instruments()), required=True)
    status = Choice(words("observation-status"), load_default="final")
    effective = AwareDateTime(required=True)
    administered_by_id = Id()
    items = fields.List(fields.Nested(ItemAnswerSchema), required=True,
                        validate=validate.Length(max=30))
    # Members the bridge could not read (only on panels read from other systems): then the
    # answers may be incomplete, and the total, if the instrument sums one, is the sender's.
    unread_members = fields.List(fields.Nested(UnreadMemberSchema),
                                 validate=validate.Length(min=1, max=30))
    # "questionnaire-response": the answers came as a QuestionnaireResponse, which the
    # bridge serves beside the Observations (fhir_bridge/questionnaires).
    received_as = Choice(["questionnaire-response"])
    total = Int("total")
    note = Text(2000)
    # Derived from the answers by the instrument's scoring rules (mappings/instruments.yaml);
    # a client may send them back, but only as they are.
    band = String()
    risk = String()
    alerts = fields.List(String())

    @validates_schema(skip_on_field_errors=False)
    def _answers_fit_the_instrument(self, data, **_):
        instrument = instruments().get(data.get("instrument"))
        if instrument is None or "items" not in data:
            return
        if any(not isinstance(a, dict) or "number" not in a or "value" not in a
               for a in data["items"]):
            return  # an answer without a valid number or value: its field errors name it
        errors: dict = {}
        seen = set()
        for index, answer in enumerate(data["items"]):
            item = instrument.item(answer["number"])
            if item is None:
                errors[f"items[{index}].number"] = [
                    f"{instrument.key} has no item {answer['number']}"]
            elif answer["number"] in seen:
                errors[f"items[{index}].number"] = ["is answered twice"]
            elif not item.min <= answer["value"] <= item.max:
                errors[f"items[{index}].value"] = [
                    f"must be between {item.min} and {item.max} for {instrument.key} "
                    f"item {item.number}"]
            seen.add(answer["number"])
        answers = {a["number"]: a["value"] for a in data["items"]}
        for index, answer in enumerate(data["items"]):
            item = instrument.item(answer["number"])
            if item is not None and item.asked_if is not None:
                opener, needed = item.asked_if
                if answers.get(opener) != needed:
                    errors[f"items[{index}].number"] = [
                        f"item {item.number} is asked only when item {opener} is {needed}"]
        missing = [i.number for i in instrument.items if not i.optional and i.number not in seen]
        partial = bool(data.get("unread_members"))
        if partial and instrument.total and "total" not in data:
            errors["total"] = ["is needed when members could not be read (unread_members)"]
        if missing and not partial:
            errors["items"] = [f"{instrument.key} needs answers to items "
                               f"{', '.join(map(str, missing))}"]
        if errors:
            raise ValidationError(errors)
        if instrument.total and "total" in data:
            expected = sum(a["value"] for a in data["items"]
                           if instrument.item(a["number"]).in_total)
            if partial:  # the unread answers may add up to anything between 0 and their max
                open_max = sum(i.max for i in instrument.items
                               if i.in_total and i.number not in seen)
                if not expected <= data["total"] <= expected + open_max:
                    raise ValidationError(f"is {data['total']} but the answers read add up "
                                          f"to {expected} and the unread to at most "
                                          f"{open_max}", "total")
            elif data["total"] != expected:
                raise ValidationError(f"is {data['total']} but the item answers add up to "
                                      f"{expected}", "total")
        if not instrument.total and "total" in data:
            raise ValidationError(f"{instrument.key} has no summed total", "total")

    @post_load
    def _with_total_and_reading(self, data, **_):
        """The total score, band, risk level and alerts are part of the record: computed from
        the items; when the client sends them they must agree."""
        instrument = instruments()[data["instrument"]]
        data["items"] = sorted(data.get("items") or [], key=lambda a: a["number"])
        if instrument.total and "total" not in data:
            data["total"] = sum(a["value"] for a in data["items"]
                                if instrument.item(a["number"]).in_total)
        reading = read(instrument, {a["number"]: a["value"] for a in data["items"]},
                       data.get("total"))
        derived = {"band": reading.band, "risk": reading.risk,
                   "alerts": [a.alert for a in reading.alerts] or None}
        errors = {name: [f"is {value!r}, which is derived from the answers"]
                  for name, value in ((n, data.get(n)) for n in derived)
                  if value is not None and value != derived[name]}
        if errors:
            raise ValidationError(errors)
        for name, value in derived.items():
            if value is None:
                data.pop(name, None)
            else:
                data[name] = value
        return data



class SideEffectSchema(BaseSchema):
    id = Id(required=True)
    patient_id = Id(required=True)
    effect = TermKey("side-effects", required=True)  # a table key, or free text
    severity = Choice(SEVERITIES, required=True)
    onset_date = IsoDate(required=True)
    recorded_at = AwareDateTime(required=True)
    suspected_prescription_id = Id()
    action_taken = Choice(SIDE_EFFECT_ACTIONS, required=True)
    reported_by = fields.Nested(PersonRefSchema, required=True)
    status = Choice(words("observation-status"), load_default="final")
    outcome = Choice(SIDE_EFFECT_OUTCOMES)  # how it ended, or that it goes on
    resolution_date = IsoDate()  # the day it resolved: with a resolved outcome only
    note = Text(2000)

    @validates_schema
    def _resolution(self, data, **_):
        check_period(data.get("onset_date"), data.get("resolution_date"), "resolution_date")
        resolved = data.get("outcome") in RESOLVED_OUTCOMES
        if data.get("resolution_date") and not resolved:
            raise ValidationError("needs outcome resolved or resolved-with-sequelae",
                                  "resolution_date")
        if resolved and not data.get("resolution_date"):
            raise ValidationError("is required when the outcome is "
                                  f"{data['outcome']}", "resolution_date")


class FillSchema(BaseSchema):
    """One pharmacy fill: the day it was dispensed and for how many days."""

    date = IsoDate(required=True)
    days_supply = Int("days-supply", required=True)


class AdherenceSchema(BaseSchema):
    id = Id(required=True)
    patient_id = Id(required=True)
    prescription_id = Id(required=True)
    period_start = IsoDate(required=True)
    period_end = IsoDate(required=True)
    source = Choice(ADHERENCE_SOURCES, required=True)
    doses_prescribed = Int("doses-prescribed")
    doses_taken = Int("doses-taken")
    proportion_percent = Number("percent")
    finding = Choice(ADHERENCE_FINDINGS)
    fills = fields.List(fields.Nested(FillSchema), validate=validate.Length(min=1, max=60))
    recorded_at = AwareDateTime(required=True)
    reported_by = fields.Nested(PersonRefSchema)
    status = Choice(words("observation-status"), load_default="final")
    note = Text(2000)

    @validates_schema
    def _consistent(self, data, **_):
        check_period(data.get("period_start"), data.get("period_end"), "period_end")
        prescribed, taken = data.get("doses_prescribed"), data.get("doses_taken")
        if (prescribed is None) != (taken is None):
            raise ValidationError("doses_prescribed and doses_taken go together",
                                  "doses_taken" if taken is None else "doses_prescribed")
        if prescribed is not None and taken > prescribed:
            raise ValidationError("cannot exceed doses_prescribed", "doses_taken")
        if data.get("fills") is not None:
            if data.get("source") != "refill-data":
                raise ValidationError("fills come with source refill-data", "fills")
            if prescribed is not None:
                raise ValidationError("give fills or doses, not both", "fills")
        if prescribed is None and data.get("proportion_percent") is None \
                and data.get("finding") is None and data.get("fills") is None:
            raise ValidationError("give doses, fills, proportion_percent or finding",
                                  "proportion_percent")

    @post_load
    def _derive(self, data, **_):
        """The proportion from doses or fills (PDC), and the finding from the proportion."""
        derived = None
        if data.get("doses_prescribed"):
            derived = round(100.0 * data["doses_taken"] / data["doses_prescribed"], 1)
        elif data.get("fills"):
            derived = proportion_of_days_covered(data["period_start"], data["period_end"],
                                                 data["fills"])
            data["fills"] = sorted(data["fills"], key=lambda f: f["date"])
        if derived is not None:
            given = data.get("proportion_percent")
            if given is not None and abs(given - derived) > 0.05:
                raise ValidationError(f"is {given} but the data give {derived}",
                                      "proportion_percent")
            data["proportion_percent"] = derived
        if data.get("finding") is None:
            data["finding"] = finding(data["proportion_percent"])
        return data


class ComponentValueSchema(BaseSchema):
    name = Line(40, required=True)
    value = Number("measurement", required=True)


class MeasurementSchema(BaseSchema):
    id = Id(required=True)
    patient_id = Id(required=True)
    kind = Choice(list(measurement_kinds()), required=True)
    value = Number("measurement")
    components = fields.List(fields.Nested(ComponentValueSchema))
    unit = Line(20, required=True)
    effective = AwareDateTime(required=True)
    status = Choice(words("observation-status"), load_default="final")
    related_prescription_id = Id()
    performer_id = Id()
    note = Text(2000)

    @validates_schema
    def _fits_the_kind(self, data, **_):
        kind = measurement_kinds().get(data.get("kind"))
        if kind is None:
            return
        if data.get("unit") != kind.unit:
            raise ValidationError(f"{kind.key} is recorded in {kind.unit}", "unit")
        if kind.components:
            names = [c["name"] for c in kind.components]
            given = [c["name"] for c in data.get("components") or []]
            if sorted(given) != sorted(names):
                raise ValidationError(f"{kind.key} needs components {', '.join(names)}",
                                      "components")
            if "value" in data:
                raise ValidationError(f"{kind.key} has components, not a value", "value")
        else:
            if "value" not in data:
                raise ValidationError("is required", "value")
            if data.get("components"):
                raise ValidationError(f"{kind.key} has no components", "components")
