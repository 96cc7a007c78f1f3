"""Item answers in standard codes: PHQ-9 and GAD-7 questions with their LOINC item codes,
answers with LOINC answer codes and their score (ordinalValue), both ways; panels of other
systems (US Core's PHQ-9 and AUDIT-C examples, component panels) read back without refusal."""

from __future__ import annotations

import copy
import csv
import json

import pytest

from fhir_bridge.errors import InvalidInput
from fhir_bridge.mapping.catalogs import instruments
from fhir_bridge.mapping.document import load_record
from fhir_bridge.mapping.engine import Mapper
from fhir_bridge.mapping.transforms.answers import ORDINAL_VALUE
from fhir_bridge.model import concept_by_name

from .conftest import SHARED_CODES

LOINC = "http://loinc.org"
EXAMPLES = SHARED_CODES.parent / "us-core-7.0.0-examples"
FREQUENCY = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
ASSESSMENT = concept_by_name("assessment")


@pytest.fixture(scope="module")
def mapper():
    return Mapper()


def _record(instrument: str, values: dict[int, int], **extra) -> dict:
    return load_record(ASSESSMENT, {
        "id": "a1", "patient_id": "p1", "instrument": instrument,
        "effective": "2025-03-01T10:00:00-05:00",
        "items": [{"number": n, "value": v} for n, v in values.items()], **extra})


def _by_reference(resources: list[dict]) -> dict[str, dict]:
    return {f"{r['resourceType']}/{r['id']}": r for r in resources}


def _items(resources: list[dict]) -> list[dict]:
    return [r for r in resources if ".item-" in r["id"]]


def _examples() -> dict[str, dict]:
    if not EXAMPLES.exists():
        pytest.skip("shared/reference is not beside this checkout")
    return _by_reference([json.loads(p.read_text()) for p in EXAMPLES.glob("*.json")])


@pytest.mark.parametrize("instrument", ["phq-9", "gad-7"])
def test_questions_carry_loinc_item_codes_and_answers_loinc_answer_codes_with_their_score(
        mapper, instrument):
    count = len(instruments()[instrument].items)
    values = {n: n % 4 for n in range(1, count + 1)}
    items = _items(mapper.to_fhir("assessment", _record(instrument, values)))
    assert len(items) == count
    for item, (number, value) in zip(items, values.items()):
        assert item["code"]["coding"][0]["system"] == LOINC
        assert "valueInteger" not in item
        coding = item["valueCodeableConcept"]["coding"][0]
        expected = FREQUENCY if number != 10 else \
            ["LA6572-7", "LA6573-5", "LA6575-0", "LA6574-3"]
        assert (coding["system"], coding["code"]) == (LOINC, expected[value])
        assert coding["extension"] == [{"url": ORDINAL_VALUE, "valueDecimal": value}]
        assert item["valueCodeableConcept"]["text"] == coding["display"]


def test_every_answer_code_written_is_in_the_verified_code_list(mapper):
    with open(SHARED_CODES, newline="", encoding="utf-8") as fh:
        verified = {(r["system"], r["code"]) for r in csv.DictReader(fh)}
    for instrument in instruments().values():
        for item in instrument.items:
            assert len(item.answers) in (0, item.max - item.min + 1), (instrument.key, item)
            for key in item.answers:
                code = mapper.terminology.table("instruments").get(key)
                assert code is not None and (code.system, code.code) in verified, key


def test_items_without_answer_codes_stay_plain_integers(mapper):
    items = _items(mapper.to_fhir("assessment", _record("audit-c", {1: 2, 2: 1, 3: 0})))
    assert [i["valueInteger"] for i in items] == [2, 1, 0]
    assert all("valueCodeableConcept" not in i for i in items)


def _read_back(mapper, resources):
    back = mapper.to_internal(resources[0], resolve=_by_reference(resources).get)
    return back.record, back.unmapped


def test_coded_answers_read_back_to_the_same_record(mapper):
    record = _record("phq-9", {n: (n * 7) % 4 for n in range(1, 11)})
    back, unmapped = _read_back(mapper, mapper.to_fhir("assessment", record))
    assert unmapped == []
    assert load_record(ASSESSMENT, back) == record


@pytest.mark.parametrize("sent", [
    {"valueInteger": 2},
    {"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA6570-1"}]}},
    # a code the bridge does not know, with its score as R4's ordinalValue or as itemWeight
    {"valueCodeableConcept": {"coding": [{"system": "urn:example:answers", "code": "often",
                                          "extension": [{"url": ORDINAL_VALUE,
                                                         "valueDecimal": 2}]}]}},
    {"valueCodeableConcept": {"coding": [{"system": "urn:example:answers", "code": "often",
                                          "extension": [{"url": "http://hl7.org/fhir/Structure"
                                                         "Definition/itemWeight",
                                                         "valueDecimal": 2.0}]}]}},
], ids=["integer", "loinc-answer-code", "ordinal-value", "item-weight"])
def test_an_item_answer_is_read_however_it_is_sent(mapper, sent):
    resources = mapper.to_fhir("assessment", _record("phq-9", {n: 0 for n in range(1, 10)}))
    item_9 = next(r for r in resources if r["id"].endswith(".item-9"))
    del item_9["valueCodeableConcept"]
    item_9.update(sent)
    next(r for r in resources if r["id"].endswith(".total"))["valueQuantity"]["value"] = 2
    back, unmapped = _read_back(mapper, resources)
    assert unmapped == []
    record = load_record(ASSESSMENT, back)
    assert record["items"][8] == {"number": 9, "value": 2}
    assert record["total"] == 2 and record["alerts"] == ["suicide-risk"]


