"""Drug recognition: whatever a prescriber sends (a salt, a strength, a dose form, a brand, an
RxNorm clinical drug, a coding) reaches the safety checks as the ingredient they know, on the
way in and on the way back from FHIR; a drug the bridge does not know saves, marked and
warned as not checked."""

import copy
import csv

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_bridge.clinical.drugs import classes
from fhir_bridge.clinical.safety import check, rules
from fhir_bridge.fhir.validate import resource_issues
from fhir_bridge.mapping import drugs
from fhir_bridge.mapping.document import load_record
from fhir_bridge.mapping.engine import Mapper
from fhir_bridge.mapping.valuemaps import MAPPINGS_DIR
from fhir_bridge.model.registry import concept_by_name

from .conftest import FIXTURES, read_json

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")  # sertraline
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
#: A real RxNorm SBD (lisinopril), from US Core 7.0.0's examples
#: (hl7.fhir.us.core-7.0.0.tgz, an example MedicationRequest); not in our tables.
PRINIVIL = {"system": RXNORM, "code": "206765", "display": "Prinivil 10 MG Oral Tablet"}
UNKNOWN = "not checked for interactions, duplicates or maximum dose: unknown drug"
DRUG_TABLES = MAPPINGS_DIR / "terminology" / "drugs"


def rx(rx_id, drug=None, **extra):
    body = {"id": rx_id, "patient_id": "p01", "prescriber_id": "dr-lindqvist",
            "status": "active", "authored_on": "2025-06-02T10:00:00-04:00",
            "dose": {"value": 10, "unit": "mg"}, "route": "oral", "frequency": 1,
            "start_date": "2025-06-02", **extra}
    if drug is not None:
        body["drug"] = drug
    return body


def warned(response) -> list[str]:
    return [i["details"]["coding"][0]["code"]
            for i in response.json.get("warnings", {}).get("issue", [])]


@pytest.fixture
def p01(client):
    assert client.post("/api/v1/documents", json=P01).status_code == 200
    return client


# --- the names a prescriber writes -------------------------------------------------------

@pytest.mark.parametrize("written,key", [
    ("Sertraline HCl 50 mg tablet", "sertraline"),
    ("Zoloft", "sertraline"),
    ("sertraline 50 MG Oral Tablet [Zoloft]", "sertraline"),
    ("phenelzine sulfate", "phenelzine"),
    ("Escitalopram oxalate", "escitalopram"),
    ("Escitalopram 10 mg tablet", "escitalopram"),
    ("bupropion hydrochloride 150 MG 24 HR Extended Release Oral Tablet [Wellbutrin XL]",
     "bupropion"),
    ("Invega Sustenna 234 mg/1.5 mL injectable suspension", "paliperidone"),
    ("haloperidol decanoate 100 MG/ML Injection", "haloperidol"),
    ("Abilify Maintena", "aripiprazole"),
    ("lisdexamfetamine dimesylate 30 mg capsule", "lisdexamfetamine"),
    ("Adderall XR 20 mg", "amphetamine"),
    ("Buprenorphine 8 MG Sublingual Tablet", "buprenorphine"),
    ("Vivitrol", "naltrexone"),
    ("acamprosate calcium 333 mg delayed-release tablet", "acamprosate"),
    ("lithium carbonate 300 mg ER", "lithium-carbonate"),
    ("lithium citrate 8 mEq/5 mL oral solution", "lithium"),
    ("valproate sodium", "valproic-acid"),
    ("divalproex", "divalproex-sodium"),
])
def test_salts_strengths_forms_and_brands_name_the_ingredient(written, key):
    assert drugs.recognise(written) == key


@pytest.mark.parametrize("written", ["olanzapine and fluoxetine", "Nizatidine 15 MG/ML Oral "
                                     "Solution", "sodium", "50 mg tablet", "zz-top"])
def test_combinations_salts_alone_and_other_drugs_are_not_recognised(written):
    assert drugs.recognise(written) is None


def test_a_name_and_a_brand_in_brackets_that_disagree_are_not_one_drug():
    with pytest.raises(drugs.ConflictingDrug):
        drugs.recognise("sertraline 50 MG Oral Tablet [Prozac]")


