"""Every internal concept: its API collection, schema, and the records it points at.

``refs`` lists where a record names other records, as (path, concept): the store refuses a
record whose references do not exist, or name another patient's records (a concept whose
``patient_field`` is None, the practitioner, belongs to no patient). A path step ``[*]`` walks a list; a person reference
({type, id}) is written with concept ``person``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from marshmallow import Schema

from .clinical import DiagnosisSchema
from .medication import PrescriptionSchema
from .observations import AdherenceSchema, AssessmentSchema, MeasurementSchema, SideEffectSchema
from .people import CaregiverSchema, PatientSchema, PractitionerSchema
from .plan import CarePlanSchema, CareTeamSchema
from .safety import DetectedIssueSchema

PERSON_CONCEPTS = {"patient": "patient", "practitioner": "practitioner", "caregiver": "caregiver"}


@dataclass(frozen=True)
class Concept:
    name: str  # singular, as in mappings ("prescription")
    collection: str  # API path segment ("prescriptions")
    schema: type[Schema]
    refs: tuple[tuple[str, str], ...] = ()
    patient_field: str | None = "patient_id"

    def load(self, data: Any, partial: bool = False) -> dict:
        return self.schema().load(data, partial=partial)

    def dump(self, record: dict) -> dict:
        return self.schema().dump(record)

    def references(self, record: dict) -> Iterator[tuple[str, str, str]]:
        """(path, concept, id) for every record this one names."""
        for path, concept in self.refs:
            for where, value in _walk(record, path.split(".")):
                if value is None:
                    continue
                if concept == "person":
                    yield where, PERSON_CONCEPTS[value["type"]], value["id"]
                else:
                    yield where, concept, value


def _walk(node: Any, steps: list[str], where: str = "") -> Iterator[tuple[str, Any]]:
    if not steps:
        yield where, node
        return
    step, rest = steps[0], steps[1:]
    if step.endswith("[*]"):
        key = step[:-3]
        items = node.get(key) if isinstance(node, dict) else None
        for index, item in enumerate(items or []):
            yield from _walk(item, rest, f"{where}{'.' if where else ''}{key}[{index}]")
    elif isinstance(node, dict) and step in node:
        yield from _walk(node[step], rest, f"{where}{'.' if where else ''}{step}")


CONCEPTS: tuple[Concept, ...] = (
    Concept("patient", "patients", PatientSchema, patient_field="id"),
    Concept("practitioner", "practitioners", PractitionerSchema, patient_field=None),
    Concept("caregiver", "caregivers", CaregiverSchema, (("patient_id", "patient"),)),
    Concept("diagnosis", "diagnoses", DiagnosisSchema,
            (("patient_id", "patient"), ("diagnosed_by_id", "practitioner"))),
    Concept("prescription", "prescriptions", PrescriptionSchema,
            (("patient_id", "patient"), ("prescriber_id", "practitioner"),
             ("indication_diagnosis_id", "diagnosis"), ("prior_prescription_id", "prescription"),
             ("discontinuation.by_id", "practitioner"))),
    Concept("assessment", "assessments", AssessmentSchema,
            (("patient_id", "patient"), ("administered_by_id", "practitioner"))),
    Concept("side-effect", "side-effects", SideEffectSchema,
            (("patient_id", "patient"), ("suspected_prescription_id", "prescription"),
             ("reported_by", "person"))),
    Concept("adherence", "adherence-reports", AdherenceSchema,
            (("patient_id", "patient"), ("prescription_id", "prescription"),
             ("reported_by", "person"))),
    Concept("measurement", "measurements", MeasurementSchema,
            (("patient_id", "patient"), ("related_prescription_id", "prescription"),
             ("performer_id", "practitioner"))),
    Concept("care-team", "care-teams", CareTeamSchema,
            (("patient_id", "patient"), ("participants[*].member", "person"))),
    Concept("care-plan", "care-plans", CarePlanSchema,
            (("patient_id", "patient"), ("author_id", "practitioner"),
             ("care_team_id", "care-team"), ("diagnosis_ids[*]", "diagnosis"),
             ("activities[*].prescription_id", "prescription"),
             ("activities[*].reason_prescription_id", "prescription"),
             ("activities[*].reason_assessment_id", "assessment"),
             ("activities[*].result_measurement_id", "measurement"),
             ("activities[*].performers[*]", "person"))),
    Concept("detected-issue", "detected-issues", DetectedIssueSchema,
            (("patient_id", "patient"), ("prescription_ids[*]", "prescription"))),
)

_BY_NAME = {c.name: c for c in CONCEPTS}
_BY_COLLECTION = {c.collection: c for c in CONCEPTS}


def concept_by_name(name: str) -> Concept:
    return _BY_NAME[name]


def concept_by_collection(collection: str) -> Concept | None:
    return _BY_COLLECTION.get(collection)
