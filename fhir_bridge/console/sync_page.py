"""The console's sync page: per target the outbox by state, throughput and last success;
dead letters with their reasons and a retry button; conflicts field by field with keep-local
/ take-remote; pull rejects grouped by reason with the resources they hold back, and a retry
button."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from ..errors import BridgeError
from ..store import counters, outbox
from ..sync import operator as sync_operator
from ..sync import rejects as sync_rejects
from ..sync.conflicts import list_conflicts
from .diff import side_by_side
from .session import agent_name, requires

bp = Blueprint("console_sync", __name__)


def _bridge():
    return current_app.extensions["fhir_bridge"]


def targets_summary(bridge) -> list[dict]:
    """One row per target the counters know (and the configured one): totals and last
    successes; throughput is rows sent per hour over the last day of counter updates."""
    sync = bridge.config.get("sync") or {}
    with bridge.engine.connect() as conn:
        rows = counters.read_all(conn)
    by_target: dict[str, dict] = {}
    for name in [sync.get("target")] + [r.scope for r in rows if r.scope != "subscriptions"]:
        if name:
            by_target.setdefault(name, {"target": name, "sent": 0, "pulled": 0,
                                        "last_push": None, "last_pull": None,
                                        "push_failures": 0, "pull_failures": 0})
    for row in rows:
        summary = by_target.get(row.scope)
        if summary is None:
            continue
        if row.name == "push_sent":
            summary["sent"] = row.value
        elif row.name in ("pull_applied", "pull_imported"):
            summary["pulled"] += row.value
        elif row.name == "push_ok":
            summary["last_push"] = row.updated_at
        elif row.name == "pull_ok":
            summary["last_pull"] = row.updated_at
        elif row.name in ("push_unavailable", "push_dead"):
            summary["push_failures"] += row.value
        elif row.name in ("pull_failed", "pull_rejected"):
            summary["pull_failures"] += row.value
    return list(by_target.values())


@bp.get("/console/sync")
@requires("sync.view")
def page():
    return _page()


def _refused(what: str, exc: BridgeError):
    """An action that did not happen (another operator's won, say): the page with the
    reason, answered with the error's status (409), not a redirect that hides it."""
    flash(f"{what}: {exc.message}", "error")
    return _page(), exc.status


def _page() -> str:
    bridge = _bridge()
    conflicts = list_conflicts(bridge.engine, "open")
    for conflict in conflicts:
        conflict["rows"] = side_by_side(conflict.pop("local"), conflict.pop("remote_content"))
    return render_template(
        "sync.html", targets=targets_summary(bridge),
        states=outbox.status_counts(bridge.engine),
        dead=outbox.listing(bridge.engine, "dead"), conflicts=conflicts,
        rejects=sync_rejects.grouped(bridge.engine)[:50],
        now=dt.datetime.now(dt.timezone.utc))


@bp.post("/console/sync/dead-letters/retry")
@requires("sync.act")
def retry():
    seqs = [int(v) for v in request.form.getlist("seq") if v.isdigit()]
    if not seqs and request.form.get("all") != "1":
        flash("choose the dead letters to retry", "error")
        return redirect(url_for("console_sync.page"))
    try:
        count = sync_operator.retry_dead(_bridge(), seqs or None, agent_name())
    except BridgeError as exc:
        return _refused("dead letters not retried", exc)
    flash(f"{count} dead letter{'s' if count != 1 else ''} back in the outbox", "ok")
    return redirect(url_for("console_sync.page"))


@bp.post("/console/sync/conflicts/<int:conflict_id>")
@requires("sync.act")
def resolve(conflict_id: int):
    keep = request.form.get("keep")
    if keep not in ("local", "remote"):
        flash("choose keep-local or take-remote", "error")
        return redirect(url_for("console_sync.page"))
    try:
        result = sync_operator.resolve_conflict(_bridge(), conflict_id, keep, agent_name())
    except BridgeError as exc:
        return _refused(f"conflict {conflict_id} not resolved", exc)
    flash(f"conflict {conflict_id}: {result}", "ok")
    return redirect(url_for("console_sync.page"))


@bp.post("/console/sync/rejects/retry")
@requires("sync.act")
def retry_rejects():
    """Read the rejected resources from their server again and pull them (after a mapping
    change); what maps now is taken in."""
    reason = request.form.get("reason") or None
    try:
        report = sync_operator.retry_rejects(_bridge(), agent_name(), reason_contains=reason)
    except BridgeError as exc:
        flash(f"rejects not retried: {exc.message}", "error")
    else:
        flash(f"{report.taken} of {report.tried} rejected resources taken in; "
              f"{report.still_rejected} still rejected, {report.gone} gone from the server",
              "ok")
    return redirect(url_for("console_sync.page"))
