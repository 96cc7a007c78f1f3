"""Monitoring schedules as care-plan items: due dates from prescription dates, results that
complete them, periodic repeats, overdue items flagged at an explicit date, and the same-day
safety activity for a suicide-risk alert."""

import datetime as dt

import pytest

from fhir_bridge.cli import main
from fhir_bridge.clinical.overdue import check_overdue
from fhir_bridge.clinical.drugs import classes
from fhir_bridge.clinical.monitoring import items, mark_overdue, overdue, schedules
from fhir_bridge.fhir.validate import resource_issues
from fhir_bridge.mapping.catalogs import measurement_kinds

from .conftest import FIXTURES, read_json

P02 = read_json(FIXTURES / "internal" / "p02-bipolar-lithium.json")


def rx(rx_id, drug, start, status="active", prior=None):
    out = {"id": rx_id, "patient_id": "p1", "drug": drug, "status": status,
           "start_date": start, "dose": {"value": 300, "unit": "mg"}, "frequency": 1}
    if prior:
        out["prior_prescription_id"] = prior
    return out


def result(m_id, kind, day):
    return {"id": m_id, "patient_id": "p1", "kind": kind, "effective": f"{day}T08:00:00-04:00",
            "status": "final"}


def by_measure(found, measure):
    return [(i["due_from"], i["due_by"], i["status"], i.get("result_measurement_id"))
            for i in found if i["measure"] == measure]


# --- the schedule tables ---------------------------------------------------------------------

def test_every_monitoring_rule_names_its_source_and_a_known_measure_and_class():
    for key, schedule in schedules().items():
        assert schedule["class"] in classes(), key
        for test in schedule["tests"]:
            assert len(test.get("source", "")) > 20, (key, test["measure"])
            assert test["measure"] in measurement_kinds(), (key, test["measure"])
            for kind in test.get("also_completed_by", ()):
                assert kind in measurement_kinds()
            assert test.get("at_start") or test.get("then"), (key, test["measure"])


def test_the_required_schedules_are_there():
    measures = {key: {t["measure"] for t in s["tests"]} for key, s in schedules().items()}
    assert "lithium" in measures["lithium"]
    assert "anc" in measures["clozapine"]
    assert {"bmi", "glucose", "total-cholesterol"} <= measures["antipsychotic-metabolic"]
    assert "valproate" in measures["valproate"]
    assert {"blood-pressure", "heart-rate"} <= measures["stimulants"]


# --- computing the items ---------------------------------------------------------------------

def test_lithium_level_5_to_7_days_after_start_and_after_each_dose_change():
    prescriptions = [rx("li1", "lithium-carbonate", "2025-04-07", "stopped"),
                     rx("li2", "lithium-carbonate", "2025-04-21", prior="li1")]
    found = [i for i in items(prescriptions, []) if i["measure"] == "lithium"]
    assert by_measure(found, "lithium") == [
        ("2025-04-12", "2025-04-14", "scheduled", None),
        ("2025-04-26", "2025-04-28", "scheduled", None)]
    assert [i["reason_prescription_id"] for i in found] == ["li1", "li2"]
    assert found[0]["id"] == "mon-lithium-2025-04-14"


def test_a_result_completes_the_item_and_the_next_periodic_level_is_due_3_months_later():
    prescriptions = [rx("li1", "lithium-carbonate", "2025-04-07")]
    too_early = items(prescriptions, [result("m0", "lithium", "2025-04-10")])
    assert by_measure(too_early, "lithium")[0][2] == "scheduled"  # before the window opens
    found = items(prescriptions, [result("m1", "lithium", "2025-04-13")])
    assert by_measure(found, "lithium") == [
        ("2025-04-12", "2025-04-14", "completed", "m1"),
        ("2025-06-29", "2025-07-13", "scheduled", None)]  # 91 days after the result


def test_after_the_first_year_lithium_levels_are_every_6_months():
    prescriptions = [rx("li1", "lithium-carbonate", "2024-01-08")]
    found = items(prescriptions, [result("m1", "lithium", "2024-01-14"),
                                  result("m2", "lithium", "2024-04-10"),
                                  result("m3", "lithium", "2024-07-08"),
                                  result("m4", "lithium", "2024-10-07"),
                                  result("m5", "lithium", "2025-01-10")])
    assert by_measure(found, "lithium") == [
        ("2024-12-23", "2025-01-06", "completed", "m5"),  # done late, on day 368
        ("2025-06-27", "2025-07-11", "scheduled", None)]  # after day 365: every 182 days


