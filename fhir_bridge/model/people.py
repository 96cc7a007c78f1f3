"""Patients, practitioners and family caregivers."""

from marshmallow import fields

from ..mapping.valuemaps import words
from .common import BaseSchema, Choice, EmailAddress, Flag, Id, IsoDate, Line, NameSchema, \
    Pattern


def Phone(**kwargs):  # noqa: N802
    return Pattern(r"^\+?[0-9 ().\-]{7,20}$", "must be a phone number", **kwargs)


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
    mrn = Line(40, required=True)
    name = fields.Nested(NameSchema, required=True)
    birth_date = IsoDate(required=True)
    gender = Choice(words("gender"), required=True)
    phone = Phone()
    email = EmailAddress()
    language = Pattern(r"^[a-z]{2,3}(-[A-Z]{2})?$", "must be a BCP-47 tag such as en")


class PractitionerSchema(BaseSchema):
    id = Id(required=True)
    name = fields.Nested(NameSchema, required=True)
    discipline = Choice(DISCIPLINES)  # unknown for some practitioners pulled from an EHR
    phone = Phone()
    email = EmailAddress()


class CaregiverSchema(BaseSchema):
    """A family member or other caregiver of one patient (FHIR RelatedPerson)."""

    id = Id(required=True)
    patient_id = Id(required=True)
    name = fields.Nested(NameSchema, required=True)
    relationship = Choice(RELATIONSHIPS, required=True)
    phone = Phone()
    email = EmailAddress()
    active = Flag(load_default=True)
