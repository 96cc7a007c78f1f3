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

#: Activity ids the bridge owns on a care plan: monitoring items (and the same-day safety
#: activities of clinical/safety_activity.py, "safety-").
MONITORING_PREFIX = "mon-"
COURSE_STATUSES = ("active", "on-hold", "stopped", "completed")  # drafts have not started
OPEN_STATUSES = ("active", "on-hold")
RESULT_STATUSES = ("final", "amended", "corrected")
DONE_STATUSES = ("completed", "cancelled", "stopped")
MAX_PERIODIC = 1000  # items one test can repeat through in one computation (years of weekly ANC)
CLOSED_ON = "_closed_on"  # computed items only: the day an item was done or cancelled


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


def _first_result(results, window_start: dt.date, after: tuple | None = None,
                  until: dt.date | None = None):
    for result in results:
        if result[0] >= window_start and (after is None or result > after) \
                and (until is None or result[0] <= until):
            return result
    return None


def _item(measure: str, text: str, window_start: dt.date, due: dt.date, why: str,
          prescription_id: str, rule: str, result) -> dict:
    """One dated item. ``CLOSED_ON`` (the day it was done or cancelled) is for
    ``with_items`` only and never stored."""
    item = {"id": f"{MONITORING_PREFIX}{measure}-{due.isoformat()}", "kind": "monitoring",
            "topic": text, "status": "completed" if result else "scheduled",
            "description": f"{why}; due {window_start.isoformat()} to {due.isoformat()} "
                           f"(mappings/monitoring.yaml {rule})",
            "measure": measure, "due_from": window_start.isoformat(),
            "due_by": due.isoformat(), "reason_prescription_id": prescription_id}
    if result:
        item["result_measurement_id"] = result[1]
        item[CLOSED_ON] = result[0]
    return item


def _missed_baseline(item: dict, later) -> None:
    """A baseline with no result by its due day is cancelled once a later result exists: the
    plan keeps saying that it was never taken (a result after the start is no baseline)."""
    item["status"] = "cancelled"
    item["description"] += (f"; not done: no result by {item['due_by']}; the first result "
                            f"after the start ({later[0].isoformat()}) is not a baseline")
    item[CLOSED_ON] = later[0]


def _phase(phases: list[dict], days_on: int) -> dict:
    for phase in phases:
        if "until_day" not in phase or days_on < phase["until_day"]:
            return phase
    return phases[-1]


def _taking(partners: list[_Course], day: dt.date) -> bool:
    return any(p.start <= day and (p.open or day <= _end(p)) for p in partners)


def _end(course: _Course) -> dt.date:
    last = course.members[-1]
    return _day(last.get("end_date") or last["start_date"])


def _member_on(course: _Course, day: dt.date) -> dict:
    """The prescription of the course in force on ``day``."""
    return [p for p in course.members if _day(p["start_date"]) <= day][-1]


def _interaction_items(rule: str, test: dict, course: _Course,
                       partners: list[_Course], results: list) -> list[dict]:
    """Items due after an interacting drug starts or stops while the course runs."""
    spec = test.get("after_interacting_drug")
    if not spec:
        return []
    found = []
    for partner in partners:
        events = [("at_start", partner.start, partner.members[0], "Start")]
        if not partner.open and partner.members[-1].get("end_date"):
            events.append(("at_stop", _end(partner), partner.members[-1], "Stop"))
        for key, day, p, verb in events:
            if day < course.start or (not course.open and day > _end(course)):
                continue
            for window in spec.get(key) or []:
                window_start = day + dt.timedelta(days=window["from_day"])
                due = day + dt.timedelta(days=window["due_day"])
                found.append(_item(test["measure"], test["text"], window_start, due,
                                   f"{verb} of {p['drug']} on {day.isoformat()} (changes "
                                   f"{test['measure']} levels)",
                                   _member_on(course, day)["id"], rule,
                                   _first_result(results, window_start)))
    return found


def _fixed_items(rule: str, test: dict, course: _Course, results: list
                 ) -> tuple[list[dict], list[tuple]]:
    """Items of the windows counted from the start and from each dose change, and the
    results the periodic schedule counts from (those that completed one, and the first
    result after a missed baseline)."""
    fixed, anchors = [], []
    for index, p in enumerate(course.members):
        windows = test.get("at_start" if index == 0 else "at_dose_change") or []
        begin = _day(p["start_date"])
        what = (f"Start of {p['drug']} on {begin.isoformat()}" if index == 0 else
                f"Dose change of {p['drug']} on {begin.isoformat()}")
        for window in windows:
            window_start = begin + dt.timedelta(days=window["from_day"])
            due = begin + dt.timedelta(days=window["due_day"])
            baseline = window["due_day"] <= 0
            result = _first_result(results, window_start, until=due if baseline else None)
            item = _item(test["measure"], test["text"], window_start, due, what, p["id"],
                         rule, result)
            later = _first_result(results, due + dt.timedelta(days=1))
            if baseline and result is None and later is not None:
                _missed_baseline(item, later)
                result = later
            if result is not None:
                anchors.append(result)
            fixed.append(item)
    return fixed, anchors


