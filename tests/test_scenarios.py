"""Weeks of care for each synthetic patient, step by step through the JSON API: prescriptions,
dose changes and discontinuations, rating scales, labs and vital signs, side effects and
adherence reports in the order they happened. After each step the care plan's monitoring
items, the flags and the safety warnings are what the rules say; at the end the plan holds the
same monitoring and safety activities as the whole fixture document imported at once (the
golden FHIR output)."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from fhir_bridge.clinical.overdue import check_overdue

from .conftest import FIXTURES, read_json

BASE = ("patients", "practitioners", "caregivers", "diagnoses", "care-teams")
OPTIONAL_CHANGE = ("frequency", "period", "period_unit", "time_of_day", "sig", "instructions",
                   "product", "quantity", "refills", "days_supply")
OWNED = ("mon-", "safety-")


def load(name):
    return read_json(FIXTURES / "internal" / f"{name}.json")


def start_document(doc):
    """The people, diagnoses, team and plan of the first visit (no medication activities:
    the prescriptions come later, step by step)."""
    out = {k: copy.deepcopy(doc[k]) for k in BASE if k in doc}
    plans = copy.deepcopy(doc["care-plans"])
    for plan in plans:
        plan["activities"] = [a for a in plan["activities"] if a["kind"] != "medication"]
    out["care-plans"] = plans
    return out


def events(doc):
    """(when, kind, record) for everything that happened, oldest first."""
    found = []
    for p in doc["prescriptions"]:
        found.append((p["authored_on"], "dose-change" if p.get("prior_prescription_id")
                      else "prescription", p))
        if p.get("discontinuation"):
            found.append((p["discontinuation"]["date"] + "T00:00:00", "discontinuation", p))
    for collection, when in (("measurements", "effective"), ("assessments", "effective"),
                             ("side-effects", "recorded_at"), ("adherence-reports",
                                                                "recorded_at")):
        found += [(r[when], collection, r) for r in doc.get(collection, [])]
    return sorted(found, key=lambda e: e[0])


class Walk:
    def __init__(self, client, name):
        self.client, self.doc = client, load(name)
        self.plan_id = self.doc["care-plans"][0]["id"]
        response = client.post("/api/v1/documents", json=start_document(self.doc))
        assert response.status_code == 200, response.json
        self.warnings: dict[str, list[str]] = {}

    def post(self, path, body, status=201):
        response = self.client.post(path, json=body)
        assert response.status_code == status, response.json
        rules = [i["details"]["coding"][0]["code"]
                 for i in (response.json.get("warnings") or {}).get("issue", [])]
        return response.json, rules

    def step(self, kind, record):
        if kind == "prescription":
            body = {k: v for k, v in record.items()
                    if k not in ("end_date", "discontinuation", "status_reason", "adherence")}
            if body["status"] == "stopped":
                body["status"] = "active"  # it stops later in the story
            _, rules = self.post("/api/v1/prescriptions", body)
        elif kind == "dose-change":
            change = {"id": record["id"], "dose": record["dose"],
                      "effective_date": record["start_date"], "reason": record["change_reason"],
                      "changed_by_id": record["prescriber_id"],
                      "authored_on": record["authored_on"]}
            change.update({k: record[k] for k in OPTIONAL_CHANGE if k in record})
            _, rules = self.post(f"/api/v1/prescriptions/{record['prior_prescription_id']}"
                                 "/dose-changes", change)
        elif kind == "discontinuation":
            _, rules = self.post(f"/api/v1/prescriptions/{record['id']}/discontinuation",
                                 record["discontinuation"], 200)
        else:
            _, rules = self.post(f"/api/v1/{kind}", record)
        self.warnings[record["id"]] = rules

    def run(self, checks):
        """Every event in order; checks[record id](self) after that record."""
        for _, kind, record in events(self.doc):
            self.step(kind, record)
            key = record["id"] if kind != "discontinuation" else record["id"] + ":stop"
            if key in checks:
                checks.pop(key)(self)
        assert not checks, f"checks never ran: {sorted(checks)}"

    # -- what the plan looks like ---------------------------------------------------------

    def plan(self):
        return self.client.get(f"/api/v1/care-plans/{self.plan_id}").json

    def items(self, measure=None):
        """{activity id: (status, result id)} of the bridge's dated activities."""
        return {a["id"]: (a["status"], a.get("result_measurement_id"))
                for a in self.plan()["activities"] if a["id"].startswith(OWNED)
                and (measure is None or a.get("measure") == measure)}

    def open_items(self, measure=None):
        return sorted(k for k, (status, _) in self.items(measure).items()
                      if status == "scheduled")

    def resources(self):
        bundle = self.client.get(f"/api/v1/care-plans/{self.plan_id}/fhir").json
        return [e["resource"] for e in bundle["entry"]]

    def flags(self):
        return {r["id"]: r["status"] for r in self.resources() if r["resourceType"] == "Flag"}

    def all_warnings(self):
        return sorted(r for rules in self.warnings.values() for r in rules)

    def detected(self):
        patient = self.doc["patients"][0]["id"]
        return sorted(d["rule"] for d in self.client.get(
            f"/api/v1/detected-issues?patient_id={patient}").json["items"])

    def same_as_golden(self):
        """The step-by-step plan holds the activities the bulk import gives."""
        golden = read_json(FIXTURES / "fhir" / f"{self.doc_name}.json")
        plan = next(e["resource"] for e in golden["entry"]
                    if e["resource"]["resourceType"] == "CarePlan")
        expected = {a["id"]: (a["detail"]["status"], a.get("outcomeReference"))
                    for a in plan["activity"] if a.get("id", "").startswith(OWNED)}
        mine = next(r for r in self.resources() if r["resourceType"] == "CarePlan")
        found = {a["id"]: (a["detail"]["status"], a.get("outcomeReference"))
                 for a in mine["activity"] if a.get("id", "").startswith(OWNED)}
        assert found == expected


