"""Reverse mappings of the vocabularies other systems use (mappings/reverse-vocabularies.yaml),
and partial import: what cannot map is kept as sent, noted by FHIRPath, never a refusal chain."""

import csv
import json
import tarfile
from functools import lru_cache

import pytest

from fhir_bridge.errors import InvalidInput
from fhir_bridge.mapping.engine import Mapper
from fhir_bridge.mapping.foreign import merge_kept, parse_foreign
from fhir_bridge.mapping.vocabularies import load_vocabularies
from fhir_bridge.model.people import RELATIONSHIPS
from fhir_bridge.model.plan import ACTIVITY_KINDS, TEAM_ROLES

from .conftest import SHARED_CODES

THO = SHARED_CODES.parent / "fhir-packages" / "hl7.terminology.r4-7.0.1.tgz"
WORDS = {"relationship": set(RELATIONSHIPS), "care-team-role": set(TEAM_ROLES),
         "care-plan-activity": set(ACTIVITY_KINDS)}
V3 = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
SCT = "http://snomed.info/sct"


@pytest.fixture(scope="module")
def mapper():
    return Mapper()


@lru_cache(maxsize=None)
def package_codes() -> set[tuple[str, str]]:
    """(system, code) of the THO package's CodeSystems and of its SNOMED CT value set."""
    out = set()
    with tarfile.open(THO) as tar:
        for name in ("package/CodeSystem-v3-RoleCode.json", "package/CodeSystem-v2-0131.json",
                     "package/ValueSet-snomed-intl-gps.json"):
            doc = json.load(tar.extractfile(name))
            if doc["resourceType"] == "CodeSystem":
                stack = list(doc["concept"])
                while stack:
                    concept = stack.pop()
                    out.add((doc["url"], concept["code"]))
                    stack += concept.get("concept") or []
            else:
                for include in doc["compose"]["include"]:
                    out |= {(include["system"], c["code"]) for c in include.get("concept", [])}
    return out


def test_every_reverse_code_is_a_real_code_and_every_word_an_internal_one():
    if not THO.exists():
        pytest.skip("shared/reference is not beside this checkout")
    with open(SHARED_CODES, encoding="utf-8", newline="") as fh:
        verified = {(r["system"], r["code"]) for r in csv.DictReader(fh)}
    for name, vocab in load_vocabularies().items():
        for (system, code), word in vocab.codes.items():
            assert (system, code) in verified | package_codes(), (name, system, code)
            assert word in WORDS[name], (name, code, word)
        words = [*vocab.text.values(), *vocab.detail_kind.values(),
                 *vocab.reference_type.values()]
        assert set(words) <= WORDS[name], (name, set(words) - WORDS[name])


def related_person(relationship: dict) -> dict:
    return {"resourceType": "RelatedPerson", "id": "rp-x", "patient": {"reference":
                                                                       "Patient/pat-p1"},
            "relationship": [relationship], "name": [{"family": "Doe", "given": ["Jo"]}]}


@pytest.mark.parametrize("relationship, word", [
    ({"coding": [{"system": V3, "code": "MTH"}]}, "mother"),
    ({"coding": [{"system": V3, "code": "HUSB"}]}, "spouse"),
    ({"coding": [{"system": V3, "code": "NIECE"}]}, "other"),
    ({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]},
     "other"),
    ({"text": "Mom"}, "mother"),
    ({"coding": [{"system": "urn:fhir-bridge:codesystem:relationship", "code": "guardian"}]},
     "guardian"),
])
def test_relationships_are_read_from_v3_rolecode_v2_0131_our_codes_or_the_text(
        mapper, relationship, word):
    foreign = parse_foreign(mapper, related_person(relationship))
    assert foreign.record["relationship"] == word


def test_family_relations_are_written_as_v3_rolecode_and_other_stays_local(mapper):
    record = {"id": "x", "patient_id": "p1", "name": {"family": "Doe"}, "active": True}
    mother = mapper.to_fhir("caregiver", {**record, "relationship": "mother"})[0]
    assert mother["relationship"][0]["coding"] == [{"system": V3, "code": "MTH",
                                                    "display": "mother"}]
    other = mapper.to_fhir("caregiver", {**record, "relationship": "other"})[0]
    assert other["relationship"][0]["coding"][0]["system"] == \
        "urn:fhir-bridge:codesystem:relationship"


def test_an_unknown_relationship_is_refused_naming_the_element(mapper):
    with pytest.raises(InvalidInput) as caught:
        parse_foreign(mapper, related_person({"text": "lodger"}))
    paths = {i.path for i in caught.value.issues}
    assert "relationship" in paths and "RelatedPerson.relationship[0]" in paths


