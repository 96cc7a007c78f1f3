"""The operator console at /console: sync health (outbox, dead letters, conflicts, pull
rejects), subscriptions, safety alerts across patients, the audit trail, and a patient's
timeline. Server-rendered HTML (Jinja templates and one stylesheet shipped in this package,
nothing loaded from elsewhere); sign-in with a bearer token, a session cookie, CSRF tokens on
every form, pages and actions granted by the token's scopes (docs/console.md)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, flash, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from ..errors import BridgeError
from . import pages, session as console_session, sync_page
from .permissions import all_granted

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/console/static")
#: The pages in the menu: (endpoint, title, permission).
MENU = (("console_sync.page", "Sync", "sync.view"),
        ("console_pages.subscriptions", "Subscriptions", "subscriptions.view"),
        ("console_pages.safety", "Safety", "safety.view"),
        ("console_pages.audit_trail", "Audit", "audit.view"),
        ("console_pages.patients", "Patients", "patients.view"))
#: Headers on every console answer: no framing, no inline or outside scripts, no caching.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}


def _error_page(exc):
    """Console errors as a page (the API answers OperationOutcome, api/outcome.py)."""
    status = exc.code if isinstance(exc, HTTPException) else exc.status
    message = exc.description if isinstance(exc, HTTPException) else exc.message
    return render_template("error.html", status=status, message=message), status


BLUEPRINTS = (bp, sync_page.bp, pages.bp)
for _blueprint in BLUEPRINTS:
    _blueprint.register_error_handler(HTTPException, _error_page)
    _blueprint.register_error_handler(BridgeError, _error_page)


def _safe_next(target: str | None) -> str:
    """Only a console path (no scheme, no host): never an open redirect."""
    if target and target.startswith("/console") and not urlsplit(target).netloc \
            and "\\" not in target:
        return target
    return url_for("console.home")


@bp.get("/console")
@bp.get("/console/")
def home():
    who = console_session.operator()
    if who is None:
        return redirect(url_for("console.login"))
    granted = all_granted(who)
    for endpoint, _, permission in MENU:
        if permission in granted:
            return redirect(url_for(endpoint))
    return redirect(url_for("console.login"))


@bp.route("/console/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        console_session.check_csrf()
        token = request.form.get("token", "").strip()
        try:
            console_session.sign_in(token)
        except BridgeError as exc:
            flash(f"not signed in: {exc.message}", "error")
            return render_template("login.html", next=request.form.get("next")), exc.status
        return redirect(_safe_next(request.form.get("next")))
    return render_template("login.html", next=request.args.get("next"))


@bp.post("/console/logout")
def logout():
    console_session.check_csrf()
    session.clear()
    return redirect(url_for("console.login"))


def _context() -> dict:
    who = console_session.operator() if request.path.startswith("/console") else None
    granted = all_granted(who) if who else set()
    return {"operator": who, "csrf_token": console_session.csrf_token,
            "menu": [(e, title) for e, title, p in MENU if p in granted]}


def install(app: Flask) -> None:
    settings = dict((app.extensions["fhir_bridge"].config.get("console") or {}))
    console_session.configure(app, settings)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.context_processor(_context)

    @app.after_request
    def _console_headers(response):
        if request.path.startswith("/console"):
            response.headers.update(SECURITY_HEADERS)
            if request.is_secure:
                response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response
