"""Dose changes, discontinuations and the consequences of a saved record (adherence reports on
their prescription, safety checks, monitoring items and safety activities on the care plan).

A dose change makes a new prescription that copies the medication, route, indication and
patient from the one it replaces, with the new dose and schedule, and closes the replaced one
(status stopped, end date the day the new dose starts). A discontinuation stops a prescription
and records when, why and by whom. Both return every record to save, in one transaction.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any, Callable

from ..errors import Conflict, InvalidInput, Issue

OPEN_STATUSES = ("active", "on-hold", "draft")
# Copied from the replaced prescription unless the change gives them. The product and the sig
# name a strength and directions that a new dose makes wrong: they come only from the change.
COPIED = ("patient_id", "drug", "route", "frequency", "period", "period_unit", "time_of_day",
          "as_needed", "as_needed_reason", "indication_diagnosis_id", "instructions", "refills",
          "quantity", "days_supply")
CHANGED = ("dose", "frequency", "period", "period_unit", "time_of_day", "sig", "instructions",
           "product", "quantity", "refills", "days_supply", "authored_on")


def _require_open(prescription: dict[str, Any]) -> None:
    if prescription["status"] not in OPEN_STATUSES:
        raise Conflict(f"prescription {prescription['id']!r} is {prescription['status']}",
                       [Issue("status", "only an active, on-hold or draft prescription can "
                                        "change")])


def dose_change(prior: dict[str, Any], change: dict[str, Any]) -> tuple[dict, dict]:
    """(the new prescription, the closed prior one)."""
    _require_open(prior)
    if change["effective_date"] < prior["start_date"]:  # bad input, not a clash: 422
        raise InvalidInput("a dose change cannot start before the prescription it replaces",
                           [Issue("effective_date", f"is before {prior['start_date']}")])
    new = {k: copy.deepcopy(prior[k]) for k in COPIED if k in prior}
    for key in CHANGED:
        if key in change:
            new[key] = copy.deepcopy(change[key])
    new.update(id=change["id"], prescriber_id=change["changed_by_id"], status="active",
               start_date=change["effective_date"], prior_prescription_id=prior["id"],
               change_reason=change["reason"])
    closed = copy.deepcopy(prior)
    closed.update(status="stopped", end_date=change["effective_date"],
                  status_reason=f"Replaced by dose change {change['id']}")
    return new, closed


def discontinue(prescription: dict[str, Any], stop: dict[str, Any]) -> dict:
    _require_open(prescription)
    if stop["date"] < prescription["start_date"]:
        raise InvalidInput("a prescription cannot stop before it starts",
                           [Issue("date", f"is before {prescription['start_date']}")])
    stopped = copy.deepcopy(prescription)
    stopped.update(status="stopped", status_reason=stop["reason"], end_date=stop["date"],
                   discontinuation=dict(stop))
    return stopped


def _instant(value: str) -> dt.datetime:
    """A date-time or a partial date, comparable across offsets (dates count as midnight UTC)."""
    if "T" not in value:
        value = (value + "-01-01"[len(value) - 4:]) + "T00:00:00+00:00"
    return dt.datetime.fromisoformat(value)


def consequences(concept_name: str, record: dict[str, Any], current: "View"
                 ) -> list[tuple[str, dict]]:
    """Other records a saved record changes, as (concept, new record), saved in the same
    transaction:

    - an adherence report becomes the prescription's latest adherence statement (the US Core
      adherence extension on its MedicationRequest) unless a newer one is there already;
    - a prescription is checked by the medication safety rules (a DetectedIssue per finding),
      and a prescription or a measurement recomputes the monitoring items of the patient's
      active care plan (``fhir_bridge/clinical/monitoring.py``);
    - an assessment that raised a safety alert adds a same-day safety activity to the
      patient's active care plan;
    - a care plan, an assessment or a measurement recomputes the achievement status of the
      goals with a target (``fhir_bridge/clinical/goals.py``).
    """
    if concept_name == "adherence":
        return _adherence_statement(record, current)
    if concept_name == "prescription":
        followed = _plans_following(record, current)
        on = record.get("end_date") or record["start_date"]
        return (_safety_issues(record, current)
                + _monitoring(record["patient_id"], current, followed, on))
    if concept_name == "measurement":
        return _goals(record["patient_id"], current, _monitoring(
            record["patient_id"], current, on=record["effective"]))
    if concept_name == "assessment":
        return _goals(record["patient_id"], current,
                      _safety_activity(record, current) if record.get("alerts") else [])
    if concept_name == "care-plan":
        return _own_goals(record, current)
    return []


def _goals(patient_id: str, current: "View",
           changed: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """``changed`` (what this record changes) with the goals of the patient's care plans
    brought up to date: a plan in ``changed`` is returned with them, another open one (draft,
    active, on hold) only when its goals change."""
    from ..clinical.goals import with_achievement

    assessments = current.patient("assessment", patient_id)
    measurements = current.patient("measurement", patient_id)
    mine = {r["id"] for name, r in changed if name == "care-plan"}
    out = [(name, with_achievement(r, assessments, measurements) if name == "care-plan" else r)
           for name, r in changed]
    for plan in current.patient("care-plan", patient_id):
        if plan["id"] not in mine and plan["status"] in ("draft", "active", "on-hold"):
            updated = with_achievement(plan, assessments, measurements)
            if updated is not plan:
                out.append(("care-plan", updated))
    return out


def _own_goals(plan: dict, current: "View") -> list[tuple[str, dict]]:
    """A saved care plan with its goals' achievement status (nothing when it is current)."""
    from ..clinical.goals import with_achievement

    updated = with_achievement(plan, current.patient("assessment", plan["patient_id"]),
                               current.patient("measurement", plan["patient_id"]))
    return [] if updated is plan else [("care-plan", updated)]


