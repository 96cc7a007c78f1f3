"""The operator console: who may see and do what, CSRF on every form, actions through the
same code and audit as the CLI, pages that show the state (tested with Flask's client; the
browser tests drive the same pages in Chromium)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from fhir_bridge.demo import load_demo
from fhir_bridge.store import tables as t

from .console_support import csrf_of, make_dead_letters, sign_in
from .conftest import token_for


@pytest.fixture
def demo_app(sqlite_app):
    load_demo(sqlite_app)
    return sqlite_app


@pytest.fixture
def web(demo_app):
    return demo_app.test_client()


def test_pages_need_a_signed_in_operator(web):
    response = web.get("/console/sync")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=/console/sync")


def test_sign_in_keeps_a_hardened_session_cookie(web, demo_app):
    page = web.get("/console/login").get_data(as_text=True)
    response = web.post("/console/login", data={"token": token_for(demo_app, "system/*.rs"),
                                                 "csrf_token": csrf_of(page)})
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here: secure_cookie auto
    assert web.get("/console/sync").status_code == 200


def test_a_form_without_the_csrf_token_is_refused(web, demo_app):
    seqs = make_dead_letters(demo_app.extensions["fhir_bridge"])
    sign_in(web, demo_app, "system/*.cruds")
    response = web.post("/console/sync/dead-letters/retry", data={"seq": str(seqs[0])})
    assert response.status_code == 403
    assert "CSRF" in response.get_data(as_text=True)
    forged = web.post("/console/sync/dead-letters/retry",
                      data={"seq": str(seqs[0]), "csrf_token": "guessed"})
    assert forged.status_code == 403
    with demo_app.extensions["fhir_bridge"].engine.connect() as conn:
        assert conn.execute(sa.select(t.outbox.c.status).where(
            t.outbox.c.seq == seqs[0])).scalar() == "dead"  # nothing changed


def test_the_login_form_itself_needs_its_csrf_token(web, demo_app):
    response = web.post("/console/login", data={"token": token_for(demo_app)})
    assert response.status_code == 403


def test_an_operator_without_the_scope_gets_403(web, demo_app):
    sign_in(web, demo_app, "system/AuditEvent.rs")
    assert web.get("/console/audit").status_code == 200
    for page in ("/console/sync", "/console/safety", "/console/patients/p01",
                 "/console/subscriptions"):
        assert web.get(page).status_code == 403, page
    page = web.get("/console/audit").get_data(as_text=True)
    response = web.post("/console/sync/dead-letters/retry",
                        data={"all": "1", "csrf_token": csrf_of(page)})
    assert response.status_code == 403


def test_reading_sync_does_not_allow_acting_on_it(web, demo_app):
    make_dead_letters(demo_app.extensions["fhir_bridge"])
    sign_in(web, demo_app, "system/*.rs")
    page = web.get("/console/sync").get_data(as_text=True)
    assert "dead-letter" in page
    response = web.post("/console/sync/dead-letters/retry",
                        data={"all": "1", "csrf_token": csrf_of(page)})
    assert response.status_code == 403


def test_patient_tokens_cannot_sign_in(web, demo_app):
    page = web.get("/console/login").get_data(as_text=True)
    response = web.post("/console/login", data={
        "token": token_for(demo_app, "patient/*.rs", patient="pat-p01"),
        "csrf_token": csrf_of(page)})
    assert response.status_code == 403
    assert "patient-context" in response.get_data(as_text=True)
    assert web.get("/console/sync").status_code == 302


def test_an_invalid_token_is_refused_with_the_reason(web):
    page = web.get("/console/login").get_data(as_text=True)
    response = web.post("/console/login", data={"token": "not-a-jwt",
                                                 "csrf_token": csrf_of(page)})
    assert response.status_code == 401
    assert "not a well-formed JWT" in response.get_data(as_text=True)


def test_sign_in_goes_back_only_to_a_console_page(web, demo_app):
    page = web.get("/console/login").get_data(as_text=True)
    response = web.post("/console/login", data={
        "token": token_for(demo_app), "csrf_token": csrf_of(page),
        "next": "//evil.example/console"})
    assert response.headers["Location"] == "/console/"


def test_retry_puts_the_dead_letter_back_and_is_audited(web, demo_app):
    bridge = demo_app.extensions["fhir_bridge"]
    seqs = make_dead_letters(bridge)
    assert seqs
    sign_in(web, demo_app, "system/*.cruds")
    page = web.get("/console/sync").get_data(as_text=True)
    assert "RemoteUnavailable: POST /fhir: ConnectionError" in page  # the reason
    response = web.post("/console/sync/dead-letters/retry",
                        data={"seq": str(seqs[0]), "csrf_token": csrf_of(page)},
                        follow_redirects=True)
    assert "1 dead letter back in the outbox" in response.get_data(as_text=True)
    with bridge.engine.connect() as conn:
        assert conn.execute(sa.select(t.outbox.c.status).where(
            t.outbox.c.seq == seqs[0])).scalar() == "pending"
        audited = conn.execute(sa.select(t.audit_events.c.agent).where(
            t.audit_events.c.subtype == "sync-retry")).scalars().all()
    assert audited == ["console:fhir-bridge-dev"]


def test_the_safety_page_lists_suicide_risk_first(web, demo_app):
    sign_in(web, demo_app, "system/*.rs")
    page = web.get("/console/safety").get_data(as_text=True)
    codes = re.findall(r'data-code="([^"]*)" data-type="(Flag|DetectedIssue)"', page)
    assert codes and codes[0] == ("suicide-risk", "Flag")
    assert ("duplicate.antipsychotics", "DetectedIssue") in codes


def test_the_audit_page_filters_by_subtype(web, demo_app):
    sign_in(web, demo_app, "system/*.rs")
    web.get("/console/patients/p01")  # a timeline view is audited as a read
    page = web.get("/console/audit?subtype=read").get_data(as_text=True)
    subtypes = set(re.findall(r'class="audit-event" data-subtype="([^"]+)"', page))
    assert subtypes == {"read"}


def test_the_timeline_carries_the_course_as_data(web, demo_app):
    sign_in(web, demo_app, "system/*.rs")
    page = web.get("/console/patients/p02").get_data(as_text=True)
    values = re.findall(r'data-series="lithium" data-date="([^"]+)" data-value="([^"]+)"', page)
    assert values == [("2025-04-14", "0.5"), ("2025-04-28", "0.8"), ("2025-07-21", "0.7")]
    doses = re.findall(r'data-prescription="([^"]+)" data-dose="([^"]+)"', page)
    assert doses == [("p02-rx1", "300 mg"), ("p02-rx2", "450 mg")]
    assert 'data-low="0.6" data-high="1.0"' in page  # the lithium target range
    assert web.get("/console/patients/nobody").status_code == 404


def test_console_answers_forbid_framing_scripts_and_caching(web):
    response = web.get("/console/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_every_lab_range_names_its_source():
    from fhir_bridge.console.timeline import lab_ranges

    ranges = lab_ranges()
    assert ranges and all(r.get("source", "").strip() for r in ranges.values())
    assert all("low" in r or "high" in r for r in ranges.values())