def _periodic_items(rule: str, test: dict, course: _Course, results: list,
                    anchor: tuple | None, partners: list[_Course],
                    restarts: set[str]) -> list[dict]:
    """The repeating items (``then``) from ``anchor`` on: the next one is due from the last
    result; a result of an item after an interacting drug (``restarts``) restarts the count,
    and while such a drug is taken the interval is at most its ``every_days``."""
    phases, spec = test["then"], test.get("after_interacting_drug") or {}
    current = course.members[-1]
    if anchor is None:  # no fixed windows: repeat from the start of the course
        anchor = (course.start, "")
    found = []
    for _ in range(MAX_PERIODIC):
        phase = _phase(phases, (anchor[0] - course.start).days)
        every, window = phase["every_days"], phase.get("window_days", 0)
        if spec and _taking(partners, anchor[0]) and every > spec["every_days"]:
            every, window = spec["every_days"], spec["window_days"]
        due = anchor[0] + dt.timedelta(days=every)
        window_start = due - dt.timedelta(days=window)
        restart = max((r for r in results if r[1] in restarts and r > anchor
                       and r[0] < window_start), default=None)
        if restart is not None:  # a level after an interacting drug: count from it
            anchor = restart
            continue
        result = _first_result(results, window_start, after=anchor)
        found.append(_item(test["measure"], test["text"], window_start, due,
                           f"Every {every} days on {current['drug']}", current["id"], rule,
                           result))
        if result is None:
            break
        anchor = result
    return found


def _test_items(rule: str, test: dict, course: _Course, results: list,
                partners: list[_Course]) -> list[dict]:
    fixed, anchors = _fixed_items(rule, test, course, results)
    interacting = _interaction_items(rule, test, course, partners, results)
    items = fixed + interacting
    if course.open and test.get("then") and all(i["status"] != "scheduled" for i in fixed):
        restarts = {i["result_measurement_id"] for i in interacting
                    if "result_measurement_id" in i}
        items += _periodic_items(rule, test, course, results, max(anchors, default=None),
                                 partners, restarts)
    if not course.open:
        # Items that were due while the drug was taken and never done are cancelled; items
        # whose window opens after it stopped were never needed.
        ended = _end(course)
        items = [i for i in items if _day(i["due_from"]) <= ended]
        for item in items:
            if item["status"] == "scheduled":
                item["status"] = "cancelled"
                item["description"] += "; cancelled: the drug was stopped"
                item[CLOSED_ON] = ended
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
                spec = test.get("after_interacting_drug")
                partners = _courses(prescriptions, frozenset().union(
                    *(members(c) for c in spec["classes"]))) if spec else []
                for item in _test_items(rule, test, course, results, partners):
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


def with_items(plan: dict, computed: list[dict], on: dt.date | None = None) -> dict:
    """The plan with its monitoring items replaced by ``computed``. What a person or the
    overdue check set is kept: ``overdue_since``, and a status other than scheduled/completed
    (e.g. a clinician put an item on hold).

    An item that was flagged overdue is never dropped, so its Flag turns inactive instead of
    disappearing: when it is done or cancelled it gets ``overdue_until`` (the day of the
    result, of the stop, or ``on``, the day of the change), and one the schedules no longer
    give (a start date corrected, an older completed item) stays in the plan, cancelled if it
    was still open."""
    previous = {a["id"]: a for a in plan.get("activities") or []
                if a["id"].startswith(MONITORING_PREFIX)}
    merged = []
    for item in computed:
        item = copy.deepcopy(item)
        closed_on = item.pop(CLOSED_ON, None)
        before = previous.get(item["id"])
        if before is not None:
            if before.get("overdue_since"):
                item["overdue_since"] = before["overdue_since"]
                if before.get("overdue_until"):
                    item["overdue_until"] = before["overdue_until"]
            if before.get("status") not in ("scheduled", "completed", "cancelled") \
                    and item["status"] == "scheduled":
                item["status"] = before["status"]
        _overdue_until(item, closed_on or on)
        merged.append(item)
    given = {i["id"] for i in merged}
    for activity_id, before in previous.items():
        if activity_id in given or not before.get("overdue_since"):
            continue
        kept = copy.deepcopy(before)
        if kept.get("status") not in DONE_STATUSES:
            kept["status"] = "cancelled"
            kept["description"] = ((kept.get("description") or "")
                                   + "; cancelled: no longer in the schedule")[:1000]
        _overdue_until(kept, on)
        merged.append(kept)
    if not merged and not previous:
        return plan
    merged.sort(key=lambda i: (i["due_by"], i["id"]))
    others = [a for a in plan.get("activities") or []
              if not a["id"].startswith(MONITORING_PREFIX)]
    out = copy.deepcopy(plan)
    out["activities"] = others + merged
    return out


def _overdue_until(item: dict, closed_on: dt.date | None) -> None:
    """``overdue_until`` for a flagged item that is done or cancelled (never before
    ``overdue_since``); none for one that is open again."""
    since = item.get("overdue_since")
    if not since or item.get("status") not in DONE_STATUSES:
        item.pop("overdue_until", None)
        return
    if not item.get("overdue_until"):
        day = max(_day(since), closed_on or _day(since))
        item["overdue_until"] = day.isoformat()


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


def derived_id(prefix: str, base: str, limit: int = 48) -> str:
    """A record or activity id made from another id, within the id length limit."""
    import hashlib

    candidate = f"{prefix}{base}"
    if len(candidate) <= limit:
        return candidate
    digest = hashlib.sha1(base.encode("utf-8")).hexdigest()[:10]
    return f"{prefix}{base[:limit - len(prefix) - 11]}.{digest}"