def test_an_answer_code_of_another_answer_list_is_reported_not_guessed(mapper):
    resources = mapper.to_fhir("assessment", _record("phq-9", {n: 0 for n in range(1, 10)}))
    item_1 = next(r for r in resources if r["id"].endswith(".item-1"))
    item_1["valueCodeableConcept"] = {"coding": [{"system": LOINC, "code": "LA6573-5"}]}
    _, unmapped = _read_back(mapper, resources)
    assert unmapped == [("value[x]", "phq-9 item 1: http://loinc.org|LA6573-5 is not an answer "
                                     "of this item and states no ordinalValue")]


def _without_references_to_people(record: dict) -> dict:
    """An example's record as pull stores it: its patient and practitioner resolved locally."""
    return {**record, "id": "x1", "patient_id": "p1", "administered_by_id": "dr1"}


def test_the_us_core_phq9_panel_reads_back_with_every_item_scored(mapper):
    examples = _examples()
    back = mapper.to_internal(examples["Observation/PHQ9-panel-example-44249-1"],
                              resolve=examples.get)
    # only the references to the example's Patient and Practitioner are left to sync
    assert {path for path, _ in back.unmapped} == {"reference"}
    record = load_record(ASSESSMENT, _without_references_to_people(back.record))
    assert [a["value"] for a in record["items"]] == [2, 2, 2, 2, 1, 1, 2, 0, 0, 1]
    assert record["total"] == 12  # sent as valueString "12"
    assert record["band"] == "moderate" and "alerts" not in record
    assert "unread_members" not in record


def test_the_us_core_audit_c_panel_reads_back_keeping_members_it_cannot_read(mapper):
    examples = _examples()
    panel = examples["Observation/AUDIT-C-panel-example-72109-2"]
    back = mapper.to_internal(panel, resolve=examples.get)
    assert {path for path, _ in back.unmapped} == {"reference"}
    record = load_record(ASSESSMENT, _without_references_to_people(back.record))
    assert record["total"] == 0 and record["band"] == "negative"
    kept = [m["reference"] for m in record["unread_members"]]
    assert kept == [r["reference"] for r in panel["hasMember"]
                    if not r["reference"].endswith("75626-2")]
    assert all(m["reason"].endswith("kept as sent") for m in record["unread_members"])
    # written back, the panel still points at them as it did
    out = mapper.to_fhir("assessment", record)
    assert {r["reference"] for r in out[0]["hasMember"]} >= set(kept)


def test_an_item_whose_code_the_bridge_does_not_know_is_kept_not_refused(mapper):
    examples = _examples()
    panel = copy.deepcopy(examples["Observation/PHQ9-panel-example-44249-1"])
    other = copy.deepcopy(examples["Observation/PHQ9-item-example-44250-9"])
    other["id"] = "other-item"
    other["code"] = {"coding": [{"system": LOINC, "code": "11111-1"}], "text": "Something else"}
    panel["hasMember"].append({"reference": "Observation/other-item"})
    held = {**examples, "Observation/other-item": other}
    back = mapper.to_internal(panel, resolve=held.get)
    assert back.record["unread_members"] == [{
        "reference": "Observation/other-item",
        "reason": "is not a assessment-item the bridge can read: kept as sent"}]
    assert len(load_record(ASSESSMENT, _without_references_to_people(back.record))["items"]) \
        == 10


def test_a_panel_with_its_answers_as_components_reads_as_the_same_record(mapper):
    record = _record("gad-7", {n: (n + 1) % 4 for n in range(1, 8)})
    resources = mapper.to_fhir("assessment", record)
    panel = copy.deepcopy(resources[0])
    del panel["hasMember"]
    del panel["identifier"]
    panel["component"] = [{"code": r["code"], "valueCodeableConcept": r["valueCodeableConcept"]}
                          for r in _items(resources)]
    panel["component"].append({"code": {"coding": [{"system": LOINC, "code": "70274-6"}]},
                               "valueInteger": record["total"]})
    unknown = {"code": {"text": "Free-text remark"}, "valueString": "slept badly"}
    panel["component"].append(unknown)
    back = mapper.to_internal(panel)
    assert back.unmapped == []
    read = load_record(ASSESSMENT, {**back.record, "id": "a1"})
    assert read["items"] == record["items"] and read["total"] == record["total"]
    assert read["unread_members"] == [{"component": unknown, "reason": "'Free-text remark' is "
                                       "not an item of gad-7 the bridge knows: kept as sent, "
                                       "not scored"}]
    assert mapper.to_fhir("assessment", read)[0]["component"] == [unknown]


def test_a_partial_panel_needs_a_total_within_what_the_answers_allow():
    unread = [{"reference": "Observation/elsewhere", "reason": "is not in the set: kept as sent"}]
    with pytest.raises(InvalidInput) as needs_total:
        _record("phq-9", {1: 3}, unread_members=unread)
    assert [i.path for i in needs_total.value.issues] == ["total"]
    with pytest.raises(InvalidInput) as too_high:
        _record("phq-9", {1: 3}, unread_members=unread, total=28)
    assert [i.path for i in too_high.value.issues] == ["total"]
    assert _record("phq-9", {1: 3}, unread_members=unread, total=27)["band"] == "severe"


def test_a_complete_assessment_is_still_refused_with_items_missing():
    with pytest.raises(InvalidInput) as refused:
        _record("phq-9", {1: 3})
    assert [i.path for i in refused.value.issues] == ["items"]
