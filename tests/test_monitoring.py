"""Monitoring schedules as care-plan items: due dates from prescription dates, results that
complete them, periodic repeats, overdue items flagged at an explicit date, and the same-day
safety activity for a suicide-risk alert."""

import datetime as dt
from pathlib import Path

import pytest

from fhir_bridge.cli import main
from fhir_bridge.clinical.overdue import check_overdue
from fhir_bridge.clinical.drugs import classes
from fhir_bridge.clinical.monitoring import items, mark_overdue, overdue, schedules, with_items
from fhir_bridge.fhir.validate import resource_issues
from fhir_bridge.mapping.catalogs import measurement_kinds
from fhir_bridge.mapping.engine import Mapper
from fhir_bridge.mapping.valuemaps import MAPPINGS_DIR

from .conftest import FIXTURES, SHARED_CODES, read_json

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
            interacting = test.get("after_interacting_drug")
            if interacting:
                assert len(interacting.get("source", "")) > 20, (key, test["measure"])
                assert set(interacting["classes"]) <= set(classes()), key
                assert interacting["every_days"] > 0 and interacting["window_days"] >= 0


def test_a_rule_without_a_source_fails_the_source_check(tmp_path):
    """The check above can fail: a table with one rule's source removed does not pass it."""
    import yaml

    table = yaml.safe_load(Path(MAPPINGS_DIR / "monitoring.yaml").read_text(encoding="utf-8"))
    del table["antipsychotic-metabolic"]["tests"][1]["source"]
    (tmp_path / "monitoring.yaml").write_text(yaml.safe_dump(table), encoding="utf-8")
    unsourced = [(key, t["measure"]) for key, s in schedules(tmp_path).items()
                 for t in s["tests"] if len(t.get("source", "")) <= 20]
    assert unsourced == [("antipsychotic-metabolic", "glucose")]


def test_the_monitoring_codes_are_verified_codes_of_the_reference_list():
    """Every test a schedule names (and each alternative) is coded from codes.csv."""
    import csv

    with open(SHARED_CODES, encoding="utf-8", newline="") as fh:
        verified = {(r["system"], r["code"]) for r in csv.DictReader(fh)}
    mapper = Mapper()
    for schedule in schedules().values():
        for test in schedule["tests"]:
            for kind in (test["measure"], *test.get("also_completed_by", ())):
                code = mapper.terminology.table("measurements").get(
                    measurement_kinds()[kind].code)
                assert (code.system, code.code) in verified, kind


def test_the_required_schedules_are_there():
    measures = {key: {t["measure"] for t in s["tests"]} for key, s in schedules().items()}
    assert "lithium" in measures["lithium"]
    assert "anc" in measures["clozapine"]
    assert {"bmi", "glucose", "total-cholesterol", "blood-pressure"} <= \
        measures["antipsychotic-metabolic"]
    assert "qtc" in measures["antipsychotic-ecg"]
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


def test_antipsychotic_glucose_at_baseline_4_months_then_yearly_and_weight_counts_for_bmi():
    prescriptions = [rx("o1", "olanzapine", "2025-02-10")]
    measurements = [result("g0", "glucose", "2025-02-10"), result("g1", "glucose", "2025-05-05")]
    assert by_measure(items(prescriptions, measurements), "glucose") == [
        ("2025-04-28", "2025-06-12", "completed", "g1"),  # week 11 to 4 months (APA 2020)
        ("2026-04-05", "2026-05-05", "scheduled", None)]
    weight = by_measure(items(prescriptions, [result("w0", "body-weight", "2025-02-09")]),
                        "bmi")
    assert weight[0] == ("2025-01-11", "2025-02-10", "completed", "w0")


@pytest.mark.parametrize("day,due_by", [("2025-02-10", "2025-02-10"),
                                         ("2025-05-05", "2025-06-12")])
def test_an_hba1c_closes_the_glucose_item_at_baseline_and_at_4_months(day, due_by):
    prescriptions = [rx("o1", "olanzapine", "2025-02-10")]
    found = items(prescriptions, [result("a1", "hba1c", day)])
    item = next(i for i in found if i["id"] == f"mon-glucose-{due_by}")
    assert (item["status"], item["result_measurement_id"]) == ("completed", "a1")
    assert item["topic"] == "Fasting plasma glucose or HbA1c"


def test_lipids_recur_yearly_for_second_generation_antipsychotics():
    prescriptions = [rx("q1", "quetiapine", "2025-02-10")]
    found = items(prescriptions, [result("l0", "total-cholesterol", "2025-02-03"),
                                  result("l1", "ldl-cholesterol", "2025-05-20"),
                                  result("l2", "total-cholesterol", "2026-05-12")])
    assert by_measure(found, "total-cholesterol") == [
        ("2026-04-20", "2026-05-20", "completed", "l2"),  # a year after the 4-month panel
        ("2027-04-12", "2027-05-12", "scheduled", None)]  # and a year after that, not 5