@pytest.fixture
def walk(sqlite_app):
    def start(name):
        w = Walk(sqlite_app.test_client(), name)
        w.doc_name = name
        w.bridge = sqlite_app.extensions["fhir_bridge"]
        return w
    return start


def test_p01_depression_ssri_titration(walk):
    w = walk("p01-depression-ssri-titration")

    def no_monitoring(w):
        assert w.items() == {}  # sertraline needs no lab monitoring
        assert w.warnings["p01-rx1"] == []

    def no_alert(w):
        assert "safety-p01-phq9-w0" not in w.items()

    def titrated(w):
        assert w.warnings["p01-rx2"] == []  # the replaced 50 mg is stopped: no duplicate

    w.run({"p01-rx1": no_monitoring, "p01-phq9-w0": no_alert, "p01-rx2": titrated})
    assert w.all_warnings() == [] and w.detected() == []
    w.same_as_golden()
    # Week 8: escitalopram added by mistake while sertraline is active: duplicate SSRIs.
    extra = {k: v for k, v in w.doc["prescriptions"][1].items()
             if k not in ("prior_prescription_id", "change_reason", "adherence", "product",
                          "sig")}
    _, rules = w.post("/api/v1/prescriptions", dict(
        extra, id="p01-rx9", drug="escitalopram", dose={"value": 10, "unit": "mg"},
        authored_on="2025-04-28T09:00:00-04:00", start_date="2025-04-28"))
    assert rules == ["duplicate.ssri"]
    assert w.detected() == ["duplicate.ssri"]
    # A positive item 9 at week 10: a Flag and a same-day safety assessment on the plan.
    w.post("/api/v1/assessments", {"id": "p01-phq9-w10", "patient_id": "p01",
                                   "instrument": "phq-9",
                                   "effective": "2025-05-12T09:20:00-04:00",
                                   "items": [{"number": n, "value": 1} for n in range(1, 10)]})
    assert w.items()["safety-p01-phq9-w10"] == ("scheduled", None)


