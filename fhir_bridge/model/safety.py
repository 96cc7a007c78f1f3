"""Detected issues: what the medication safety checks found about a prescription (maximum
daily dose, duplicate therapy, dangerous combination). Derived by the bridge when a
prescription is saved (``fhir_bridge/clinical/safety.py``), never a reason to refuse it."""

from marshmallow import fields, validate

from .common import AwareDateTime, BaseSchema, Choice, Id, Pattern, Text

ISSUE_SEVERITIES = ("high", "moderate", "low")
# DetectedIssue.status (http://hl7.org/fhir/observation-status, as R4 binds it)
ISSUE_STATUSES = ("registered", "preliminary", "final", "amended", "corrected", "cancelled",
                  "entered-in-error", "unknown")


class DetectedIssueSchema(BaseSchema):
    id = Id(required=True)
    patient_id = Id(required=True)
    status = Choice(ISSUE_STATUSES, load_default="final")
    severity = Choice(ISSUE_SEVERITIES, required=True)
    rule = Pattern(r"^[a-z0-9][a-z0-9.\-]{0,99}$",
                   "must be a rule id such as interaction.lithium-nsaid", required=True)
    text = Text(300, required=True)  # what the rule says
    detail = Text(1000, required=True)  # this case
    source = Text(1000, required=True)  # the rule's source
    identified = AwareDateTime(required=True)
    prescription_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=10))
