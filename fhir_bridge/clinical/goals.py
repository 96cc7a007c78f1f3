"""How a goal with a measurable target stands (Goal.achievementStatus), from the patient's
results: the totals of the target's rating scale or the values of its measurement.

Codes are those of http://terminology.hl7.org/CodeSystem/goal-achievement (HL7 Terminology
7.0.1 package, CodeSystem-goal-achievement.json; table mappings/terminology/goal-achievement.csv):

- ``achieved``: the latest result meets the target ("PHQ-9 < 5" and a score of 4);
- ``in-progress``: one result so far, and it does not meet the target;
- ``improving`` / ``worsening`` / ``no-change``: the latest result, which does not meet the
  target, against the one before it (for "<" and "<=" lower is better, for ">" and ">="
  higher is better, for a target without a comparator nearer is better).

Results count from the goal's start date. A goal without a target, or with no result yet,
keeps the status it was sent with."""

from __future__ import annotations

import copy
from typing import Iterable

RESULT_STATUSES = ("final", "amended", "corrected")


def _meets(value: float, comparator: str | None, target: float) -> bool:
    return {"<": value < target, "<=": value <= target, ">": value > target,
            ">=": value >= target, None: value == target}[comparator]


def _better(latest: float, before: float, comparator: str | None, target: float) -> int:
    """1 when latest is better than before, -1 when worse, 0 when the same."""
    if comparator in ("<", "<="):
        gain = before - latest
    elif comparator in (">", ">="):
        gain = latest - before
    else:
        gain = abs(before - target) - abs(latest - target)
    return (gain > 0) - (gain < 0)


def results(measure: str, assessments: Iterable[dict], measurements: Iterable[dict],
            since: str | None = None) -> list[float]:
    """The values of a target's measure, oldest first: an instrument's totals or a
    measurement kind's values (a blood pressure has no single value and gives none)."""
    found = [(a["effective"], a["id"], a["total"]) for a in assessments
             if a.get("instrument") == measure and a.get("total") is not None
             and a.get("status", "final") in RESULT_STATUSES]
    found += [(m["effective"], m["id"], m["value"]) for m in measurements
              if m.get("kind") == measure and m.get("value") is not None
              and m.get("status", "final") in RESULT_STATUSES]
    return [value for effective, _, value in sorted(found)
            if since is None or effective[:10] >= since]


def achievement(goal: dict, assessments: Iterable[dict],
                measurements: Iterable[dict]) -> str | None:
    """The goal-achievement code for a goal, or None when it cannot be computed."""
    target = goal.get("target")
    if not target:
        return None
    values = results(target["measure"], assessments, measurements, goal.get("start_date"))
    if not values:
        return None
    comparator, wanted = target.get("comparator"), target["value"]
    if _meets(values[-1], comparator, wanted):
        return "achieved"
    if len(values) == 1:
        return "in-progress"
    return {1: "improving", -1: "worsening", 0: "no-change"}[
        _better(values[-1], values[-2], comparator, wanted)]


def with_achievement(plan: dict, assessments: list[dict], measurements: list[dict]) -> dict:
    """The plan with each goal's computed achievement status (the same plan when none
    changes)."""
    goals = []
    for goal in plan.get("goals") or []:
        status = achievement(goal, assessments, measurements)
        if status is not None and goal.get("achievement_status") != status:
            goal = {**copy.deepcopy(goal), "achievement_status": status}
        goals.append(goal)
    if goals == (plan.get("goals") or []):
        return plan
    return {**plan, "goals": goals}