def test_clozapine_anc_weekly_then_every_two_weeks_then_monthly():
    prescriptions = [rx("c1", "clozapine", "2025-01-06")]
    start = dt.date(2025, 1, 6)
    results = [result("b", "anc", "2025-01-03")]
    results += [result(f"w{n}", "anc", (start + dt.timedelta(days=7 * n)).isoformat())
                for n in range(1, 27)]  # weekly through day 182
    found = by_measure(items(prescriptions, results), "anc")
    assert found[-1][2] == "scheduled"
    assert found[-1][1] == (start + dt.timedelta(days=182 + 14)).isoformat()
    assert found[-2][3] == "w26"  # only the newest completed item is kept
    later = results + [result(f"x{n}", "anc", (start + dt.timedelta(days=182 + 14 * n))
                              .isoformat()) for n in range(1, 15)]
    assert by_measure(items(prescriptions, later), "anc")[-1][1] == \
        (start + dt.timedelta(days=182 + 14 * 14 + 30)).isoformat()  # from day 378: monthly


def test_antipsychotic_metabolic_baseline_12_weeks_then_yearly_and_weight_counts_for_bmi():
    prescriptions = [rx("o1", "olanzapine", "2025-02-10")]
    measurements = [result("g0", "glucose", "2025-02-10"), result("g1", "glucose", "2025-05-05")]
    assert by_measure(items(prescriptions, measurements), "glucose") == [
        ("2025-04-28", "2025-05-12", "completed", "g1"),
        ("2026-04-05", "2026-05-05", "scheduled", None)]
    weight = by_measure(items(prescriptions, [result("w0", "body-weight", "2025-02-09")]),
                        "bmi")
    assert weight[0] == ("2025-01-11", "2025-02-10", "completed", "w0")


def test_stopping_the_drug_cancels_its_open_items_and_drops_later_ones():
    prescriptions = [dict(rx("o1", "olanzapine", "2025-02-10", "stopped"),
                          end_date="2025-03-01")]
    found = items(prescriptions, [])
    assert {i["status"] for i in found} == {"cancelled"}
    assert max(i["due_from"] for i in found) <= "2025-03-01"


def test_drafts_and_unmonitored_drugs_get_no_items():
    assert items([rx("o1", "olanzapine", "2025-02-10", "draft"),
                  rx("s1", "sertraline", "2025-02-10")], []) == []


# --- overdue at an explicit date ---------------------------------------------------------------

PLAN = {"id": "plan", "patient_id": "p1", "status": "active", "activities": [
    i for i in items([rx("li1", "lithium-carbonate", "2025-04-07")], [])
    if i["measure"] == "lithium"]}


@pytest.mark.parametrize("today,expected", [("2025-04-14", []),
                                            ("2025-04-15", ["mon-lithium-2025-04-14"])])
def test_an_item_is_overdue_the_day_after_its_due_date(today, expected):
    assert [a["id"] for a in overdue(PLAN, dt.date.fromisoformat(today))] == expected


def test_marking_overdue_sets_the_date_once():
    marked, newly = mark_overdue(PLAN, dt.date(2025, 4, 20))
    assert [(a["id"], a["overdue_since"]) for a in newly] == [("mon-lithium-2025-04-14",
                                                                "2025-04-15")]
    again, newly = mark_overdue(marked, dt.date(2025, 4, 30))
    assert newly == [] and again == marked


# --- through the API and the command line ---------------------------------------------------

@pytest.fixture
def client(sqlite_app):
    client = sqlite_app.test_client()
    assert client.post("/api/v1/documents", json=P02).status_code == 200
    return client


def plan_activity(client, activity_id):
    plan = client.get("/api/v1/care-plans/p02-plan").json
    return next((a for a in plan["activities"] if a["id"] == activity_id), None)


def plan_resources(client):
    return [e["resource"] for e in client.get("/api/v1/care-plans/p02-plan/fhir").json["entry"]]