def care_team(*roles: dict) -> dict:
    return {"resourceType": "CareTeam", "id": "ct-x", "status": "active", "name": "Team",
            "subject": {"reference": "Patient/pat-p1"},
            "participant": [{"role": [role], "member": {"reference": f"Practitioner/prac-{i}"}}
                            for i, role in enumerate(roles)]}


def test_care_team_roles_come_from_snomed_nucc_or_the_text_and_unknown_ones_are_kept(mapper):
    team = care_team({"coding": [{"system": SCT, "code": "446050000"}]},
                     {"coding": [{"system": "http://nucc.org/provider-taxonomy",
                                  "code": "363LP0808X"}]},
                     {"text": "PCP"},
                     {"coding": [{"system": SCT, "code": "17561000", "display": "Cardiologist"}]})
    foreign = parse_foreign(mapper, team)
    assert [p["role"] for p in foreign.record["participants"]] == [
        "primary-care-physician", "psychiatric-nurse-practitioner", "primary-care-provider"]
    notes = dict(foreign.notes)
    assert "17561000" in notes["CareTeam.participant[3]"]
    assert "not a member of the record's team" in notes["CareTeam.participant[3]"]
    # written back, the fourth participant is there as sent
    back = merge_kept(mapper.to_fhir("care-team", foreign.record)[0], foreign.kept)
    assert back["participant"] == team["participant"]


def care_plan(*activities: dict) -> dict:
    return {"resourceType": "CarePlan", "id": "cp-x", "status": "active", "intent": "plan",
            "title": "Plan", "subject": {"reference": "Patient/pat-p1"},
            "period": {"start": "2026-01-01"}, "created": "2026-01-01T09:00:00Z",
            "author": {"reference": "Practitioner/prac-a"}, "activity": list(activities)}


def detail(code: dict, **more) -> dict:
    return {"detail": {"code": code, "status": "not-started", **more}}


def test_activities_map_from_snomed_loinc_text_kind_or_a_reference(mapper):
    plan = care_plan(
        detail({"coding": [{"system": SCT, "code": "75516001"}], "text": "CBT"}),
        detail({"coding": [{"system": "http://loinc.org", "code": "14334-7"}],
                "text": "Lithium level"}),
        detail({"text": "Sleep hygiene"}),
        detail({"text": "Visit Dr. Who"}, kind="Appointment"),
        detail({"text": "Knitting"}),
        {"reference": {"reference": "MedicationRequest/rx-r1"}},
        {"reference": {"reference": "ServiceRequest/sr-1", "display": "Psychology referral"}},
    )
    foreign = parse_foreign(mapper, plan)
    got = [(a["kind"], a.get("topic"), a.get("measure")) for a in foreign.record["activities"]]
    assert got == [("psychotherapy", "CBT", None), ("monitoring", "Lithium level", "lithium"),
                   ("lifestyle", "Sleep hygiene", None), ("follow-up", "Visit Dr. Who", None),
                   ("other", "Knitting", None), ("medication", None, None),
                   ("referral", "Psychology referral", None)]
    assert foreign.record["activities"][5]["prescription_id"] == "r1"
    assert [a["id"] for a in foreign.record["activities"]][:2] == ["activity-1", "activity-2"]
    notes = dict(foreign.notes)
    assert "external reference" in notes["CarePlan.activity[6].reference"]
    assert "CarePlan.activity[0].detail.code.coding[0]" in notes  # SNOMED: kept as sent
    back = merge_kept(mapper.to_fhir("care-plan", foreign.record)[0], foreign.kept)
    assert back["activity"] == plan["activity"]


def test_an_activity_that_cannot_be_read_is_named_by_its_index(mapper):
    plan = care_plan(detail({"text": "CBT"}), {"detail": {"code": {"text": "Walks"}}})
    with pytest.raises(InvalidInput) as caught:
        parse_foreign(mapper, plan)
    assert [i.path for i in caught.value.issues] == ["activities[1].status"]


def test_a_reference_to_what_could_not_be_imported_stays_external_not_a_refusal(mapper):
    plan = care_plan(detail({"text": "CBT"}))
    plan["careTeam"] = [{"reference": "CareTeam/remote-77"}]
    plan["addresses"] = [{"reference": "Condition/remote-9"}]
    foreign = parse_foreign(mapper, plan)
    assert "care_team_id" not in foreign.record and foreign.record["diagnosis_ids"] == []
    notes = dict(foreign.notes)
    assert "external reference" in notes["CarePlan.careTeam"]
    assert "external reference" in notes["CarePlan.addresses"]
    back = merge_kept(mapper.to_fhir("care-plan", foreign.record)[0], foreign.kept)
    assert back["careTeam"] == plan["careTeam"] and back["addresses"] == plan["addresses"]


