"""The same-day safety activity: an assessment that raised a safety alert puts an urgent
follow-up on the patient's active care plan, due the day of the assessment."""

from __future__ import annotations

import copy

from .monitoring import derived_id

#: Activity ids the bridge owns for safety alerts.
SAFETY_PREFIX = "safety-"
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
