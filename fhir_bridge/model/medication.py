"""Prescriptions, dose changes (titration steps) and discontinuations.

A dose change is a new prescription that names the one it replaces (``prior_prescription_id``)
and why (``change_reason``); the replaced one is closed (status ``stopped``). A discontinuation
stops a prescription and records when, why and by whom. Both are made through the API's
``dose-changes`` and ``discontinuation`` operations, which write the records in one transaction.
"""

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from ..mapping import drugs
from ..mapping.terminology import local_code
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


class DrugCodingSchema(BaseSchema):
    """A coding of the drug as the sender sent it (RxNorm SCD/SBD/ingredient or another
    system): kept as the sender's assertion, beside the bridge's own ingredient coding."""

    system = Line(200, required=True)
    code = Line(100)
    display = Line(200)

    @validates_schema
    def _named(self, data, **_):
        if not data.get("code") and not data.get("display"):
            raise ValidationError("a coding needs a code or a display", "code")


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
    # The ingredient, e.g. "sertraline"; what the prescriber wrote ("Sertraline HCl 50 mg
    # tablet", "Zoloft") is recognised by fhir_bridge/mapping/drugs.py (see _recognised).
    drug = TermKey("rxnorm-drugs", 100)
    product = Line(200)  # the product as prescribed, e.g. "sertraline 50 mg oral tablet"
    drug_codings = fields.List(fields.Nested(DrugCodingSchema), validate=validate.Length(max=10))
    drug_note = Line(200)  # set by the bridge: the unknown-drug note (a sent one is replaced)
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

    @post_load
    def _recognised(self, data, partial=False, **_):
        """The drug as the ingredient the rules know. A name that stands for an ingredient in
        other words ("Sertraline HCl 50 mg tablet", "Zoloft") becomes its key and, when no
        product is given, the product as written; a coding of our ingredient table is ours
        (dropped: the bridge writes it), any other coding is kept as sent. A drug that is not
        recognised keeps its name and gets the unknown-drug note."""
        sent = data.get("drug_codings") or []
        written = data.get("drug")
        if written is None and not sent:
            if partial:
                return data
            raise ValidationError("is required: the drug's name, or drug_codings", "drug")
        try:
            key = drugs.recognise(written, sent)
        except drugs.ConflictingDrug as exc:
            raise ValidationError(f"drug and drug_codings name different drugs "
                                  f"({', '.join(exc.keys)})", "drug") from None
        if written is None:
            written = sent[0].get("display") or sent[0]["code"]  # one of them is there
        data.pop("drug_note", None)
        if key is None:
            data["drug"] = written[:100]
            data["drug_note"] = drugs.UNKNOWN_DRUG_NOTE
        else:
            if "drug" in data and local_code(written) != key and not data.get("product"):
                data["product"] = written
            data["drug"] = key
        theirs = [c for c in sent if not drugs.is_ours(c)]
        if theirs:
            data["drug_codings"] = theirs
        else:
            data.pop("drug_codings", None)
        return data


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