def weight(**value) -> dict:
    return {"resourceType": "Observation", "id": "meas-w", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/pat-p1"},
            "effectiveDateTime": "2026-01-01T09:00:00Z", **value}


@pytest.mark.parametrize("value", [
    {"valueQuantity": {"value": 70.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                       "code": "kg"}},
    {"valueInteger": 70}, {"valueString": " 70.5 "}])
def test_measurement_values_of_each_type_are_read_and_written_back_as_sent(mapper, value):
    foreign = parse_foreign(mapper, weight(**value))
    assert foreign.record["unit"] == "kg" and foreign.record["value"] in (70.0, 70.5)
    assert merge_kept(mapper.to_fhir("measurement", foreign.record)[0], foreign.kept) == \
        weight(**value)
    changed = mapper.to_fhir("measurement", {**foreign.record, "value": 71.0})[0]
    merged = merge_kept(changed, foreign.kept)
    assert merged["valueQuantity"]["value"] == 71 and \
        [k for k in merged if k.startswith("value")] == ["valueQuantity"]


def test_a_coded_value_for_a_measurement_is_refused_naming_the_element(mapper):
    with pytest.raises(InvalidInput) as caught:
        parse_foreign(mapper, weight(valueCodeableConcept={"text": "heavy"}))
    assert "Observation.valueCodeableConcept" in {i.path for i in caught.value.issues}


def test_a_changed_concept_replaces_the_senders_codings_and_other_elements_stay(mapper):
    condition = {"resourceType": "Condition", "id": "cond-c", "subject": {"reference":
                                                                         "Patient/pat-p1"},
                 "clinicalStatus": {"coding": [{
                     "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                     "code": "active"}], "text": "Active"},
                 "code": {"coding": [{"system": SCT, "code": "247824007"}],
                          "text": "Fear of becoming fat"},
                 "recordedDate": "2026-01-01", "note": [{"text": "from the EHR"}]}
    foreign = parse_foreign(mapper, condition)
    assert foreign.record["description"] == "Fear of becoming fat"
    changed = mapper.to_fhir("diagnosis", {**foreign.record, "clinical_status": "remission"})[0]
    merged = merge_kept(changed, foreign.kept)
    assert merged["clinicalStatus"] == changed["clinicalStatus"]  # whole: the text was "Active"
    assert merged["code"] == condition["code"] and merged["note"] == condition["note"]
    assert "category" not in merged  # the bridge's own additions are not imposed


def test_a_schedule_the_record_cannot_hold_is_kept_as_sent_and_named(mapper):
    plan = care_plan(detail({"text": "CBT"}, scheduledTiming={"repeat": {"frequency": 2}}))
    foreign = parse_foreign(mapper, plan)
    assert "schedule" not in foreign.record["activities"][0]
    assert "not a repeating schedule" in \
        dict(foreign.notes)["CarePlan.activity[0].detail.scheduledTiming"]
    back = merge_kept(mapper.to_fhir("care-plan", foreign.record)[0], foreign.kept)
    assert back["activity"] == plan["activity"]


def test_the_ehrs_mrn_system_stays_and_list_items_change_one_by_one(mapper):
    from fhir_bridge import PROJECT_ROOT

    patient = json.loads((PROJECT_ROOT / "fixtures" / "foreign" / "Patient-ehr-pat-1.json")
                         .read_text())
    patient["id"] = "pat-ehr-pat-1"
    foreign = parse_foreign(mapper, patient, record_id="ehr-pat-1")
    assert foreign.record["mrn"] == "MRN-40021"
    record = {**foreign.record, "mrn": "MRN-40022"}
    record.pop("email")
    merged = merge_kept(mapper.to_fhir("patient", record)[0], foreign.kept)
    assert merged["identifier"] == [{**patient["identifier"][0], "value": "MRN-40022"},
                                    patient["identifier"][1]]
    assert "urn:fhir-bridge:id" not in json.dumps(merged)
    assert merged["telecom"] == patient["telecom"][:2]  # the e-mail removed, nothing else
    assert {k: v for k, v in merged.items() if k not in ("identifier", "telecom")} == \
        {k: v for k, v in patient.items() if k not in ("identifier", "telecom")}
