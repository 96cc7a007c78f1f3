"""The treatment plan (goals and activities) and the care team."""

from marshmallow import ValidationError, fields, validate, validates_schema

from ..mapping.catalogs import instruments, measurement_kinds
from ..mapping.terminology import table_keys
from ..mapping.valuemaps import words
from .common import AwareDateTime, BaseSchema, Choice, Id, Int, IsoDate, Line, Number, \
    PersonRefSchema, Text, check_period

# What a plan's activities can be. "medication" points at a prescription; the others are
# described activities with a topic (e.g. lifestyle: "Sleep hygiene", integrative: "Mindfulness").
ACTIVITY_KINDS = ("medication", "psychotherapy", "patient-education", "family-education",
                  "lifestyle", "integrative", "follow-up", "monitoring", "safety-planning",
                  "referral", "other")
COMPARATORS = ("<", "<=", ">=", ">")
# Roles of care-team members: keys of terminology/care-team-roles.csv (SNOMED CT) or
# specialties.csv (NUCC).
TEAM_ROLES = ("psychiatric-nurse-practitioner", "psychiatrist",
              "child-and-adolescent-psychiatrist", "nurse-practitioner",
              "mental-health-nurse", "psychotherapist", "mental-health-counselor",
              "clinical-psychologist", "trained-social-worker-counselor", "primary-care-physician",
              "primary-care-provider", "caregiver", "informal-caregiver", "patient", "pharmacist",
              "care-coordinator")


def _measures() -> list[str]:
    scored = [key for key, instrument in instruments().items() if instrument.total]
    return scored + list(measurement_kinds())


class GoalTargetSchema(BaseSchema):
    measure = Choice(_measures(), required=True)  # an instrument with a total, or a measurement
    comparator = Choice(COMPARATORS)
    value = Number("goal-target", required=True)


class GoalSchema(BaseSchema):
    id = Id(required=True)
    description = Text(500, required=True)
    status = Choice(words("goal-status"), required=True)
    start_date = IsoDate()
    due_date = IsoDate()
    target = fields.Nested(GoalTargetSchema)
    # How the goal stands (Goal.achievementStatus, HL7 goal-achievement codes): computed from
    # the target and the patient's results (fhir_bridge/clinical/goals.py) once a result
    # exists; before that, what was sent.
    achievement_status = Choice(sorted(table_keys("goal-achievement")))

    @validates_schema
    def _dates(self, data, **_):
        check_period(data.get("start_date"), data.get("due_date"), "due_date")


class ScheduleSchema(BaseSchema):
    """When an activity happens: a repeating schedule within a period (e.g. every 4 weeks)."""

    frequency = Int("schedule-frequency", load_default=1)
    period = Number("period", required=True)
    period_unit = Choice(words("period-unit"), required=True)
    start = IsoDate(required=True)
    end = IsoDate()

    @validates_schema
    def _dates(self, data, **_):
        check_period(data.get("start"), data.get("end"), "end")


