"""Diagnoses from the initial assessment."""

from ..mapping.valuemaps import words
from .common import BaseSchema, Choice, Id, IsoDate, Pattern, Text

ICD10CM = r"^[A-TV-Z][0-9][0-9AB](\.[0-9A-TV-Z]{1,4})?$"


class DiagnosisSchema(BaseSchema):
    id = Id(required=True)
    patient_id = Id(required=True)
    description = Text(300, required=True)
    icd10cm = Pattern(ICD10CM, "must be an ICD-10-CM code such as A00.0")
    clinical_status = Choice(words("clinical-status"), required=True)
    verification_status = Choice(words("verification-status"), load_default="confirmed")
    onset_date = IsoDate()
    recorded_date = IsoDate(required=True)
    diagnosed_by_id = Id()
    note = Text(2000)
