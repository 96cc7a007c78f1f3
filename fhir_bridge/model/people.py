"""Patients, practitioners and family caregivers."""

from marshmallow import fields, validate

from ..mapping.valuemaps import words
from .common import BaseSchema, Choice, Id, IsoDate, NameSchema, Text

PHONE = validate.Regexp(r"^\+?[0-9 ().\-]{7,20}$", error="must be a phone number")

# Practitioner disciplines the practice uses (keys into terminology tables where one exists).
# Each is a key of terminology/care-team-roles.csv or terminology/specialties.csv.
DISCIPLINES = ("psychiatrist", "child-and-adolescent-psychiatrist", "nurse-practitioner",
               "psychiatric-nurse-practitioner", "mental-health-nurse", "psychotherapist",
               "clinical-psychologist", "mental-health-counselor",
               "trained-social-worker-counselor",
               "primary-care-physician", "primary-care-provider", "pharmacist", "care-coordinator")

RELATIONSHIPS = ("mother", "father", "parent", "spouse", "partner", "sibling", "child",
                 "grandparent", "guardian", "friend", "other")


class PatientSchema(BaseSchema):
    id = Id(required=True)
    mrn = Text(40, required=True)
    name = fields.Nested(NameSchema, required=True)
    birth_date = IsoDate(required=True)
    gender = Choice(words("gender"), required=True)
    phone = fields.String(validate=PHONE)
    email = fields.Email()
    language = fields.String(validate=validate.Regexp(r"^[a-z]{2,3}(-[A-Z]{2})?$",
                                                      error="must be a BCP-47 tag such as en"))


class PractitionerSchema(BaseSchema):
    id = Id(required=True)
    name = fields.Nested(NameSchema, required=True)
    discipline = Choice(DISCIPLINES)  # unknown for some practitioners pulled from an EHR
    phone = fields.String(validate=PHONE)
    email = fields.Email()


class CaregiverSchema(BaseSchema):
    """A family member or other caregiver of one patient (FHIR RelatedPerson)."""

    id = Id(required=True)
    patient_id = Id(required=True)
    name = fields.Nested(NameSchema, required=True)
    relationship = Choice(RELATIONSHIPS, required=True)
    phone = fields.String(validate=PHONE)
    email = fields.Email()
    active = fields.Boolean(load_default=True)