def test_p02_bipolar_lithium(walk):
    w = walk("p02-bipolar-lithium")

    def started(w):
        assert "mon-lithium-2025-04-14" in w.open_items("lithium")  # day 5-7 level
        assert w.warnings["p02-rx1"] == []

    def first_level(w):
        assert w.items("lithium")["mon-lithium-2025-04-14"] == ("completed", "p02-li1")
        assert w.open_items("lithium") == ["mon-lithium-2025-07-14"]  # 3 months on

    def dose_raised(w):
        assert w.open_items("lithium") == ["mon-lithium-2025-04-28"]  # 5-7 days after

    def second_level(w):
        assert w.items("lithium")["mon-lithium-2025-04-28"] == ("completed", "p02-li2")
        assert w.open_items("lithium") == ["mon-lithium-2025-07-28"]

    def maintenance(w):
        assert w.items("lithium")["mon-lithium-2025-07-28"] == ("completed", "p02-li3")
        assert w.open_items("lithium") == ["mon-lithium-2025-10-20"]

    w.run({"p02-rx1": started, "p02-li1": first_level, "p02-rx2": dose_raised,
           "p02-li2": second_level, "p02-li3": maintenance})
    w.same_as_golden()
    # October: the quarterly level is not done; the overdue check at 21 October flags it.
    found = check_overdue(w.bridge.store, dt.date(2025, 10, 21))
    assert {f["activity_id"] for f in found} == {"mon-lithium-2025-10-20",
                                                 "mon-body-weight-2025-10-06"}
    assert w.flags()["flag-p02-plan.mon-lithium-2025-10-20"] == "active"
    # Knee pain: ibuprofen while on lithium is a warning and a DetectedIssue, not a refusal.
    _, rules = w.post("/api/v1/prescriptions", {
        "id": "p02-rx-ibu", "patient_id": "p02",
        "prescriber_id": w.doc["prescriptions"][1]["prescriber_id"], "status": "active",
        "authored_on": "2025-10-22T10:00:00-04:00", "drug": "ibuprofen",
        "dose": {"value": 400, "unit": "mg"}, "route": "oral", "frequency": 3,
        "start_date": "2025-10-22"})
    assert rules == ["interaction.lithium-nsaid"]
    # ... and the schedule changes: a level 5-7 days after the NSAID started.
    assert "mon-lithium-2025-10-29" in w.open_items("lithium")
    # The late level arrives: the item is completed and its Flag inactive.
    w.post("/api/v1/measurements", {"id": "p02-li4", "patient_id": "p02", "kind": "lithium",
                                    "value": 1.1, "unit": "mmol/L",
                                    "effective": "2025-10-24T08:00:00-04:00"})
    assert w.items("lithium")["mon-lithium-2025-10-20"] == ("completed", "p02-li4")
    assert w.flags()["flag-p02-plan.mon-lithium-2025-10-20"] == "inactive"
    assert "mon-lithium-2025-10-29" in w.open_items("lithium")  # too early for the NSAID check


def test_p03_schizophrenia_antipsychotic(walk):
    w = walk("p03-schizophrenia-antipsychotic")

    def started(w):  # APA 2020 Table 1: BMI monthly at first, the rest at 4 months
        opened = w.open_items()
        assert {"mon-bmi-2025-03-12", "mon-glucose-2025-06-12",
                "mon-total-cholesterol-2025-06-12", "mon-blood-pressure-2025-06-12"} \
            <= set(opened)

    def week_12(w):
        for measure in ("glucose", "total-cholesterol", "blood-pressure"):
            status, result = w.items(measure)[f"mon-{measure}-2025-06-12"]
            assert status == "completed" and result.startswith("p03-")
        assert w.items("glucose")["mon-glucose-2025-06-12"] == ("completed", "p03-a1c2")
        assert w.open_items("glucose") == ["mon-glucose-2026-05-05"]  # then yearly
        assert w.open_items("total-cholesterol") == ["mon-total-cholesterol-2026-05-05"]

    def lai_planned(w):
        assert w.warnings["p03-rx3"] == ["duplicate.antipsychotics"]
        assert "mon-bmi-2025-06-04" in w.open_items("bmi")  # a draft starts no schedule

    w.run({"p03-rx1": started, "p03-bp2": week_12, "p03-rx3": lai_planned})
    w.same_as_golden()
    assert w.detected() == ["duplicate.antipsychotics"]
    assert check_overdue(w.bridge.store, dt.date(2025, 6, 4)) == []
    found = check_overdue(w.bridge.store, dt.date(2025, 6, 5))
    assert [f["activity_id"] for f in found] == ["mon-bmi-2025-06-04"]
    assert w.flags() == {"flag-p03-plan.mon-bmi-2025-06-04": "active"}


