"""Hypothesis strategies for every internal concept: valid records, random in every field."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from fhir_bridge.mapping.catalogs import instruments, measurement_kinds
from fhir_bridge.mapping.valuemaps import words
from fhir_bridge.model.medication import DOSE_UNITS, ROUTES
from fhir_bridge.mapping.terminology import table_keys
from fhir_bridge.model.observations import ADHERENCE_SOURCES, ADHERENCE_FINDINGS, \
    RESOLVED_OUTCOMES, SEVERITIES, SIDE_EFFECT_ACTIONS, SIDE_EFFECT_OUTCOMES
from fhir_bridge.model.people import DISCIPLINES, RELATIONSHIPS
from fhir_bridge.model.plan import ACTIVITY_KINDS, COMPARATORS, TEAM_ROLES

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9.\-]{0,20}\Z")
# Text as clinicians type it: letters, digits, punctuation, accents; no control characters.
text = st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]),
               min_size=1, max_size=40).filter(lambda s: s.strip() == s and s)
dates = st.dates(min_value=dt.date(1930, 1, 1), max_value=dt.date(2035, 12, 31))
iso_dates = dates.map(lambda d: d.isoformat())
offsets = st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=-5)),
                           dt.timezone(dt.timedelta(hours=5, minutes=30))])
date_times = st.builds(
    lambda d, z: d.replace(microsecond=0, tzinfo=z).isoformat(),
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2035, 1, 1)), offsets)
amounts = st.floats(min_value=0.01, max_value=5000, allow_nan=False).map(lambda x: round(x, 2))
names = st.fixed_dictionaries({"family": text, "given": st.lists(text, min_size=1, max_size=3)})
person_refs = st.fixed_dictionaries({"type": st.sampled_from(["patient", "practitioner",
                                                              "caregiver"]), "id": ids})


def record(required: dict, optional: dict | None = None):
    return st.fixed_dictionaries(required, optional=optional or {})


def ordered_pair(strategy):
    return st.tuples(strategy, strategy).map(sorted)


patients = record({"id": ids, "mrn": text, "name": names, "birth_date": iso_dates,
                   "gender": st.sampled_from(words("gender"))},
                  {"phone": st.from_regex(r"\A\+?[0-9]{7,12}\Z"),
                   "email": st.emails(), "language": st.sampled_from(["en", "es", "vi"])})

practitioners = record({"id": ids, "name": names, "discipline": st.sampled_from(DISCIPLINES)},
                       {"phone": st.from_regex(r"\A[0-9]{7,12}\Z")})

caregivers = record({"id": ids, "patient_id": ids, "name": names,
                     "relationship": st.sampled_from(RELATIONSHIPS)},
                    {"active": st.booleans(), "email": st.emails()})

diagnoses = record({"id": ids, "patient_id": ids, "description": text,
                    "clinical_status": st.sampled_from(words("clinical-status")),
                    "recorded_date": iso_dates},
                   {"icd10cm": st.from_regex(r"\A[A-TV-Z][0-9][0-9AB](\.[0-9A-TV-Z]{1,4})?\Z"),
                    "verification_status": st.sampled_from(words("verification-status")),
                    "onset_date": iso_dates, "diagnosed_by_id": ids, "note": text})

DRUGS = st.one_of(st.sampled_from(["sertraline", "lithium carbonate", "aripiprazole",
                                   "methylphenidate"]),
                  st.from_regex(r"\A[a-z][a-z ]{2,20}[a-z]\Z"))


@st.composite
def prescriptions(draw):
    rx = draw(record(
        {"id": ids, "patient_id": ids, "prescriber_id": ids,
         "status": st.sampled_from(["active", "on-hold", "completed", "draft"]),
         "authored_on": date_times, "drug": DRUGS,
         "dose": st.fixed_dictionaries({"value": amounts, "unit": st.sampled_from(DOSE_UNITS)}),
         "route": st.sampled_from(ROUTES), "frequency": st.integers(1, 24),
         "start_date": iso_dates},
        {"product": text, "period": st.sampled_from([1.0, 2.0, 0.5]),
         "period_unit": st.sampled_from(words("period-unit")),
         "time_of_day": st.lists(st.sampled_from(words("time-of-day")), max_size=3,
                                 unique=True),
         "indication_diagnosis_id": ids, "sig": text, "instructions": text,
         "refills": st.integers(0, 12), "days_supply": st.integers(1, 365),
         "quantity": st.fixed_dictionaries({"value": amounts,
                                            "unit": st.sampled_from(["tablet", "mL"])}),
         "status_reason": text}))
    if draw(st.booleans()):
        rx["as_needed"] = True
        if draw(st.booleans()):
            rx["as_needed_reason"] = draw(text)
    if draw(st.booleans()):
        rx["prior_prescription_id"] = draw(ids)
        rx["change_reason"] = draw(text)
    if draw(st.booleans()):
        rx["end_date"] = draw(iso_dates.filter(lambda d: d >= rx["start_date"]))
    if draw(st.booleans()):
        rx["status"] = "stopped"
        rx["discontinuation"] = {"date": draw(iso_dates), "reason": draw(text),
                                 "by_id": draw(ids)}
    if draw(st.booleans()):
        rx["adherence"] = {"finding": draw(st.sampled_from(ADHERENCE_FINDINGS)),
                           "date_asserted": draw(date_times),
                           "source": draw(st.sampled_from(ADHERENCE_SOURCES))}
    return rx


@st.composite
def assessments(draw):
    key = draw(st.sampled_from(sorted(instruments())))
    instrument = instruments()[key]
    items = []
    for item in instrument.items:
        if item.optional and draw(st.booleans()):
            continue
        items.append({"number": item.number, "value": draw(st.integers(item.min, item.max))})
    out = {"id": draw(ids), "patient_id": draw(ids), "instrument": key,
           "effective": draw(date_times), "items": items}
    out.update(draw(st.fixed_dictionaries({}, optional={
        "administered_by_id": ids, "note": text,
        "status": st.sampled_from(["final", "preliminary", "amended"])})))
    return out


@st.composite
def side_effects(draw):
    out = draw(record(
        {"id": ids, "patient_id": ids,
         "effect": st.one_of(st.sampled_from(["nausea", "tremor", "headache"]), text),
         "severity": st.sampled_from(SEVERITIES), "onset_date": iso_dates,
         "recorded_at": date_times, "action_taken": st.sampled_from(SIDE_EFFECT_ACTIONS),
         "reported_by": person_refs},
        {"suspected_prescription_id": ids, "note": text}))
    if draw(st.booleans()):  # how it turned out; a resolved one has its date
        out["outcome"] = draw(st.sampled_from(SIDE_EFFECT_OUTCOMES))
        if out["outcome"] in RESOLVED_OUTCOMES:
            out["onset_date"], out["resolution_date"] = draw(ordered_pair(iso_dates))
    return out


@st.composite
def adherence_reports(draw):
    start, end = draw(ordered_pair(iso_dates))
    out = {"id": draw(ids), "patient_id": draw(ids), "prescription_id": draw(ids),
           "period_start": start, "period_end": end,
           "source": draw(st.sampled_from(ADHERENCE_SOURCES)), "recorded_at": draw(date_times)}
    choice = draw(st.sampled_from(["doses", "percent", "finding", "fills"]))
    if choice == "fills":
        out["source"] = "refill-data"
        out["fills"] = draw(st.lists(st.fixed_dictionaries(
            {"date": iso_dates, "days_supply": st.integers(1, 90)}), min_size=1, max_size=4))
    elif choice == "doses":
        prescribed = draw(st.integers(1, 400))
        out.update(doses_prescribed=prescribed, doses_taken=draw(st.integers(0, prescribed)))
    elif choice == "percent":
        out["proportion_percent"] = draw(st.floats(0, 100).map(lambda x: round(x, 1)))
    else:
        out["finding"] = draw(st.sampled_from(ADHERENCE_FINDINGS))
    out.update(draw(st.fixed_dictionaries({}, optional={"reported_by": person_refs,
                                                        "note": text})))
    return out


@st.composite
def measurements(draw):
    key = draw(st.sampled_from(sorted(measurement_kinds())))
    kind = measurement_kinds()[key]
    out = {"id": draw(ids), "patient_id": draw(ids), "kind": key, "unit": kind.unit,
           "effective": draw(date_times)}
    if kind.components:
        out["components"] = [{"name": c["name"], "value": draw(amounts)}
                             for c in kind.components]
    else:
        out["value"] = draw(amounts)
    out.update(draw(st.fixed_dictionaries({}, optional={
        "related_prescription_id": ids, "performer_id": ids, "note": text})))
    return out


care_teams = record(
    {"id": ids, "patient_id": ids, "name": text,
     "status": st.sampled_from(words("care-team-status")),
     "participants": st.lists(record({"member": person_refs,
                                      "role": st.sampled_from(TEAM_ROLES)},
                                     {"start_date": iso_dates}), min_size=1, max_size=4)},
    {"note": text})


@st.composite
def care_plans(draw):
    start = draw(iso_dates)
    goal_ids = draw(st.lists(ids, max_size=3, unique=True))
    measures = [k for k, i in instruments().items() if i.total] + sorted(measurement_kinds())
    goals = []
    for goal_id in goal_ids:
        goal = {"id": goal_id, "description": draw(text),
                "status": draw(st.sampled_from(words("goal-status")))}
        if draw(st.booleans()):
            goal["target"] = {"measure": draw(st.sampled_from(measures)),
                              "value": draw(amounts)}
            if draw(st.booleans()):
                goal["target"]["comparator"] = draw(st.sampled_from(COMPARATORS))
        if draw(st.booleans()):
            goal["due_date"] = draw(iso_dates)
        if draw(st.booleans()):
            goal["achievement_status"] = draw(st.sampled_from(
                sorted(table_keys("goal-achievement"))))
        goals.append(goal)
    activities = []
    for activity_id in draw(st.lists(ids, max_size=5, unique=True)):
        kind = draw(st.sampled_from(ACTIVITY_KINDS))
        if kind == "medication":
            activities.append({"id": activity_id, "kind": kind, "prescription_id": draw(ids)})
            continue
        activity = {"id": activity_id, "kind": kind, "topic": draw(text),
                    "status": draw(st.sampled_from(words("activity-status")))}
        if draw(st.booleans()):
            activity["description"] = draw(text)
        dated = draw(st.booleans())
        if not dated and draw(st.booleans()):
            activity["schedule"] = {"frequency": draw(st.integers(1, 7)),
                                    "period": draw(st.sampled_from([1.0, 2.0, 4.0])),
                                    "period_unit": draw(st.sampled_from(words("period-unit"))),
                                    "start": start}
        if dated:  # a monitoring item or a same-day safety activity
            due_from, due_by = draw(ordered_pair(iso_dates))
            activity.update(due_from=due_from, due_by=due_by)
            if kind == "monitoring":
                activity["measure"] = draw(st.sampled_from(sorted(measurement_kinds())))
            reason = draw(st.sampled_from(["reason_prescription_id", "reason_assessment_id",
                                           None]))
            if reason:
                activity[reason] = draw(ids)
            if draw(st.booleans()):
                activity["result_measurement_id"] = draw(ids)
            if draw(st.booleans()):
                activity["overdue_since"], until = draw(ordered_pair(iso_dates))
                if draw(st.booleans()):
                    activity["overdue_until"] = until
        if goal_ids and draw(st.booleans()):
            activity["goal_ids"] = draw(st.lists(st.sampled_from(goal_ids), min_size=1,
                                                 max_size=2, unique=True))
        if draw(st.booleans()):
            activity["performers"] = draw(st.lists(person_refs, min_size=1, max_size=2))
        activities.append(activity)
    plan = {"id": draw(ids), "patient_id": draw(ids),
            "status": draw(st.sampled_from(words("care-plan-status"))), "title": draw(text),
            "created": draw(date_times), "period_start": start, "author_id": draw(ids),
            "goals": goals, "activities": activities,
            "diagnosis_ids": draw(st.lists(ids, max_size=3))}
    plan.update(draw(st.fixed_dictionaries({}, optional={
        "description": text, "care_team_id": ids, "note": text})))
    return plan


detected_issues = record(
    {"id": ids, "patient_id": ids, "severity": st.sampled_from(["high", "moderate", "low"]),
     "rule": st.from_regex(r"\A(max-dose|duplicate|interaction)\.[a-z0-9\-]{1,20}\Z"),
     "text": text, "detail": text, "source": text, "identified": date_times,
     "prescription_ids": st.lists(ids, min_size=1, max_size=3)},
    {"status": st.sampled_from(["final", "preliminary", "amended", "cancelled"])})


BY_CONCEPT = {
    "patient": patients, "practitioner": practitioners, "caregiver": caregivers,
    "diagnosis": diagnoses, "prescription": prescriptions(), "assessment": assessments(),
    "side-effect": side_effects(), "adherence": adherence_reports(),
    "measurement": measurements(), "care-team": care_teams, "care-plan": care_plans(),
    "detected-issue": detected_issues,
}
