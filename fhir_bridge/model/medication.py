"""Prescriptions, dose changes (titration steps) and discontinuations.

A dose change is a new prescription that names the one it replaces (``prior_prescription_id``)
and why (``change_reason``); the replaced one is closed (status ``stopped``). A discontinuation
stops a prescription and records when, why and by whom. Both are made through the API's
``dose-changes`` and ``discontinuation`` operations, which write the records in one transaction.
"""

from marshmallow import ValidationError, fields, validate, validates_schema

from ..mapping.valuemaps import words
from .common import AwareDateTime, BaseSchema, Choice, Flag, Id, Int, IsoDate, Line, Number, \
    TermKey, Text, check_period

DOSE_UNITS = ("mg", "mcg", "g", "mL", "tablet", "capsule", "patch")
DISPENSE_UNITS = DOSE_UNITS + ("syringe", "vial", "pen")
ROUTES = ("oral", "sublingual", "intramuscular", "transdermal", "subcutaneous")


class DoseSchema(BaseSchema):
    """A quantity: an amount in its range (model/ranges.py) and a unit from a list."""

    value = Number("dose", required=True)
    unit = Choice(DOSE_UNITS, required=True)


class DispenseQuantitySchema(BaseSchema):
    value = Number("dispense-quantity", required=True)
    unit = Choice(DISPENSE_UNITS, required=True)


class DiscontinuationSchema(BaseSchema):
    date = IsoDate(required=True)
    reason = Text(500, required=True)
    by_id = Id(required=True)


class AdherenceStatementSchema(BaseSchema):
    """The latest adherence report on a prescription (kept there by the store)."""

    finding = Choice(("adherent", "non-adherent", "not-taking"), required=True)
    date_asserted = AwareDateTime(required=True)
    source = Choice(("self-report", "pill-count", "refill-data", "caregiver-report"),
                    required=True)


class PrescriptionSchema(BaseSchema):
    id = Id(required=True)
    patient_id = Id(required=True)
    prescriber_id = Id(required=True)
    status = Choice(words("prescription-status"), required=True)
    status_reason = Text(500)
    authored_on = AwareDateTime(required=True)
    drug = TermKey("rxnorm-drugs", 100, required=True)  # ingredient, e.g. "sertraline"
    product = Line(200)  # the product as prescribed, e.g. "sertraline 50 mg oral tablet"
    dose = fields.Nested(DoseSchema, required=True)
    route = Choice(ROUTES)
    frequency = Int("frequency", required=True)
    period = Number("period", load_default=1.0)
    period_unit = Choice(words("period-unit"), load_default="day")
    time_of_day = fields.List(Choice(words("time-of-day")), validate=validate.Length(max=6))
    as_needed = Flag(load_default=False)
    as_needed_reason = Text(200)
    start_date = IsoDate(required=True)
    end_date = IsoDate()
    indication_diagnosis_id = Id()
    sig = Text(500)
    instructions = Text(1000)
    refills = Int("refills")
    quantity = fields.Nested(DispenseQuantitySchema)
    days_supply = Int("days-supply")
    prior_prescription_id = Id()
    change_reason = Text(500)
    discontinuation = fields.Nested(DiscontinuationSchema)
    adherence = fields.Nested(AdherenceStatementSchema)

    @validates_schema
    def _consistent(self, data, **_):
        check_period(data.get("start_date"), data.get("end_date"), "end_date")
        if data.get("as_needed_reason") and not data.get("as_needed"):
            raise ValidationError("needs as_needed: true", "as_needed_reason")
        if data.get("prior_prescription_id") and not data.get("change_reason"):
            raise ValidationError("is required when prior_prescription_id is given",
                                  "change_reason")
        if data.get("change_reason") and not data.get("prior_prescription_id"):
            raise ValidationError("is only for dose changes (needs prior_prescription_id)",
                                  "change_reason")
        if data.get("discontinuation") and data.get("status") != "stopped":
            raise ValidationError("a discontinued prescription has status 'stopped'", "status")


class DoseChangeSchema(BaseSchema):
    """Input of POST /api/v1/prescriptions/{id}/dose-changes: the new prescription's id and dose."""

    id = Id(required=True)
    dose = fields.Nested(DoseSchema, required=True)
    frequency = Int("frequency")
    period = Number("period")
    period_unit = Choice(words("period-unit"))
    time_of_day = fields.List(Choice(words("time-of-day")), validate=validate.Length(max=6))
    effective_date = IsoDate(required=True)
    reason = Text(500, required=True)
    changed_by_id = Id(required=True)
    authored_on = AwareDateTime(required=True)
    sig = Text(500)
    instructions = Text(1000)
    product = Line(200)
    quantity = fields.Nested(DispenseQuantitySchema)
    refills = Int("refills")
    days_supply = Int("days-supply")
