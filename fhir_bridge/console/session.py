"""Console sign-in: the operator pastes a bearer token (the same tokens as the API: the
development issuer, the bridge's token endpoint or a configured OIDC issuer); the token is
verified once and the console keeps a signed session cookie (HttpOnly, SameSite=Strict,
Secure on HTTPS) that ends when the token expires. Every form carries the session's CSRF
token; a POST without it is refused (403)."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from dataclasses import replace
from functools import wraps
from typing import Any, Callable

from flask import abort, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from ..auth.guard import EXTENSION as AUTH, principal_from_claims
from ..auth.principal import UNRESTRICTED, Principal
from .permissions import all_granted

log = logging.getLogger(__name__)

SECRET_ENV = "FHIR_BRIDGE_CONSOLE_SECRET"
#: Longest a console session lasts, whatever the token's lifetime.
MAX_SESSION_SECONDS = 8 * 3600


def configure(app, settings: dict[str, Any]) -> None:
    secret = os.environ.get(settings.get("secret_env") or SECRET_ENV)
    if not secret:
        # Sessions then last as long as this process: fine for one server, not for several.
        log.warning("console: %s is not set; sessions end when the server restarts",
                    settings.get("secret_env") or SECRET_ENV)
        secret = secrets.token_urlsafe(32)
    app.secret_key = secret
    app.config.update(SESSION_COOKIE_NAME="fhir_bridge_console",
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_PATH="/console")
    app.session_interface = ConsoleSessions(settings.get("secure_cookie", "auto"))


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with Secure set when the request came over HTTPS
    (``secure_cookie: auto``, behind a proxy with ``trust_proxy``) or always (``true``)."""

    def __init__(self, secure: Any):
        self.secure = secure

    def get_cookie_secure(self, app) -> bool:
        if self.secure == "auto":
            return request.is_secure
        return bool(self.secure)


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(403, "the form has no valid CSRF token: reload the page and try again")


def sign_in(token: str) -> Principal:
    """Verify the token; a patient-context token or one granting no console page is refused
    (BridgeError subclasses: the login page shows the reason)."""
    from ..errors import Forbidden

    state = current_app.extensions[AUTH]
    principal = principal_from_claims(state.verifier.verify(token))
    if principal.context == "patient":
        raise Forbidden("a patient-context token cannot sign in to the console")
    if not all_granted(principal):
        raise Forbidden("the token's scopes grant no console page")
    claims = principal.claims
    session.clear()
    session.update(sub=principal.subject, iss=principal.issuer, client=principal.client_id,
                   scope=" ".join(str(s) for s in principal.scopes),
                   exp=min(int(claims.get("exp", 0)), int(time.time()) + MAX_SESSION_SECONDS),
                   csrf=secrets.token_urlsafe(24))
    session.permanent = False
    return principal


def operator() -> Principal | None:
    """The signed-in operator of this request, or None (no session, or it expired)."""
    if "operator" in g:
        return g.operator
    state = current_app.extensions[AUTH]
    found = None
    if not state.enabled:
        found = UNRESTRICTED
    elif session.get("sub") and session.get("exp", 0) > time.time():
        found = principal_from_claims({"sub": session["sub"], "iss": session["iss"],
                                       "scope": session["scope"],
                                       **({"client_id": session["client"]}
                                          if session.get("client") else {})})
        found = replace(found, claims={})
    g.operator = found
    return found


def requires(permission: str) -> Callable:
    """A console view for signed-in operators whose scopes grant ``permission``; POSTs also
    need the CSRF token."""
    def wrap(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            who = operator()
            if who is None:
                return redirect(url_for("console.login", next=request.path))  # a path only
            if permission not in all_granted(who):
                abort(403, f"your scopes do not grant {permission}")
            if request.method == "POST":
                check_csrf()
            return view(*args, **kwargs)
        return guarded
    return wrap


def agent_name() -> str:
    who = operator()
    return f"console:{who.subject}" if who is not None else "console"

