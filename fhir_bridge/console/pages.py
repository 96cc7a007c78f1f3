"""The console's read-only pages: subscriptions, safety alerts across patients, the audit
trail, the patient list and a patient's timeline."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, render_template, request
from markupsafe import Markup

from .. import audit
from ..fhir import jsonio
from ..store import tables as t
from ..store.records import as_utc
from . import charts, timeline
from .session import agent_name, requires

bp = Blueprint("console_pages", __name__)

#: Safety alerts, most urgent first: the suicide-risk Flag, then overdue monitoring, then the
#: other Flags, then detected issues by severity.
FLAG_ORDER = {"suicide-risk": 0, "monitoring-overdue": 1}
SEVERITY_ORDER = {"high": 0, "moderate": 1, "low": 2}
AUDIT_FILTERS = ("subtype", "outcome", "agent", "patient_id", "action")
AUDIT_PAGE = 100


def _bridge():
    return current_app.extensions["fhir_bridge"]


def _today() -> dt.date:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(_bridge().config.get("default_timezone") or "UTC")
    return dt.datetime.now(zone).date()


@bp.get("/console/subscriptions")
@requires("subscriptions.view")
def subscriptions():
    s, d = t.subscriptions.c, t.subscription_delivery.c
    with _bridge().engine.connect() as conn:
        rows = conn.execute(
            sa.select(s.id, s.kind, s.topic, s.status, s.event_count, s.last_updated,
                      d.delivered_through, d.attempts, d.last_sent_at, d.last_error,
                      d.next_attempt_at)
            .select_from(t.subscriptions.outerjoin(t.subscription_delivery,
                                                   d.subscription_id == s.id))
            .order_by(s.status, s.id)).all()
    listed = [{"id": r.id, "kind": r.kind, "topic": r.topic, "status": r.status,
               "events": r.event_count, "delivered": r.delivered_through or 0,
               "backlog": max(r.event_count - (r.delivered_through or 0), 0),
               "failures": r.attempts or 0, "last_error": r.last_error,
               "last_sent": as_utc(r.last_sent_at) if r.last_sent_at else None,
               "next_attempt": as_utc(r.next_attempt_at) if r.next_attempt_at else None}
              for r in rows]
    return render_template("subscriptions.html", subscriptions=listed)


def safety_alerts(engine) -> list[dict]:
    r = t.resources.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r.resource_type, r.id, r.patient_id, r.content).where(
            r.resource_type.in_(("Flag", "DetectedIssue")), r.deleted.is_(False))).all()
    alerts = []
    for row in rows:
        resource = jsonio.loads(row.content)
        coding = ((resource.get("code") or {}).get("coding") or [{}])[0]
        if row.resource_type == "Flag":
            if resource.get("status") != "active":
                continue
            rank = (0, FLAG_ORDER.get(coding.get("code"), 2))
            when = (resource.get("period") or {}).get("start")
        else:
            if resource.get("status") in ("cancelled", "entered-in-error"):
                continue
            rank = (1, SEVERITY_ORDER.get(resource.get("severity"), 3))
            when = resource.get("identifiedDateTime")
        alerts.append({"type": row.resource_type, "id": row.id, "patient_id": row.patient_id,
                       "code": coding.get("code"),
                       "text": (resource.get("code") or {}).get("text") or coding.get("display"),
                       "severity": resource.get("severity"), "since": when, "rank": rank})
    return sorted(alerts, key=lambda a: (a["rank"], a["since"] or "", a["id"]))


@bp.get("/console/safety")
@requires("safety.view")
def safety():
    return render_template("safety.html", alerts=safety_alerts(_bridge().engine))


@bp.get("/console/audit")
@requires("audit.view")
def audit_trail():
    a = t.audit_events.c
    chosen = {name: request.args.get(name, "").strip() for name in AUDIT_FILTERS}
    query = sa.select(a.id, a.recorded, a.action, a.subtype, a.outcome, a.agent,
                      a.patient_id, a.content).order_by(a.recorded.desc()).limit(AUDIT_PAGE)
    for name, value in chosen.items():
        if value:
            query = query.where(getattr(a, name) == value[:200])
    with _bridge().engine.connect() as conn:
        rows = conn.execute(query).all()
        subtypes = [v for (v,) in conn.execute(sa.select(a.subtype).distinct()
                                                .order_by(a.subtype))]
    events = []
    for row in rows:
        content = jsonio.loads(row.content)
        events.append({"recorded": as_utc(row.recorded), "action": row.action,
                       "subtype": row.subtype, "outcome": row.outcome, "agent": row.agent,
                       "patient_id": row.patient_id,
                       "entities": [e.get("what", {}).get("reference") for e in
                                    content.get("entity", []) if e.get("what")][:5]})
    return render_template("audit.html", events=events, chosen=chosen, subtypes=subtypes,
                           page=AUDIT_PAGE)


@bp.get("/console/patients")
@requires("patients.view")
def patients():
    r = t.records.c
    with _bridge().engine.connect() as conn:
        ids = [v for (v,) in conn.execute(sa.select(r.id).where(r.concept == "patient")
                                           .order_by(r.id).limit(500))]
    return render_template("patients.html", patient_ids=ids)


@bp.get("/console/patients/<patient_id>")
@requires("patients.view")
def patient_timeline(patient_id: str):
    bridge = _bridge()
    if not bridge.store.exists("patient", patient_id):
        abort(404, f"no patient {patient_id}")
    course = timeline.build(bridge.store, patient_id, _today())
    r = t.resources.c
    with bridge.engine.connect() as conn:
        fhir_id = conn.execute(sa.select(r.id).where(
            r.resource_type == "Patient", r.concept == "patient",
            r.record_id == patient_id)).scalar()
    audit.record(bridge.engine, audit.AuditEntry(
        action="R", subtype="read", agent=agent_name(), patient_id=patient_id,
        patient_reference=f"Patient/{fhir_id}" if fhir_id else None,
        description="console patient timeline"))
    return render_template("timeline.html", timeline=course,
                           chart=Markup(charts.render(course)))