def test_antipsychotic_bmi_monthly_for_6_months_then_quarterly():
    prescriptions = [rx("r1", "risperidone", "2025-01-06")]
    start = dt.date(2025, 1, 6)
    results = [result("b0", "bmi", "2025-01-06")] + [
        result(f"b{n}", "bmi", (start + dt.timedelta(days=30 * n)).isoformat())
        for n in range(1, 8)]  # monthly through day 210
    found = by_measure(items(prescriptions, results), "bmi")
    assert found[-2][3] == "b7"
    assert found[-1] == ((start + dt.timedelta(days=210 + 91 - 14)).isoformat(),
                         (start + dt.timedelta(days=210 + 91)).isoformat(), "scheduled", None)
    early = by_measure(items(prescriptions, results[:2]), "bmi")
    assert early[-1][1] == (start + dt.timedelta(days=60)).isoformat()  # monthly at first


def test_first_generation_antipsychotics_get_the_metabolic_schedule_too():
    found = items([rx("h1", "haloperidol", "2025-02-10")], [])
    assert {"bmi", "glucose", "total-cholesterol", "blood-pressure"} <= \
        {i["measure"] for i in found}


def test_an_ecg_before_ziprasidone_and_after_each_dose_change_but_not_for_olanzapine():
    prescriptions = [rx("z1", "ziprasidone", "2025-02-10", "stopped"),
                     rx("z2", "ziprasidone", "2025-03-03", prior="z1")]
    assert by_measure(items(prescriptions, []), "qtc") == [
        ("2025-01-11", "2025-02-10", "scheduled", None),
        ("2025-03-03", "2025-03-17", "scheduled", None)]
    assert by_measure(items([rx("o1", "olanzapine", "2025-02-10")], []), "qtc") == []


def test_a_result_after_the_start_is_no_baseline_the_missed_baseline_is_cancelled_and_says_so():
    prescriptions = [rx("o1", "olanzapine", "2025-02-10")]
    found = items(prescriptions, [result("w1", "body-weight", "2025-03-10")])
    baseline = next(i for i in found if i["measure"] == "bmi" and i["due_by"] == "2025-02-10")
    assert baseline["status"] == "cancelled"
    assert "result_measurement_id" not in baseline
    assert "not done: no result by 2025-02-10" in baseline["description"]
    assert "not a baseline" in baseline["description"]
    # the late weight still counts for the schedule: the next one is a month after it
    assert by_measure(found, "bmi")[-1] == ("2025-04-02", "2025-04-09", "scheduled", None)
    # without any result the baseline stays open (and can become overdue)
    assert by_measure(items(prescriptions, []), "bmi")[0][2] == "scheduled"


# --- lithium and the drugs that change its level --------------------------------------------

LITHIUM_ON_QUARTERLY = [rx("li1", "lithium-carbonate", "2025-04-07")]
LEVELS = [result("m1", "lithium", "2025-04-13"), result("m2", "lithium", "2025-07-10")]


def lithium(found):
    return by_measure(found, "lithium")


def test_without_an_interacting_drug_the_next_level_is_3_months_after_the_last():
    assert lithium(items(LITHIUM_ON_QUARTERLY, LEVELS))[-1] == (
        "2025-09-25", "2025-10-09", "scheduled", None)


@pytest.mark.parametrize("drug", ["ibuprofen", "lisinopril", "losartan", "hydrochlorothiazide"])
def test_starting_an_interacting_drug_with_lithium_schedules_a_level_5_to_7_days_later(drug):
    found = items(LITHIUM_ON_QUARTERLY + [rx("x1", drug, "2025-08-04")], LEVELS)
    item = next(i for i in found if i["measure"] == "lithium" and i["due_by"] == "2025-08-11")
    assert (item["due_from"], item["status"]) == ("2025-08-09", "scheduled")
    assert item["description"].startswith(f"Start of {drug} on 2025-08-04")
    assert item["reason_prescription_id"] == "li1"  # the lithium it is about


def test_stopping_an_interacting_drug_schedules_a_level_5_to_7_days_later():
    nsaid = dict(rx("x1", "naproxen", "2025-08-04", "stopped"), end_date="2025-08-25")
    found = lithium(items(LITHIUM_ON_QUARTERLY + [nsaid], LEVELS))
    assert ("2025-08-30", "2025-09-01", "scheduled", None) in found


def test_the_level_after_the_interacting_drug_restarts_the_periodic_schedule():
    found = lithium(items(LITHIUM_ON_QUARTERLY + [rx("x1", "ibuprofen", "2025-08-04")],
                          LEVELS + [result("m3", "lithium", "2025-08-10")]))
    assert ("2025-08-09", "2025-08-11", "completed", "m3") in found
    assert found[-1] == ("2025-10-26", "2025-11-09", "scheduled", None)  # 91 days after m3