def _adherence_statement(record: dict, current: "View") -> list[tuple[str, dict]]:
    prescription = current("prescription", record["prescription_id"])
    if prescription is None:
        return []  # the reference check reports it
    statement = {"finding": record["finding"], "date_asserted": record["recorded_at"],
                 "source": record["source"]}
    latest = prescription.get("adherence")
    if latest == statement or (latest and _instant(latest["date_asserted"])
                               > _instant(statement["date_asserted"])):
        return []
    return [("prescription", {**prescription, "adherence": statement})]


def _safety_issues(record: dict, current: "View") -> list[tuple[str, dict]]:
    from ..clinical.safety import check, detected_issue

    others = current.patient("prescription", record["patient_id"])
    authored = {p["id"]: p["authored_on"] for p in others}
    return [("detected-issue", detected_issue(record, finding, authored))
            for finding in check(record, others)]


def _plans_following(record: dict, current: "View") -> dict[str, dict]:
    """A prescription that replaces another (a dose change) takes its place in the patient's
    care plans: a medication activity naming the prior prescription names the new one, so an
    EHR reading the plan finds the prescription in force. A plan that already names the new
    one is left as it is."""
    prior = record.get("prior_prescription_id")
    if not prior:
        return {}
    out = {}
    for plan in current.patient("care-plan", record["patient_id"]):
        named = [a.get("prescription_id") for a in plan.get("activities", [])]
        if prior in named and record["id"] not in named:
            out[plan["id"]] = {**plan, "activities": [
                {**a, "prescription_id": record["id"]} if a.get("prescription_id") == prior
                else a for a in plan["activities"]]}
    return out


def _monitoring(patient_id: str, current: "View", changed: dict[str, dict] | None = None,
                on: str | None = None) -> list[tuple[str, dict]]:
    """The monitoring items of the active care plan, recomputed; ``changed`` holds plans
    already changed by this record (returned too, with their items); ``on`` is the day the
    change takes effect (an overdue item it closes ends then)."""
    from ..clinical.monitoring import active_plan, items, with_items

    changed = dict(changed or {})
    plans = [changed.get(p["id"], p) for p in current.patient("care-plan", patient_id)]
    plan = active_plan(plans)
    if plan is not None:
        computed = items(current.patient("prescription", patient_id),
                         current.patient("measurement", patient_id))
        updated = with_items(plan, computed, dt.date.fromisoformat(on[:10]) if on else None)
        if updated != plan or plan["id"] in changed:
            changed[plan["id"]] = updated
    return [("care-plan", p) for p in changed.values()]


def _safety_activity(record: dict, current: "View") -> list[tuple[str, dict]]:
    from ..clinical.monitoring import active_plan
    from ..clinical.safety_activity import safety_activity, with_safety_activity
    from ..clinical.scoring import read
    from ..mapping.catalogs import instruments

    plan = active_plan(current.patient("care-plan", record["patient_id"]))
    if plan is None:
        return []
    reading = read(instruments()[record["instrument"]],
                   {a["number"]: a["value"] for a in record["items"]}, record.get("total"))
    updated = with_safety_activity(plan, safety_activity(record,
                                                         [a.text for a in reading.alerts]))
    return [] if updated is plan else [("care-plan", updated)]


class View:
    """Records as they will be once the batch is saved: the batch's own records over the
    stored ones. ``view(concept, id)`` reads one; ``view.patient(concept, patient_id)`` lists
    a patient's records of a concept."""

    def __init__(self, changes: list, position: dict, stored: Callable[[str, str], dict | None],
                 listed: Callable[[str, str], list[dict]] | None):
        self.changes, self.position = changes, position
        self.stored, self.listed = stored, listed

    def __call__(self, concept_name: str, record_id: str) -> dict | None:
        if (concept_name, record_id) in self.position:
            return self.changes[self.position[(concept_name, record_id)]][1]
        return self.stored(concept_name, record_id)

    def patient(self, concept_name: str, patient_id: str) -> list[dict]:
        from .registry import concept_by_name

        field = concept_by_name(concept_name).patient_field
        found = {r["id"]: r for r in (self.listed(concept_name, patient_id)
                                      if self.listed else [])}
        for concept, record in self.changes:
            if concept.name == concept_name and record.get(field) == patient_id:
                found[record["id"]] = record
        return [found[k] for k in sorted(found)]


def with_consequences(changes: list, rules: Callable, stored: Callable[[str, str], dict | None],
                      listed: Callable[[str, str], list[dict]] | None = None) -> list:
    """The batch plus the records its records change (``rules`` is ``consequences``); a
    changed record already in the batch is replaced there. ``stored`` reads a saved record,
    ``listed(concept, patient_id)`` a patient's saved records of a concept."""
    from .registry import concept_by_name

    changes = list(changes)
    position = {(c.name, r["id"]): i for i, (c, r) in enumerate(changes)}
    current = View(changes, position, stored, listed)

    index = 0
    while index < len(changes):
        concept, record = changes[index]
        for name, changed in rules(concept.name, record, current):
            key = (name, changed["id"])
            if key in position:
                changes[position[key]] = (changes[position[key]][0], changed)
            else:
                position[key] = len(changes)
                changes.append((concept_by_name(name), changed))
        index += 1
    return changes