class ActivitySchema(BaseSchema):
    id = Id(required=True)
    kind = Choice(ACTIVITY_KINDS, required=True)
    prescription_id = Id()
    topic = Line(200)
    description = Text(1000)
    status = Choice(words("activity-status"))
    schedule = fields.Nested(ScheduleSchema)
    performers = fields.List(fields.Nested(PersonRefSchema), validate=validate.Length(max=10))
    goal_ids = fields.List(Id(), validate=validate.Length(max=10))
    # A dated task (a monitoring test, a same-day safety assessment): the days it is due,
    # what it is for, and the result that completed it. The bridge writes these for the
    # monitoring schedules and safety alerts (ids starting "mon-" and "safety-").
    measure = Choice(list(measurement_kinds()))  # the test a monitoring activity asks for
    due_from = IsoDate()
    due_by = IsoDate()
    reason_prescription_id = Id()  # the prescription being monitored
    reason_assessment_id = Id()  # the assessment that raised a safety alert
    result_measurement_id = Id()  # the result that completed it
    overdue_since = IsoDate()  # set by `fhir-bridge monitoring check`
    overdue_until = IsoDate()  # the day an overdue item was done or cancelled (Flag ends)

    @validates_schema
    def _dated(self, data, **_):
        check_period(data.get("due_from"), data.get("due_by"), "due_by")
        if data.get("schedule") and (data.get("due_from") or data.get("due_by")):
            raise ValidationError("a repeating schedule or due dates, not both", "schedule")
        if data.get("overdue_since") and not data.get("due_by"):
            raise ValidationError("needs due_by", "overdue_since")
        if data.get("overdue_until") and not data.get("overdue_since"):
            raise ValidationError("needs overdue_since", "overdue_until")
        check_period(data.get("overdue_since"), data.get("overdue_until"), "overdue_until")
        if data.get("measure") and data.get("kind") != "monitoring":
            raise ValidationError("is only for monitoring activities", "measure")
        if data.get("reason_prescription_id") and data.get("reason_assessment_id"):
            raise ValidationError("one reason: a prescription or an assessment",
                                  "reason_assessment_id")

    @validates_schema
    def _shape(self, data, **_):
        if data.get("kind") == "medication":
            if not data.get("prescription_id"):
                raise ValidationError("is required for a medication activity", "prescription_id")
            extra = [k for k in ("topic", "description", "status", "schedule", "performers",
                                 "goal_ids", "measure", "due_from", "due_by",
                                 "reason_prescription_id", "reason_assessment_id",
                                 "result_measurement_id", "overdue_since", "overdue_until")
                                 if k in data]
            if extra:
                raise ValidationError("a medication activity only points at its prescription",
                                      extra[0])
        else:
            if data.get("prescription_id"):
                raise ValidationError("is only for medication activities", "prescription_id")
            for required in ("topic", "status"):
                if not data.get(required):
                    raise ValidationError(f"is required for a {data.get('kind')} activity",
                                          required)


class CarePlanSchema(BaseSchema):
    id = Id(required=True)
    patient_id = Id(required=True)
    status = Choice(words("care-plan-status"), required=True)
    title = Line(200, required=True)
    description = Text(2000)
    created = AwareDateTime(required=True)
    period_start = IsoDate(required=True)
    period_end = IsoDate()
    author_id = Id(required=True)
    care_team_id = Id()
    diagnosis_ids = fields.List(Id(), load_default=list, validate=validate.Length(max=20))
    goals = fields.List(fields.Nested(GoalSchema), load_default=list,
                        validate=validate.Length(max=30))
    activities = fields.List(fields.Nested(ActivitySchema), load_default=list,
                             validate=validate.Length(max=100))
    note = Text(4000)

    @validates_schema
    def _consistent(self, data, **_):
        check_period(data.get("period_start"), data.get("period_end"), "period_end")
        goal_ids = [g["id"] for g in data.get("goals") or []]
        if len(set(goal_ids)) != len(goal_ids):
            raise ValidationError("goal ids must be unique", "goals")
        activity_ids = [a["id"] for a in data.get("activities") or []]
        if len(set(activity_ids)) != len(activity_ids):
            raise ValidationError("activity ids must be unique", "activities")
        errors = {}
        for index, activity in enumerate(data.get("activities") or []):
            unknown = [g for g in activity.get("goal_ids") or [] if g not in goal_ids]
            if unknown:
                errors[f"activities[{index}].goal_ids"] = [
                    f"names goals not in this plan: {', '.join(unknown)}"]
        if errors:
            raise ValidationError(errors)


class TeamMemberSchema(BaseSchema):
    member = fields.Nested(PersonRefSchema, required=True)
    role = Choice(TEAM_ROLES, required=True)
    start_date = IsoDate()
    end_date = IsoDate()

    @validates_schema
    def _dates(self, data, **_):
        check_period(data.get("start_date"), data.get("end_date"), "end_date")


class CareTeamSchema(BaseSchema):
    id = Id(required=True)
    patient_id = Id(required=True)
    name = Line(200, required=True)
    status = Choice(words("care-team-status"), required=True)
    participants = fields.List(fields.Nested(TeamMemberSchema), required=True,
                               validate=validate.Length(min=1, max=30))
    note = Text(2000)