_known = sorted(drugs.known_keys())
_salts = ["hydrochloride", "HCl", "sulfate", "oxalate", "succinate", "maleate", "fumarate",
          "hydrobromide", "mesylate", "besylate", "tartrate", "decanoate", "palmitate"]
_tails = ["ER", "XR", "XL", "SR", "CR", "50 mg", "10 MG/ML", "Oral Tablet", "tablet", "capsule",
          "oral solution", "injection", "Extended Release Oral Capsule", "24 HR"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_known), st.lists(st.sampled_from(_salts), max_size=1),
       st.lists(st.sampled_from(_tails), max_size=3), st.booleans())
def test_any_known_ingredient_with_salts_strengths_and_forms_added_is_that_ingredient(
        key, salts, tails, upper):
    ingredient = drugs.display(key)
    if set(ingredient.split()) & drugs.vocabulary().salts:
        salts = []  # a salt already ("lithium carbonate", "divalproex sodium")
    name = " ".join([ingredient, *salts, *tails])
    assert drugs.recognise(name.upper() if upper else name) == key, name


# --- the tables ----------------------------------------------------------------------------

@pytest.mark.parametrize("table", sorted(DRUG_TABLES.glob("*.csv")), ids=lambda p: p.name)
def test_every_row_of_the_drug_tables_names_its_source(table):
    with open(table, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and "source" in rows[0]
    for line, row in enumerate(rows, start=2):
        assert len((row["source"] or "").strip()) > 8, f"{table.name}:{line} has no source"
        assert all(v and v.strip() for v in row.values()), f"{table.name}:{line} is incomplete"


def test_a_table_row_without_source_fails_the_source_test(tmp_path):
    table = tmp_path / "brands.csv"
    table.write_text("brand,key,source\nZoloft,sertraline,\n")
    with pytest.raises(AssertionError, match="no source"):
        test_every_row_of_the_drug_tables_names_its_source(table)


def test_every_brand_names_a_known_ingredient_and_every_drug_the_rules_name_is_known():
    with open(DRUG_TABLES / "brands.csv", newline="", encoding="utf-8") as fh:
        assert all(drugs.known(row["key"]) for row in csv.DictReader(fh))
    named = [d for c in classes().values() for d in c["drugs"]] + list(rules()["max_daily_dose"])
    for rule in rules()["interactions"]:
        for side in (rule["a"], rule["b"]):
            named += side if isinstance(side, list) else [] if side in classes() else [side]
    assert [d for d in named if not drugs.known(d)] == []


@pytest.mark.parametrize("key", ["sertraline", "phenelzine", "tranylcypromine", "lurasidone",
                                 "clozapine", "lithium-carbonate", "lamotrigine", "alprazolam",
                                 "zolpidem", "lisdexamfetamine", "guanfacine", "viloxazine",
                                 "buprenorphine", "naltrexone", "acamprosate", "disulfiram",
                                 "methadone", "varenicline"])
def test_psychotropics_in_common_use_are_known(key):
    assert drugs.known(key)


def test_no_rxnorm_code_is_made_up_for_an_ingredient_known_by_name():
    assert drugs.verified_coding("phenelzine") is None
    assert drugs.verified_coding("sertraline") == {"system": RXNORM, "code": "36437",
                                                   "display": "sertraline"}


# --- through the JSON API ------------------------------------------------------------------

def test_sertraline_hcl_with_a_strength_and_escitalopram_are_two_ssris(p01):
    response = p01.post("/api/v1/prescriptions", json=rx("p01-rx8", "Escitalopram oxalate"))
    assert response.status_code == 201
    assert warned(response) == ["duplicate.ssri"]
    assert (response.json["drug"], response.json["product"]) == ("escitalopram",
                                                                 "Escitalopram oxalate")
    second = p01.post("/api/v1/prescriptions",
                      json=rx("p01-rx9", "Sertraline HCl 50 mg tablet", status="draft"))
    assert second.status_code == 201
    assert second.json["drug"] == "sertraline"
    assert warned(second) == ["duplicate.ssri"]


def test_phenelzine_sulfate_with_sertraline_is_the_maoi_interaction(p01):
    response = p01.post("/api/v1/prescriptions", json=rx("p01-rx8", "phenelzine sulfate"))
    assert response.status_code == 201
    assert response.json["drug"] == "phenelzine"
    assert warned(response) == ["interaction.maoi-serotonergic"]


def test_a_brand_name_is_its_ingredient(p01):
    response = p01.post("/api/v1/prescriptions", json=rx("p01-rx8", "Zoloft"))
    assert (response.status_code, response.json["drug"]) == (201, "sertraline")
    assert warned(response) == ["duplicate.ssri"]


def test_an_rxnorm_clinical_drug_coding_for_an_ssri_reaches_the_duplicate_check(p01):
    # No SSRI SCD code is in codes.csv (and none is made up here): the coding, as a sender
    # may send it, is recognised through its display.
    scd = {"system": RXNORM, "display": "sertraline 50 MG Oral Tablet"}
    response = p01.post("/api/v1/prescriptions", json=rx("p01-rx8", drug_codings=[scd]))
    assert response.status_code == 201, response.json
    assert response.json["drug"] == "sertraline"
    assert warned(response) == ["duplicate.ssri"]


def test_the_senders_coding_is_kept_as_sent_beside_the_bridges(p02_lithium):
    client = p02_lithium
    response = client.post("/api/v1/prescriptions", json=rx(
        "p02-rx8", patient_id="p02", prescriber_id="np-haddad", drug_codings=[PRINIVIL]))
    assert response.status_code == 201, response.json
    assert response.json["drug"] == "lisinopril"
    assert response.json["drug_codings"] == [PRINIVIL]
    assert warned(response) == ["interaction.lithium-ace-inhibitor"]
    resource = client.get("/api/v1/prescriptions/p02-rx8/fhir").json["entry"][0]["resource"]
    assert resource_issues(resource) == []
    assert resource["medicationCodeableConcept"]["coding"] == [
        PRINIVIL, {"system": "urn:fhir-bridge:codesystem:medication", "code": "lisinopril",
                   "display": "lisinopril"}]
    ours = client.post("/api/v1/prescriptions", json=rx(
        "p02-rx9", patient_id="p02", prescriber_id="np-haddad", drug="Zoloft 50 mg",
        drug_codings=[{"system": RXNORM, "code": "36437", "display": "sertraline"}]))
    assert ours.status_code == 201 and "drug_codings" not in ours.json  # ours: written anyway
    resource = client.get("/api/v1/prescriptions/p02-rx9/fhir").json["entry"][0]["resource"]
    assert resource["medicationCodeableConcept"] == {
        "coding": [{"system": RXNORM, "code": "36437", "display": "sertraline"}],
        "text": "Zoloft 50 mg"}


@pytest.fixture
def p02_lithium(client):
    doc = read_json(FIXTURES / "internal" / "p02-bipolar-lithium.json")
    assert client.post("/api/v1/documents", json=doc).status_code == 200
    return client


def test_a_name_and_a_coding_of_different_drugs_is_refused(p01):
    response = p01.post("/api/v1/prescriptions", json=rx(
        "p01-rx8", "sertraline", drug_codings=[{"system": RXNORM, "code": "4493",
                                                "display": "fluoxetine"}]))
    assert response.status_code == 422
    assert "drug" in str(response.json) and "fluoxetine" in str(response.json)


def test_a_prescription_without_a_drug_or_a_coding_is_refused(p01):
    response = p01.post("/api/v1/prescriptions", json=rx("p01-rx8"))
    assert response.status_code == 422 and "drug" in str(response.json)


def test_an_unknown_drug_saves_with_a_not_checked_warning_and_note(p01):
    response = p01.post("/api/v1/prescriptions", json=rx("p01-rx8", "Zyxotrine 5 mg tablet"))
    assert response.status_code == 201
    assert response.json["drug"] == "Zyxotrine 5 mg tablet"
    assert response.json["drug_note"] == UNKNOWN
    [issue] = response.json["warnings"]["issue"]
    assert issue["details"]["coding"][0]["code"] == "unchecked.unknown-drug"
    assert issue["details"]["text"] == UNKNOWN
    resource = p01.get("/api/v1/prescriptions/p01-rx8/fhir").json["entry"][0]["resource"]
    assert resource_issues(resource) == []
    assert {"text": UNKNOWN} in resource["note"]
    assert resource["medicationCodeableConcept"]["text"] == "Zyxotrine 5 mg tablet"
    known = p01.post("/api/v1/prescriptions", json=rx("p01-rx9", "buspirone"))
    assert "drug_note" not in known.json and "warnings" not in known.json


def test_a_stored_salt_name_is_checked_as_its_ingredient():
    """Records saved before recognition (drug "phenelzine sulfate" as text) are read by the
    rules as the ingredient."""
    old = {"id": "rx-old", "patient_id": "p1", "drug": "phenelzine sulfate", "status": "active",
           "dose": {"value": 15, "unit": "mg"}, "frequency": 3,
           "authored_on": "2025-05-01T09:00:00-04:00", "start_date": "2025-05-01"}
    new = dict(old, id="rx-new", drug="sertraline", dose={"value": 50, "unit": "mg"},
               frequency=1)
    assert [f.rule for f in check(new, [old])] == ["interaction.maoi-serotonergic"]


# --- back from FHIR (pull) -----------------------------------------------------------------

def _pulled(concept: dict) -> dict:
    mapper = Mapper()
    resource = copy.deepcopy(mapper.to_fhir("prescription", load_record(
        concept_by_name("prescription"), rx("p01-rx8", "sertraline")))[0])
    resource["medicationCodeableConcept"] = concept
    back = mapper.to_internal(resource)
    assert back.concept == "prescription" and back.unmapped == []
    return back.record


def test_a_pulled_product_text_is_the_ingredient_for_the_rules():
    record = _pulled({"text": "Escitalopram 10 mg tablet"})
    assert (record["drug"], record["product"]) == ("escitalopram", "Escitalopram 10 mg tablet")
    loaded = load_record(concept_by_name("prescription"), record)
    assert [f.rule for f in check(loaded, [dict(loaded, id="rx-s", drug="sertraline")])] == \
        ["duplicate.ssri"]


def test_a_pulled_rxnorm_scd_coding_is_the_ingredient_and_stays_as_sent():
    scd = {"system": RXNORM, "display": "Escitalopram 10 MG Oral Tablet"}
    record = _pulled({"coding": [scd]})
    assert record["drug"] == "escitalopram" and record["drug_codings"] == [scd]
    assert "product" not in record


def test_a_pulled_unknown_drug_keeps_its_name_and_gets_the_note_again():
    record = _pulled({"coding": [{"system": "urn:other", "code": "X1", "display": "Zyxotrine"}],
                      "text": "Zyxotrine"})
    loaded = load_record(concept_by_name("prescription"), record)
    assert (loaded["drug"], loaded["drug_note"]) == ("Zyxotrine", UNKNOWN)
    assert loaded["drug_codings"] == [{"system": "urn:other", "code": "X1",
                                       "display": "Zyxotrine"}]


def test_the_unknown_drug_note_is_not_read_back_as_a_change_reason():
    mapper = Mapper()
    record = load_record(concept_by_name("prescription"), rx("p01-rx8", "Zyxotrine"))
    resource = mapper.to_fhir("prescription", record)[0]
    assert resource["note"] == [{"text": UNKNOWN}]
    back = load_record(concept_by_name("prescription"), mapper.to_internal(resource).record)
    assert back == record


def test_a_dose_change_of_an_unknown_drug_keeps_its_reason_first_and_the_note_after():
    mapper = Mapper()
    record = load_record(concept_by_name("prescription"), rx(
        "p01-rx9", "Zyxotrine", prior_prescription_id="p01-rx8", change_reason="Partial response"))
    resource = mapper.to_fhir("prescription", record)[0]
    assert resource["note"] == [{"text": "Partial response"}, {"text": UNKNOWN}]
    back = load_record(concept_by_name("prescription"), mapper.to_internal(resource).record)
    assert back == record