def test_an_interacting_drug_before_lithium_started_schedules_nothing_extra():
    found = lithium(items(LITHIUM_ON_QUARTERLY + [rx("x1", "ibuprofen", "2025-01-06")],
                          LEVELS))
    assert found == lithium(items(LITHIUM_ON_QUARTERLY, LEVELS))


def test_after_the_first_year_levels_stay_quarterly_while_an_interacting_drug_is_taken():
    prescriptions = [rx("li1", "lithium-carbonate", "2024-01-08"),
                     rx("x1", "lisinopril", "2024-03-04")]
    levels = [result("m1", "lithium", "2024-01-14"), result("m2", "lithium", "2024-03-10"),
              result("m3", "lithium", "2024-06-07"), result("m4", "lithium", "2024-09-05"),
              result("m5", "lithium", "2024-12-04"), result("m6", "lithium", "2025-03-03")]
    assert lithium(items(prescriptions, levels))[-1] == (
        "2025-05-19", "2025-06-02", "scheduled", None)  # 91 days, not 182


def test_the_stimulant_weight_item_is_not_about_childrens_growth():
    found = items([rx("m1", "methylphenidate", "2025-02-10")], [])
    weight = next(i for i in found if i["measure"] == "body-weight")
    assert weight["topic"] == "Weight"
    assert "children" not in weight["topic"] and "growth" not in weight["topic"]


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


def test_an_overdue_baseline_flag_is_made_inactive_never_deleted_when_a_later_result_comes(
        client, sqlite_app):
    """Bug: a result after the start completed the missed baseline too, the baseline item was
    then dropped as an older completed item, and its Flag with it (GET answered 410 Gone):
    the plan no longer showed that the baseline was never taken."""
    bridge = sqlite_app.extensions["fhir_bridge"]
    assert client.post("/api/v1/prescriptions", json={
        "id": "p02-olz", "patient_id": "p02", "prescriber_id": P02["prescriptions"][0][
            "prescriber_id"], "status": "active", "authored_on": "2025-06-02T10:00:00-04:00",
        "drug": "olanzapine", "dose": {"value": 5, "unit": "mg"}, "route": "oral",
        "frequency": 1, "start_date": "2025-06-02"}).status_code == 201
    found = check_overdue(bridge.store, dt.date(2025, 6, 3))
    assert "mon-glucose-2025-06-02" in {f["activity_id"] for f in found}  # no baseline
    flag_url = "/fhir/Flag/flag-p02-plan.mon-glucose-2025-06-02"
    assert client.get(flag_url).json["status"] == "active"
    # The first glucose comes at week 12: it completes the 4-month item, not the baseline.
    assert client.post("/api/v1/measurements", json={
        "id": "p02-glu-w12", "patient_id": "p02", "kind": "glucose", "value": 96,
        "unit": "mg/dL", "effective": "2025-08-25T09:00:00-04:00"}).status_code == 201
    response = client.get(flag_url)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "inactive"
    assert response.json["period"] == {"start": "2025-06-03", "end": "2025-08-25"}
    assert resource_issues(response.json) == []
    baseline = plan_activity(client, "mon-glucose-2025-06-02")
    assert baseline["status"] == "cancelled" and "result_measurement_id" not in baseline
    assert "not a baseline" in baseline["description"]
    assert (baseline["overdue_since"], baseline["overdue_until"]) == ("2025-06-03", "2025-08-25")
    assert plan_activity(client, "mon-glucose-2025-10-02")["result_measurement_id"] == \
        "p02-glu-w12"
    careplan = plan_resources(client)[0]
    item = next(a for a in careplan["activity"] if a["id"] == "mon-glucose-2025-06-02")
    assert item["detail"]["statusReason"]["text"] == "Overdue since 2025-06-03 until 2025-08-25"


def test_a_flagged_item_the_schedule_no_longer_gives_stays_cancelled_with_its_end():
    flagged = dict(PLAN["activities"][0], overdue_since="2025-04-15")
    plan = dict(PLAN, activities=[flagged])
    updated = with_items(plan, [], dt.date(2025, 4, 20))  # e.g. the start date was corrected
    kept = updated["activities"][0]
    assert (kept["id"], kept["status"], kept["overdue_until"]) == (
        flagged["id"], "cancelled", "2025-04-20")
    assert kept["description"].endswith("; cancelled: no longer in the schedule")
    assert with_items(updated, [], dt.date(2025, 5, 1)) == updated  # once


def test_an_overdue_item_completed_late_ends_its_flag_on_the_result_day():
    flagged = dict(PLAN["activities"][0], overdue_since="2025-04-15")
    done = items([rx("li1", "lithium-carbonate", "2025-04-07")],
                 [result("m1", "lithium", "2025-04-17")])
    updated = with_items(dict(PLAN, activities=[flagged]), done, dt.date(2025, 4, 30))
    item = next(a for a in updated["activities"] if a["id"] == flagged["id"])
    assert (item["status"], item["overdue_until"]) == ("completed", "2025-04-17")
    assert all(not k.startswith("_") for a in updated["activities"] for k in a)


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
