"""Scoring: every instrument's bands, risk levels and alerts, each rule with its source."""

import pytest

from fhir_bridge.clinical.scoring import read
from fhir_bridge.mapping.catalogs import instruments
from fhir_bridge.mapping.document import load_record
from fhir_bridge.mapping.engine import Mapper
from fhir_bridge.model import concept_by_name
from fhir_bridge.errors import InvalidInput

ASSESSMENTS = concept_by_name("assessment")


def assessment(instrument, answers, **extra):
    return load_record(ASSESSMENTS, {
        "id": "a1", "patient_id": "p1", "instrument": instrument,
        "effective": "2025-06-02T10:00:00-04:00",
        "items": [{"number": n, "value": v} for n, v in answers.items()], **extra})


def phq9(total_without_item_9, item_9=0):
    answers = {n: 0 for n in range(1, 9)}
    for n in range(1, 9):  # spread the total over items 1-8 (each 0-3)
        answers[n] = min(3, total_without_item_9 - sum(answers.values()))
    answers[9] = item_9
    return answers


@pytest.mark.parametrize("total,band", [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"),
                                        (10, "moderate"), (14, "moderate"),
                                        (15, "moderately-severe"), (19, "moderately-severe"),
                                        (20, "severe"), (24, "severe")])
def test_phq9_bands(total, band):
    record = assessment("phq-9", phq9(total))
    assert (record["total"], record["band"]) == (total, band)
    assert "alerts" not in record


def test_phq9_item_9_raises_a_suicide_risk_alert_whatever_the_total():
    record = assessment("phq-9", phq9(0, item_9=1))
    assert (record["total"], record["band"], record["alerts"]) == (1, "minimal", ["suicide-risk"])


def test_the_alert_becomes_an_active_flag_and_the_band_an_interpretation():
    resources = Mapper().to_fhir("assessment", assessment("phq-9", phq9(14, item_9=2)))
    flags = [r for r in resources if r["resourceType"] == "Flag"]
    assert [f["status"] for f in flags] == ["active"]
    assert flags[0]["subject"] == {"reference": "Patient/pat-p1"}
    assert "item 9" in flags[0]["code"]["text"]
    total = next(r for r in resources if r["id"] == "asmt-a1.total")
    assert total["interpretation"][0]["text"] == "Moderately severe depression"


@pytest.mark.parametrize("answers,band", [({1: 1, 2: 1}, "negative"), ({1: 2, 2: 1}, "positive"),
                                          ({1: 3, 2: 3}, "positive")])
def test_phq2_positive_at_three(answers, band):
    assert assessment("phq-2", answers)["band"] == band


@pytest.mark.parametrize("total,band", [(4, "minimal"), (5, "mild"), (10, "moderate"),
                                        (15, "severe"), (21, "severe")])
def test_gad7_bands(total, band):
    answers = {n: 0 for n in range(1, 8)}
    for n in range(1, 8):
        answers[n] = min(3, total - sum(answers.values()))
    assert assessment("gad-7", answers)["band"] == band


@pytest.mark.parametrize("answers,band", [({1: 1, 2: 1, 3: 0}, "negative"),
                                          ({1: 2, 2: 1, 3: 0}, "positive-for-women"),
                                          ({1: 4, 2: 0, 3: 0}, "positive")])
def test_audit_c_bands(answers, band):
    assert assessment("audit-c", answers)["band"] == band


def mdq(yes, clustered, problem):
    answers = {n: 1 if n <= yes else 0 for n in range(1, 14)}
    answers.update({14: clustered, 15: problem})
    return answers


@pytest.mark.parametrize("answers,band", [
    (mdq(7, 1, 2), "positive"), (mdq(13, 1, 3), "positive"), (mdq(6, 1, 3), "negative"),
    (mdq(9, 0, 3), "negative"), (mdq(9, 1, 1), "negative")])
def test_mdq_needs_seven_symptoms_clustered_and_impairing(answers, band):
    assert assessment("mdq", answers)["band"] == band


@pytest.mark.parametrize("answers,risk,alert", [
    ({1: 0, 2: 0, 6: 0}, "none", False),
    ({1: 1, 2: 0, 6: 0}, "low", False),
    ({1: 1, 2: 1, 3: 0, 4: 0, 5: 0, 6: 0}, "low", False),
    ({1: 1, 2: 1, 3: 1, 4: 0, 5: 0, 6: 0}, "moderate", True),
    ({1: 0, 2: 0, 6: 1, 7: 0}, "moderate", True),
    ({1: 1, 2: 1, 3: 1, 4: 1, 5: 0, 6: 0}, "high", True),
    ({1: 1, 2: 1, 3: 1, 4: 0, 5: 1, 6: 0}, "high", True),
    ({1: 0, 2: 0, 6: 1, 7: 1}, "high", True),
])
def test_cssrs_screener_risk_levels(answers, risk, alert):
    record = assessment("c-ssrs-screener", answers)
    assert record["risk"] == risk
    assert ("alerts" in record) == alert


def test_a_band_the_answers_do_not_give_is_refused():
    with pytest.raises(InvalidInput) as caught:
        assessment("phq-9", phq9(12), band="minimal")
    assert [i.path for i in caught.value.issues] == ["band"]
    assert assessment("phq-9", phq9(12), band="moderate")["band"] == "moderate"


def test_every_scoring_rule_names_its_source():
    for key, instrument in instruments().items():
        assert instrument.scoring is not None, key
        assert len(instrument.scoring.source) > 20, key  # a citation, not a placeholder


def test_bands_cover_every_possible_total_exactly_once():
    for key, instrument in instruments().items():
        rules = instrument.scoring
        if not instrument.total or rules.positive is not None:
            continue
        highest = sum(i.max for i in instrument.items if i.in_total)
        for total in range(highest + 1):
            matching = [b for b in rules.bands if b["min"] <= total <= b["max"]]
            assert len(matching) == 1, (key, total)
        assert read(instrument, {}, highest).band is not None
