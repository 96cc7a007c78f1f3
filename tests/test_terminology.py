"""Clinical codes are real: every code the bridge can emit comes from the verified list."""

import csv
import json
import os
import tarfile
from functools import lru_cache

import pytest

from fhir_bridge.cli import map_document
from fhir_bridge.mapping.engine import Mapper
from fhir_bridge.mapping.terminology import SHIPPABLE_STATUSES

from .conftest import SHARED_CODES, fixture_documents, read_json

#: HL7 Terminology (THO): code systems a table may take codes from besides codes.csv.
THO_PACKAGE = SHARED_CODES.parent / "fhir-packages" / "hl7.terminology.r4-7.0.1.tgz"
THO_BASE = "http://terminology.hl7.org/CodeSystem/"

CLINICAL_SYSTEMS = {"http://loinc.org", "http://snomed.info/sct",
                    "http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.whocc.no/atc",
                    "http://nucc.org/provider-taxonomy"}


@pytest.fixture(scope="module")
def verified():
    if not SHARED_CODES.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_CODES} is missing: CI must have shared/ beside the clone")
        pytest.skip("shared/reference/codes.csv is not beside this checkout")
    with open(SHARED_CODES, newline="", encoding="utf-8") as fh:
        return {(r["system"], r["code"]): r for r in csv.DictReader(fh)}


def all_codings(node):
    if isinstance(node, dict):
        if "system" in node and "code" in node:
            yield node
        for value in node.values():
            yield from all_codings(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_codings(value)


@lru_cache(maxsize=None)
def tho_concepts(system: str) -> dict[str, str]:
    """code -> display of one HL7 Terminology code system, read from the THO package file."""
    name = f"package/CodeSystem-{system.removeprefix(THO_BASE)}.json"
    with tarfile.open(THO_PACKAGE) as tgz:
        try:
            member = tgz.extractfile(name)
        except KeyError:
            return {}
        code_system = json.load(member)
    assert code_system["url"] == system
    found: dict[str, str] = {}

    def walk(concepts):
        for concept in concepts:
            found[concept["code"]] = concept.get("display", "")
            walk(concept.get("concept") or [])

    walk(code_system.get("concept") or [])
    return found


def test_every_table_row_is_a_verified_or_secondary_code_with_its_source(verified):
    """Each row is in codes.csv with the same display, status and source, or it is a code of
    an HL7 Terminology code system with the display the THO package gives it."""
    mapper = Mapper()
    codes = mapper.terminology.all_codes()
    assert len(codes) > 100
    for code in codes:
        row = verified.get((code.system, code.code))
        if row is None and code.system.startswith(THO_BASE):
            assert tho_concepts(code.system).get(code.code) == code.display, code
            assert code.status == "verified" and "HL7 Terminology (THO) 7.0.1 package" in \
                code.source, code
            continue
        assert row is not None, f"{code.key} {code.system}|{code.code} is not in codes.csv"
        assert row["status"] in SHIPPABLE_STATUSES
        assert (code.display, code.status, code.source) == \
            (row["display"], row["status"], row["source"])


@pytest.mark.parametrize("path", fixture_documents(), ids=lambda p: p.stem)
def test_every_clinical_coding_in_mapped_fixtures_is_verified(path, verified):
    bundle = map_document(read_json(path))
    for coding in all_codings(bundle):
        if coding["system"] in CLINICAL_SYSTEMS:
            assert (coding["system"], coding["code"]) in verified, coding


def test_unknown_drug_gets_a_local_code_with_text_never_a_guessed_one():
    mapper = Mapper()
    from fhir_bridge.mapping.context import Context
    from fhir_bridge.mapping.transforms import get_transform

    concept = get_transform("medication").forward(("zuranolone", None, None), {}, Context(mapper))
    assert concept == {"coding": [{"system": "urn:fhir-bridge:codesystem:medication",
                                   "code": "zuranolone", "display": "zuranolone"}],
                       "text": "zuranolone"}


def test_a_table_row_without_source_or_with_an_unverified_status_refuses_to_load(tmp_path):
    from fhir_bridge.errors import MappingError
    from fhir_bridge.mapping.terminology import Terminology

    (tmp_path / "bad.csv").write_text("key,domain,system,code,display,status,source\n"
                                      "x,lab,http://loinc.org,1-8,X,unverified,somewhere\n")
    with pytest.raises(MappingError, match="may not ship"):
        Terminology(tmp_path, "urn:x")
    (tmp_path / "bad.csv").write_text("key,domain,system,code,display,status,source\n"
                                      "x,lab,http://loinc.org,1-8,X,verified,\n")
    with pytest.raises(MappingError, match="source"):
        Terminology(tmp_path, "urn:x")


def test_a_drug_written_in_other_words_gets_its_table_key_and_free_text_stays():
    from fhir_bridge.model.medication import PrescriptionSchema

    field = PrescriptionSchema().fields["drug"]
    assert field.deserialize("Lithium Carbonate") == "lithium-carbonate"
    assert field.deserialize("lurasidone") == "lurasidone"  # not in the table: kept as written
