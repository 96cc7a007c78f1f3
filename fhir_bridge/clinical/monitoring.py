"""Monitoring schedules (``mappings/monitoring.yaml``): the lab tests and vital signs a drug
needs, as dated items on the patient's active care plan.

The items are derived, not edited: from the patient's prescriptions (courses and dose changes)
and measurements, ``items`` computes every due item, which result completed it, and the next
periodic one. Saving a prescription or a measurement recomputes them (``with_items``) in the
same transaction. Time only enters through ``mark_overdue(plan, today)``, which the
``fhir-bridge monitoring check`` command runs: an open item past its due date gets
``overdue_since``, which the care-plan mapping writes as an active Flag.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ..mapping.valuemaps import MAPPINGS_DIR
from .drugs import drug_key, members

#: Activity ids the bridge owns on a care plan: monitoring items and same-day safety activities.
MONITORING_PREFIX = "mon-"
SAFETY_PREFIX = "safety-"
COURSE_STATUSES = ("active", "on-hold", "stopped", "completed")  # drafts have not started
OPEN_STATUSES = ("active", "on-hold")
RESULT_STATUSES = ("final", "amended", "corrected")
DONE_STATUSES = ("completed", "cancelled", "stopped")
MAX_PERIODIC = 1000  # items one test can repeat through in one computation (years of weekly ANC)


@lru_cache(maxsize=4)
def schedules(directory: Path = MAPPINGS_DIR) -> dict[str, dict[str, Any]]:
    with open(directory / "monitoring.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _day(value: str) -> dt.date:
    return dt.date.fromisoformat(value[:10])


@dataclass
class _Course:
    """Prescriptions of one class linked by dose changes, oldest first."""

    members: list[dict]

    @property
    def start(self) -> dt.date:
        return _day(self.members[0]["start_date"])

    @property
    def open(self) -> bool:
        return self.members[-1]["status"] in OPEN_STATUSES


def _courses(prescriptions: list[dict], drugs: frozenset[str]) -> list[_Course]:
    mine = {p["id"]: p for p in prescriptions
            if p["status"] in COURSE_STATUSES and drug_key(p["drug"]) in drugs}
    following: dict[str, dict] = {}
    for p in mine.values():
        if p.get("prior_prescription_id") in mine:
            following[p["prior_prescription_id"]] = p
    out = []
    for p in sorted(mine.values(), key=lambda r: (r["start_date"], r["id"])):
        if p.get("prior_prescription_id") in mine:
            continue  # not the first of its course
        chain, seen = [p], {p["id"]}
        while chain[-1]["id"] in following and following[chain[-1]["id"]]["id"] not in seen:
            chain.append(following[chain[-1]["id"]])
            seen.add(chain[-1]["id"])
        out.append(_Course(chain))
    return out


def _results(measurements: list[dict], kinds: set[str]) -> list[tuple[dt.date, str]]:
    return sorted((_day(m["effective"]), m["id"]) for m in measurements
                  if m["kind"] in kinds and m.get("status", "final") in RESULT_STATUSES)


def _first_result(results, window_start: dt.date, after: tuple | None = None):
    for result in results:
        if result[0] >= window_start and (after is None or result > after):
            return result
    return None


def _item(measure: str, text: str, window_start: dt.date, due: dt.date, why: str,
          prescription_id: str, rule: str, result) -> dict:
    item = {"id": f"{MONITORING_PREFIX}{measure}-{due.isoformat()}", "kind": "monitoring",
            "topic": text, "status": "completed" if result else "scheduled",
            "description": f"{why}; due {window_start.isoformat()} to {due.isoformat()} "
                           f"(mappings/monitoring.yaml {rule})",
            "measure": measure, "due_from": window_start.isoformat(),
            "due_by": due.isoformat(), "reason_prescription_id": prescription_id}
    if result:
        item["result_measurement_id"] = result[1]
    return item


def _phase(phases: list[dict], days_on: int) -> dict:
    for phase in phases:
        if "until_day" not in phase or days_on < phase["until_day"]:
            return phase
    return phases[-1]


def _test_items(rule: str, test: dict, course: _Course, results: list) -> list[dict]:
    measure, text = test["measure"], test["text"]
    fixed = []
    for index, p in enumerate(course.members):
        windows = test.get("at_start" if index == 0 else "at_dose_change") or []
        begin = _day(p["start_date"])
        what = (f"Start of {p['drug']} on {begin.isoformat()}" if index == 0 else
                f"Dose change of {p['drug']} on {begin.isoformat()}")
        for window in windows:
            window_start = begin + dt.timedelta(days=window["from_day"])
            due = begin + dt.timedelta(days=window["due_day"])
            fixed.append(_item(measure, text, window_start, due, what, p["id"], rule,
                               _first_result(results, window_start)))
    items = list(fixed)
    phases = test.get("then")
    if course.open and phases and all(i["status"] == "completed" for i in fixed):
        used = {i["result_measurement_id"] for i in fixed}
        anchor = max((r for r in results if r[1] in used), default=None)
        current = course.members[-1]
        if anchor is None:  # no fixed windows: repeat from the start of the course
            anchor = (course.start, "")
        for _ in range(MAX_PERIODIC):
            phase = _phase(phases, (anchor[0] - course.start).days)
            due = anchor[0] + dt.timedelta(days=phase["every_days"])
            window_start = due - dt.timedelta(days=phase.get("window_days", 0))
            result = _first_result(results, window_start, after=anchor)
            items.append(_item(measure, text, window_start, due,
                               f"Every {phase['every_days']} days on {current['drug']}",
                               current["id"], rule, result))
            if result is None:
                break
            anchor = result
    if not course.open:
        # Items that were due while the drug was taken and never done are cancelled; items
        # whose window opens after it stopped were never needed.
        last = course.members[-1]
        ended = _day(last.get("end_date") or last["start_date"])
        items = [i for i in items if _day(i["due_from"]) <= ended]
        for item in items:
            if item["status"] == "scheduled":
                item["status"] = "cancelled"
                item["description"] += "; cancelled: the drug was stopped"
    return items


def items(prescriptions: list[dict], measurements: list[dict]) -> list[dict]:
    """Every monitoring item the schedules give for one patient's prescriptions and results.

    Per measure only the newest completed item is kept (older ones are in the plan's history
    and in the results themselves), with every open and cancelled one."""
    found: dict[str, dict] = {}
    for rule, schedule in schedules().items():
        drugs = members(schedule["class"])
        for course in _courses(prescriptions, drugs):
            for test in schedule["tests"]:
                results = _results(measurements, {test["measure"],
                                                  *test.get("also_completed_by", ())})
                for item in _test_items(rule, test, course, results):
                    known = found.get(item["id"])
                    if known is None or (known["status"] == "cancelled"
                                         and item["status"] != "cancelled"):
                        found[item["id"]] = item
    newest_done: dict[str, str] = {}
    for item in found.values():
        if item["status"] == "completed":
            best = newest_done.get(item["measure"])
            if best is None or found[best]["due_by"] < item["due_by"]:
                newest_done[item["measure"]] = item["id"]
    kept = [i for i in found.values()
            if i["status"] != "completed" or newest_done[i["measure"]] == i["id"]]
    return sorted(kept, key=lambda i: (i["due_by"], i["id"]))


def with_items(plan: dict, computed: list[dict]) -> dict:
    """The plan with its monitoring items replaced by ``computed``. What a person or the
    overdue check set is kept: ``overdue_since``, and a status other than scheduled/completed
    (e.g. a clinician put an item on hold)."""
    previous = {a["id"]: a for a in plan.get("activities") or []
                if a["id"].startswith(MONITORING_PREFIX)}
    merged = []
    for item in computed:
        item = copy.deepcopy(item)
        before = previous.get(item["id"])
        if before is not None:
            if before.get("overdue_since"):
                item["overdue_since"] = before["overdue_since"]
            if before.get("status") not in ("scheduled", "completed", "cancelled") \
                    and item["status"] == "scheduled":
                item["status"] = before["status"]
        merged.append(item)
    if not merged and not previous:
        return plan
    others = [a for a in plan.get("activities") or []
              if not a["id"].startswith(MONITORING_PREFIX)]
    out = copy.deepcopy(plan)
    out["activities"] = others + merged
    return out


def active_plan(plans: list[dict]) -> dict | None:
    """The plan new activities go to: the newest active one."""
    active = [p for p in plans if p["status"] == "active"]
    return max(active, key=lambda p: (p["period_start"], p["created"], p["id"])) \
        if active else None


def overdue(plan: dict, today: dt.date) -> list[dict]:
    """Open monitoring items whose due date is before ``today``."""
    return [a for a in plan.get("activities") or []
            if a["id"].startswith(MONITORING_PREFIX) and a.get("due_by")
            and a.get("status") not in DONE_STATUSES and _day(a["due_by"]) < today]


def mark_overdue(plan: dict, today: dt.date) -> tuple[dict, list[dict]]:
    """(the plan with ``overdue_since`` on each newly overdue item, those items)."""
    out = copy.deepcopy(plan)
    newly = []
    for activity in out.get("activities") or []:
        if activity in overdue(plan, today) and not activity.get("overdue_since"):
            activity["overdue_since"] = (_day(activity["due_by"])
                                         + dt.timedelta(days=1)).isoformat()
            newly.append(activity)
    return out, newly


# --- same-day safety activity ---------------------------------------------------------------

SAFETY_TOPIC = "Same-day safety assessment"


def safety_activity(assessment: dict, alert_texts: list[str]) -> dict:
    """An urgent follow-up for an assessment that raised a safety alert: due the day of the
    assessment (R4 CarePlan.activity.detail has no priority; the urgency is the same-day
    scheduledPeriod and the text)."""
    day = assessment["effective"][:10]
    return {"id": derived_id(SAFETY_PREFIX, assessment["id"]), "kind": "follow-up",
            "topic": SAFETY_TOPIC, "status": "scheduled",
            "description": "Urgent, today: " + " ".join(alert_texts)
                           + f" (assessment {assessment['id']})",
            "due_from": day, "due_by": day, "reason_assessment_id": assessment["id"]}


def with_safety_activity(plan: dict, activity: dict) -> dict:
    """The plan with the safety activity added; one already there (perhaps completed by now)
    is left as it is."""
    if any(a["id"] == activity["id"] for a in plan.get("activities") or []):
        return plan
    out = copy.deepcopy(plan)
    out.setdefault("activities", []).append(activity)
    return out


def derived_id(prefix: str, base: str, limit: int = 48) -> str:
    """A record or activity id made from another id, within the id length limit."""
    import hashlib

    candidate = f"{prefix}{base}"
    if len(candidate) <= limit:
        return candidate
    digest = hashlib.sha1(base.encode("utf-8")).hexdigest()[:10]
    return f"{prefix}{base[:limit - len(prefix) - 11]}.{digest}"
