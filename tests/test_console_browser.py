"""The console in a real browser: headless Debian Chromium against a served app with demo
data. Each test saves a screenshot and asserts on the rendered page (what is displayed, where
the chart's data points are drawn), not only on the HTML. No request leaves 127.0.0.1."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.demo import load_demo
from fhir_bridge.store import tables as t

from .browser import (chromium, require_browser, resource_urls, screenshot_dir,
                      submit_and_wait)
from .conftest import TEST_SECRET, token_for
from .console_support import make_dead_letters
from .live_server import serving


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    require_browser()
    folder = tmp_path_factory.mktemp("console")
    mp = pytest.MonkeyPatch()
    mp.setenv("FHIR_BRIDGE_DEV_SECRET", TEST_SECRET)
    app = create_app({"database_url": f"sqlite:///{folder / 'bridge.db'}"})
    load_demo(app)
    dead = make_dead_letters(app.extensions["fhir_bridge"])
    with serving(app) as base, chromium(folder / "profile") as driver:
        driver.get(f"{base}/console/login")
        driver.find_element("id", "token").send_keys(token_for(app, "system/*.cruds"))
        submit_and_wait(driver, driver.find_element("id", "sign-in"), "#operator")
        yield app, base, driver, dead
    mp.undo()


def shot(driver, tmp_path, name: str) -> None:
    path = screenshot_dir(tmp_path) / f"{name}.png"
    driver.set_window_size(1280, 800)
    height = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.querySelector('main')"
        ".getBoundingClientRect().bottom + window.scrollY)")
    # the window's outer size includes the browser's own frame: add room for it
    driver.set_window_size(1280, max(800, min(int(height) + 140, 4000)))
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 5000


def rect(element) -> dict:
    return element.parent.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right,"
        "        height: r.height, width: r.width};", element)


def test_signing_in_opens_the_sync_page_with_the_dead_letters(served, tmp_path):
    app, base, driver, dead = served
    driver.get(f"{base}/console/sync")
    assert driver.current_url == f"{base}/console/sync"
    assert driver.find_element("id", "operator").text == "fhir-bridge-dev"
    rows = driver.find_elements("css selector", "tr.dead-letter")
    assert len(rows) == min(len(dead), 100) > 0
    reason = rows[0].find_element("css selector", "td.reason")
    assert reason.is_displayed() and "ConnectionError" in reason.text
    dead_count = driver.find_element("css selector", '#outbox-states li[data-state="dead"] .count')
    assert dead_count.text == str(len(dead))
    shot(driver, tmp_path, "console-sync")


def test_a_dead_letter_is_retried_from_the_sync_page(served, tmp_path):
    app, base, driver, dead = served
    driver.get(f"{base}/console/sync")
    first = driver.find_elements("css selector", "tr.dead-letter")[0]
    seq = int(first.get_attribute("data-seq"))
    first.find_element("css selector", 'input[type="checkbox"]').click()
    flash = submit_and_wait(driver, driver.find_element("id", "retry-selected"), ".flash.ok")
    assert flash.is_displayed() and flash.text == "1 dead letter back in the outbox"
    seqs = [int(r.get_attribute("data-seq"))
            for r in driver.find_elements("css selector", "tr.dead-letter")]
    assert seq not in seqs
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        assert conn.execute(sa.select(t.outbox.c.status).where(
            t.outbox.c.seq == seq)).scalar() == "pending"
    shot(driver, tmp_path, "console-sync-retried")


def test_the_timeline_draws_lithium_levels_against_their_range(served, tmp_path):
    app, base, driver, _ = served
    driver.get(f"{base}/console/patients/p02")
    chart = driver.find_element("css selector", "svg.timeline")
    assert chart.is_displayed() and rect(chart)["width"] > 900
    points = driver.find_elements("css selector", '.point[data-series="lithium"]')
    assert [(p.get_attribute("data-date"), p.get_attribute("data-value")) for p in points] == [
        ("2025-04-14", "0.5"), ("2025-04-28", "0.8"), ("2025-07-21", "0.7")]
    band = rect(driver.find_element("css selector", ".target-range[data-low='0.6']"))
    low, in_range, later = (rect(p) for p in points)
    middle = lambda r: (r["top"] + r["bottom"]) / 2  # noqa: E731
    assert middle(low) > band["bottom"]  # 0.5 is drawn below the 0.6-1.0 range
    assert band["top"] < middle(in_range) < band["bottom"]
    assert band["top"] < middle(later) < band["bottom"]
    assert low["left"] < in_range["left"] < later["left"]  # in time order
    steps = driver.find_elements("css selector", ".dose-step")
    heights = {s.get_attribute("data-dose"): rect(s)["height"] for s in steps}
    assert heights["450 mg"] > heights["300 mg"] > 0  # the dose step up is drawn as a step
    shot(driver, tmp_path, "console-timeline")


def test_rating_scale_totals_sit_in_their_severity_bands(served, tmp_path):
    app, base, driver, _ = served
    driver.get(f"{base}/console/patients/p01")
    points = driver.find_elements("css selector", '.point[data-series="phq-9"]')
    assert len(points) >= 2
    bands = {b.get_attribute("data-band"): rect(b)
             for b in driver.find_elements("css selector", 'rect.band[data-series="phq-9"]')}
    for point in points:
        box, name = rect(point), point.get_attribute("data-band")
        centre = (box["top"] + box["bottom"]) / 2
        assert bands[name]["top"] - 1 <= centre <= bands[name]["bottom"] + 1, name
    labels = [e.text for e in driver.find_elements("css selector", "text.band-label")]
    assert "Moderate depression (10-14)" in labels  # the band is named, not only shaded
    shot(driver, tmp_path, "console-timeline-phq9")


def test_every_request_of_the_console_stays_on_loopback(served):
    app, base, driver, _ = served
    for page in ("/console/sync", "/console/safety", "/console/audit",
                 "/console/subscriptions", "/console/patients/p01"):
        driver.get(f"{base}{page}")
        urls = resource_urls(driver)
        assert urls and all(u.startswith(base + "/") for u in urls), urls
    stylesheet = [u for u in resource_urls(driver) if u.endswith("console.css")]
    assert stylesheet  # the one asset, served by the app itself


@pytest.mark.hapi
def test_a_conflict_is_resolved_from_the_sync_page(tmp_path, hapi_url):
    """A prescription edited on HAPI and in the bridge: the sync page shows the two versions
    element by element, and "Take remote" brings the EHR's version in."""
    require_browser()
    import json

    import requests

    from fhir_bridge.sync.pull import Puller

    from .test_sync_pull_hapi import HEADERS, edit_on_server, make_pusher, remote_id

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'bridge.db'}",
                      "sync": {"target": "test-hapi",
                               "targets": {"test-hapi": {"base_url": hapi_url}}}})
    bridge = app.extensions["fhir_bridge"]
    load_demo(app)
    pusher = make_pusher(bridge, hapi_url)
    assert pusher.push_all().dead == 0
    rid = remote_id(bridge, pusher, "MedicationRequest", "rx-p01-rx2")

    def remote_edit(resource):
        resource["dosageInstruction"][0]["patientInstruction"] = "EHR: take at night."

    edit_on_server(hapi_url, "MedicationRequest", rid, remote_edit)
    api = app.test_client()
    local = api.get("/api/v1/prescriptions/p01-rx2", headers={
        "Authorization": f"Bearer {token_for(app)}"}).json
    local["instructions"] = "Bridge: take in the morning."
    assert api.put("/api/v1/prescriptions/p01-rx2", json=local, headers={
        "Authorization": f"Bearer {token_for(app)}"}).status_code == 200
    assert Puller(bridge.engine, bridge.mapper, bridge.store, pusher.client,
                  pusher.target).pull().conflicts == 1
    with serving(app) as base, chromium(tmp_path / "profile") as driver:
        driver.get(f"{base}/console/login")
        driver.find_element("id", "token").send_keys(token_for(app, "system/*.cruds"))
        submit_and_wait(driver, driver.find_element("id", "sign-in"), "#operator")
        driver.get(f"{base}/console/sync")
        conflict = driver.find_element("css selector", "article.conflict")
        differs = {row.get_attribute("data-path"): (
            row.find_element("css selector", "td.local").text,
            row.find_element("css selector", "td.remote").text)
            for row in conflict.find_elements("css selector", "tr.differs")}
        assert differs["dosageInstruction[0].patientInstruction"] == (
            "Bridge: take in the morning.", "EHR: take at night.")
        shot(driver, tmp_path, "console-conflict")
        flash = submit_and_wait(
            driver, conflict.find_element("css selector", "button.take-remote"), ".flash.ok")
        assert "took-remote" in flash.text
        assert driver.find_elements("css selector", "article.conflict") == []
    stored = api.get("/api/v1/prescriptions/p01-rx2", headers={
        "Authorization": f"Bearer {token_for(app)}"}).json
    assert stored["instructions"] == "EHR: take at night."
    on_server = requests.get(f"{hapi_url}/MedicationRequest/{rid}", headers=HEADERS,
                             timeout=30).json()
    assert json.dumps(on_server).count("EHR: take at night.") == 1