def test_overdue_items_get_a_flag_and_lose_it_when_a_result_arrives(client, sqlite_app):
    bridge = sqlite_app.extensions["fhir_bridge"]
    assert check_overdue(bridge.store, dt.date(2025, 10, 6)) == []  # nothing past due yet
    found = check_overdue(bridge.store, dt.date(2025, 10, 7))
    assert [(f["activity_id"], f["overdue_since"]) for f in found] == [
        ("mon-body-weight-2025-10-06", "2025-10-07")]
    found = check_overdue(bridge.store, dt.date(2025, 10, 21))
    assert [(f["activity_id"], f["overdue_since"]) for f in found] == [
        ("mon-lithium-2025-10-20", "2025-10-21")]
    assert check_overdue(bridge.store, dt.date(2025, 10, 22)) == []  # already flagged
    flags = {r["id"]: r for r in plan_resources(client) if r["resourceType"] == "Flag"}
    flag = flags["flag-p02-plan.mon-lithium-2025-10-20"]
    assert resource_issues(flag) == []
    assert (flag["status"], flag["period"]["start"]) == ("active", "2025-10-21")
    assert "Serum lithium level" in flag["code"]["text"]
    careplan = plan_resources(client)[0]
    item = next(a for a in careplan["activity"] if a["id"] == "mon-lithium-2025-10-20")
    assert item["detail"]["statusReason"]["text"] == "Overdue since 2025-10-21"
    assert item["detail"]["extension"] == [{
        "url": "urn:fhir-bridge:StructureDefinition:careplan-activity-monitored-prescription",
        "valueReference": {"reference": "MedicationRequest/rx-p02-rx2"}}]
    assert resource_issues(careplan) == []
    # The level arrives late: the item is completed, the Flag becomes inactive.
    response = client.post("/api/v1/measurements", json={
        "id": "p02-li4", "patient_id": "p02", "kind": "lithium", "value": 0.7,
        "unit": "mmol/L", "effective": "2025-10-23T08:00:00-04:00",
        "related_prescription_id": "p02-rx2"})
    assert response.status_code == 201
    done = plan_activity(client, "mon-lithium-2025-10-20")
    assert (done["status"], done["result_measurement_id"]) == ("completed", "p02-li4")
    flags = {r["id"]: r for r in plan_resources(client) if r["resourceType"] == "Flag"}
    assert flags["flag-p02-plan.mon-lithium-2025-10-20"]["status"] == "inactive"
    assert plan_activity(client, "mon-lithium-2026-01-22")["status"] == "scheduled"


def test_the_command_checks_at_the_given_time(sqlite_app, client, monkeypatch, capsys):
    url = str(sqlite_app.extensions["fhir_bridge"].engine.url)
    monkeypatch.setenv("FHIR_BRIDGE_DATABASE_URL", url)
    assert main(["monitoring", "check", "--now", "2025-10-06T23:30:00-04:00"]) == 0
    assert '"newly_overdue": []' in capsys.readouterr().out
    assert main(["monitoring", "check", "--now", "2025-10-21"]) == 0
    assert "mon-lithium-2025-10-20" in capsys.readouterr().out
    assert plan_activity(client, "mon-lithium-2025-10-20")["overdue_since"] == "2025-10-21"


def test_a_positive_phq9_item_9_adds_a_same_day_safety_activity(client):
    response = client.post("/api/v1/assessments", json={
        "id": "p02-phq9-w12", "patient_id": "p02", "instrument": "phq-9",
        "effective": "2025-06-30T10:00:00-04:00",
        "items": [{"number": n, "value": 1} for n in range(1, 10)]})
    assert response.status_code == 201
    activity = plan_activity(client, "safety-p02-phq9-w12")
    assert activity == {
        "id": "safety-p02-phq9-w12", "kind": "follow-up", "topic": "Same-day safety assessment",
        "status": "scheduled", "description": activity["description"],
        "due_from": "2025-06-30", "due_by": "2025-06-30",
        "reason_assessment_id": "p02-phq9-w12"}
    assert activity["description"].startswith("Urgent, today: PHQ-9 item 9 positive")
    careplan = plan_resources(client)[0]
    fhir = next(a for a in careplan["activity"] if a["id"] == "safety-p02-phq9-w12")
    assert fhir["detail"]["kind"] == "Appointment"
    assert fhir["detail"]["scheduledPeriod"] == {"start": "2025-06-30", "end": "2025-06-30"}
    assert fhir["detail"]["reasonReference"] == [{"reference": "Observation/asmt-p02-phq9-w12"}]
    assert resource_issues(careplan) == []
    flags = [e["resource"] for e in client.get(
        "/api/v1/assessments/p02-phq9-w12/fhir").json["entry"]
        if e["resource"]["resourceType"] == "Flag"]
    assert [f["status"] for f in flags] == ["active"]


def test_a_screen_without_an_alert_adds_nothing(client):
    before = client.get("/api/v1/care-plans/p02-plan").json
    assert client.post("/api/v1/assessments", json={
        "id": "p02-cssrs", "patient_id": "p02", "instrument": "c-ssrs-screener",
        "effective": "2025-06-30T10:00:00-04:00",
        "items": [{"number": 1, "value": 1}, {"number": 2, "value": 0},
                  {"number": 6, "value": 0}]}).status_code == 201  # low risk: no alert
    assert client.get("/api/v1/care-plans/p02-plan").json == before