def test_p04_adhd_stimulant(walk):
    w = walk("p04-adhd-stimulant")

    def baseline(w):
        for measure in ("heart-rate", "blood-pressure"):
            assert w.items(measure)[f"mon-{measure}-2025-08-18"][0] == "completed"

    def raised(w):
        assert w.open_items("heart-rate") == ["mon-heart-rate-2025-10-02"]  # 7-30 days after

    def lowered(w):
        assert w.items("heart-rate")["mon-heart-rate-2025-10-02"] == ("completed", "p04-hr3")
        assert w.open_items("heart-rate") == ["mon-heart-rate-2025-10-16"]

    def checked(w):
        assert w.items("heart-rate")["mon-heart-rate-2025-10-16"] == ("completed", "p04-hr4")
        assert w.open_items("heart-rate") == ["mon-heart-rate-2026-01-13"]  # then quarterly

    w.run({"p04-rx1": baseline, "p04-rx2": raised,
           "p04-rx3": lowered, "p04-hr4": checked})
    assert w.all_warnings() == []
    w.same_as_golden()
    # A dose far above the labeled maximum (72 mg/day) warns; the dose change still saves.
    _, rules = w.post("/api/v1/prescriptions/p04-rx3/dose-changes", {
        "id": "p04-rx4", "dose": {"value": 90, "unit": "mg"}, "effective_date": "2025-11-03",
        "reason": "Typing error under test", "changed_by_id": w.doc["prescriptions"][2][
            "prescriber_id"], "authored_on": "2025-11-03T15:00:00-05:00"})
    assert rules == ["max-dose.methylphenidate"]
    assert w.open_items("heart-rate") == ["mon-heart-rate-2025-12-03"]  # new dose: new check


def test_p05_anxiety_discontinuation(walk):
    w = walk("p05-anxiety-discontinuation")

    def stopped(w):
        assert w.items() == {}  # escitalopram, buspirone, hydroxyzine: no lab schedule

    w.run({"p05-rx1:stop": stopped})
    assert w.all_warnings() == [] and w.detected() == []
    w.same_as_golden()
    # Considering phenelzine while buspirone is active: a contraindicated combination.
    _, rules = w.post("/api/v1/prescriptions", {
        "id": "p05-rx4", "patient_id": "p05", "prescriber_id": "pcp-reyes", "status": "draft",
        "authored_on": "2025-08-11T10:30:00-04:00", "drug": "phenelzine",
        "dose": {"value": 15, "unit": "mg"}, "frequency": 3, "start_date": "2025-08-25"})
    assert rules == ["interaction.maoi-serotonergic"]
    assert w.detected() == ["interaction.maoi-serotonergic"]


def test_p06_family_caregiver(walk):
    w = walk("p06-family-caregiver")

    def item_9(w):
        assert w.items()["safety-p06-phq9-w0"] == ("scheduled", None)
        flags = [e["resource"] for e in w.client.get(
            "/api/v1/assessments/p06-phq9-w0/fhir").json["entry"]
            if e["resource"]["resourceType"] == "Flag"]
        assert [f["status"] for f in flags] == ["active"]

    def quetiapine(w):
        assert "mon-glucose-2025-05-05" in w.open_items("glucose")

    def switched(w):
        assert w.warnings["p06-rx2"] == []  # quetiapine was stopped first
        assert w.items("glucose")["mon-glucose-2025-05-05"][0] == "cancelled"
        assert "mon-glucose-2025-05-19" in w.open_items("glucose")  # lurasidone baseline

    def screen_w6(w):
        assert [k for k in w.items() if k.startswith("safety-")] == ["safety-p06-phq9-w0"]

    w.run({"p06-phq9-w0": item_9, "p06-rx1": quetiapine, "p06-rx2": switched,
           "p06-cssrs-w6": screen_w6})
    assert w.all_warnings() == []
    w.same_as_golden()
    found = check_overdue(w.bridge.store, dt.date(2025, 7, 15))
    assert "mon-glucose-2025-05-19" in {f["activity_id"] for f in found}
