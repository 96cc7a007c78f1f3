"""Care plans: goal targets, activities, monitoring items, overdue flags, safety rules, the CarePlan narrative."""

from __future__ import annotations

import html
import re

from ..catalogs import measurement_kinds
from .codes import coded
from .registry import transform


@transform("activity_code")
def _activity_code():
    """Forward: [kind, topic, measure] -> activity.detail.code: local activity-kind coding, topic
    as text; a monitoring activity's test adds the measurement's coding (verified LOINC or
    local). Read back by plan_activity_detail (activities.py)."""
    def forward(v, a, c):
        kind, topic, measure = v
        if kind == "medication":
            return None
        display = kind.replace("-", " ").capitalize()
        codings = [{"system": c.terminology.local_system("care-plan-activity"),
                    "code": kind, "display": display}]
        if measure is not None:
            codings += coded(c, ["measurements"], measurement_kinds()[measure].code,
                             "measurement")["coding"]
        return {"coding": codings, "text": topic}

    return forward, (lambda v, a, c: None)  # read back by plan_activity_detail


@transform("monitored_prescription")
def _monitored_prescription():
    """A monitoring item's prescription <-> an extension (args.url) of activity.detail with a
    Reference to the MedicationRequest: R4 detail.reasonReference may not point at one."""
    def forward(v, a, c):
        return [{"url": a["url"],
                 "valueReference": {"reference": c.mapper.reference("prescription", v)}}]

    def reverse(v, a, c):
        ext = next((x for x in v if x.get("url") == a["url"]), None)
        if ext is None:
            return None
        return c.mapper.internal_id("prescription", ext["valueReference"].get("reference"), c)

    return forward, reverse


_OVERDUE = re.compile(r"^Overdue since (\d{4}-\d\d-\d\d)(?: until (\d{4}-\d\d-\d\d))?$")


@transform("overdue_reason")
def _overdue_reason():
    """[overdue_since, overdue_until] <-> activity.detail.statusReason (local code "overdue",
    the dates in the text: "Overdue since 2025-10-21", "... until 2025-10-24" once done)."""
    def forward(v, a, c):
        since, until = v
        if since is None:
            return None
        return {"coding": [{"system": c.terminology.local_system("activity-status-reason"),
                            "code": "overdue", "display": "Overdue"}],
                "text": f"Overdue since {since}" + (f" until {until}" if until else "")}

    def reverse(v, a, c):
        found = _OVERDUE.match(v.get("text") or "")
        if found is None:
            c.unmapped.append(("activity.detail.statusReason", "not an overdue reason"))
            return None, None
        return found.group(1), found.group(2)

    return forward, reverse


@transform("overdue_flag_status")
def _overdue_flag_status():
    """Forward only: an overdue item's Flag is active until the item is done."""
    def forward(v, a, c):
        return "inactive" if v in ("completed", "cancelled", "stopped") else "active"

    return forward, (lambda v, a, c: None)


@transform("overdue_flag_code")
def _overdue_flag_code():
    """Forward only: [topic, due_by] as the Flag's code (local code, readable text)."""
    def forward(v, a, c):
        topic, due_by = v
        text = f"Monitoring overdue: {topic} (due {due_by})"
        return {"coding": [{"system": c.terminology.local_system("clinical-alert"),
                            "code": "monitoring-overdue", "display": "Monitoring overdue"}],
                "text": text}

    return forward, (lambda v, a, c: None)


@transform("safety_rule_code")
def _safety_rule_code():
    """[rule, text] <-> DetectedIssue.code: local code (system medication-safety-rule)."""
    def forward(v, a, c):
        rule, text = v
        return {"coding": [{"system": c.terminology.local_system("medication-safety-rule"),
                            "code": rule, "display": text}], "text": text}

    def reverse(v, a, c):
        system = c.terminology.local_system("medication-safety-rule")
        coding = next((x for x in v.get("coding") or [] if x.get("system") == system), None)
        if coding is None:
            c.unmapped.append(("code", "no medication-safety-rule coding"))
            return None, v.get("text")
        return coding.get("code"), v.get("text") or coding.get("display")

    return forward, reverse


@transform("fixed_by_word")
def _fixed_by_word():
    """Forward only: a word looked up in args.map (e.g. activity kind -> detail.kind)."""
    return (lambda v, a, c: a["map"].get(v)), (lambda v, a, c: None)


@transform("careplan_narrative")
def _careplan_narrative():
    """Forward only: the CarePlan's generated narrative (title, period, goals, activities)."""
    def forward(v, a, c):
        plan = c.record
        esc = html.escape
        parts = [f"<p><b>{esc(plan['title'])}</b> ({esc(plan['status'])}), from "
                 f"{esc(plan['period_start'])}"
                 + (f" to {esc(plan['period_end'])}" if plan.get("period_end") else "") + "</p>"]
        if plan.get("description"):
            parts.append(f"<p>{esc(plan['description'])}</p>")
        if plan.get("goals"):
            parts.append("<p>Goals:</p><ul>" + "".join(
                f"<li>{esc(g['description'])} ({esc(g['status'])})</li>" for g in plan["goals"])
                + "</ul>")
        if plan.get("activities"):
            items = []
            for act in plan["activities"]:
                if act["kind"] == "medication":
                    items.append(f"<li>Medication: prescription {esc(act['prescription_id'])}</li>")
                else:
                    label = act["kind"].replace("-", " ").capitalize()
                    due = f", due {esc(act['due_by'])}" if act.get("due_by") else ""
                    late = f", overdue since {esc(act['overdue_since'])}" \
                        if act.get("overdue_since") else ""
                    items.append(f"<li>{esc(label)}: {esc(act['topic'])} "
                                 f"({esc(act['status'])}{due}{late})</li>")
            parts.append("<p>Activities:</p><ul>" + "".join(items) + "</ul>")
        return {"status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">' + "".join(parts) + "</div>"}

    return forward, (lambda v, a, c: None)
