"""SMART scopes (v1 and v2) and what a principal holding them may do."""

import pytest

from fhir_bridge.auth.principal import Principal
from fhir_bridge.auth.scopes import Scope, ScopeError, parse_scope, parse_scopes
from fhir_bridge.errors import Forbidden, Unauthorized


@pytest.mark.parametrize("text,context,rtype,letters", [
    ("patient/Observation.read", "patient", "Observation", "rs"),
    ("user/*.write", "user", "*", "cud"),
    ("system/*.*", "system", "*", "cruds"),
    ("system/CarePlan.rs", "system", "CarePlan", "rs"),
    ("patient/MedicationRequest.cruds", "patient", "MedicationRequest", "cruds"),
    ("user/Patient.r", "user", "Patient", "r"),
    ("system/*.cud", "system", "*", "cud"),
    ("system/Observation.s", "system", "Observation", "s"),
])
def test_v1_and_v2_scopes_parse_to_the_same_form(text, context, rtype, letters):
    assert parse_scope(text) == Scope(context, rtype, frozenset(letters))


def test_v1_read_is_v2_rs_and_write_is_cud_and_star_is_cruds():
    assert parse_scope("user/Observation.read") == parse_scope("user/Observation.rs")
    assert parse_scope("user/Observation.write") == parse_scope("user/Observation.cud")
    assert parse_scope("user/Observation.*") == parse_scope("user/Observation.cruds")


@pytest.mark.parametrize("text", [
    "patient/Observation.rw", "patient/Observation.sr", "system/*.dc", "system/*.rr",
    "system/Observation.", "system/Observation", "system/.rs", "system/observation.rs",
    "system/*.READ", "system/*.**", "patient/Observation.read?category=x", "system/Obs-1.rs",
    "system/*.crudsx",
])
def test_malformed_clinical_scopes_are_rejected(text):
    with pytest.raises(ScopeError):
        parse_scope(text)


@pytest.mark.parametrize("text", ["openid", "fhirUser", "launch", "launch/patient",
                                  "offline_access", "online_access", "profile"])
def test_unrelated_scopes_are_ignored(text):
    assert parse_scope(text) is None


def test_query_restricted_v2_scopes_are_refused_they_grant_nothing():
    assert parse_scope("patient/Observation.rs?category=laboratory") is None
    assert parse_scopes("patient/Observation.rs?category=laboratory openid") == ()


def test_a_scope_claim_is_split_on_spaces_or_given_as_a_list():
    assert parse_scopes("openid system/*.rs  system/*.rs") == (parse_scope("system/*.rs"),)
    assert parse_scopes(["system/Patient.r", "launch"]) == (parse_scope("system/Patient.r"),)
    assert parse_scopes(None) == ()
    with pytest.raises(ScopeError):
        parse_scopes(["system/*.rs", 3])


def principal(*scopes, patient=None, record=None):
    return Principal(subject="s", issuer="i", scopes=parse_scopes(" ".join(scopes)),
                     patient_id=patient, patient_record_id=record)


@pytest.mark.parametrize("scopes,rtype,interaction,allowed", [
    (("system/Observation.rs",), "Observation", "r", True),
    (("system/Observation.rs",), "Observation", "s", True),
    (("system/Observation.rs",), "Observation", "c", False),
    (("system/Observation.rs",), "Patient", "r", False),
    (("system/*.read",), "CarePlan", "s", True),
    (("system/*.read",), "CarePlan", "u", False),
    (("user/*.write",), "MedicationRequest", "d", True),
    (("user/*.write",), "MedicationRequest", "r", False),
    (("system/*.*",), "Goal", "d", True),
    (("openid", "launch"), "Patient", "r", False),
])
def test_permits_follows_the_scopes(scopes, rtype, interaction, allowed):
    assert principal(*scopes).permits(rtype, interaction) is allowed


def test_require_raises_forbidden_naming_what_is_missing():
    p = principal("system/MedicationRequest.r")
    p.require("MedicationRequest", "r")
    with pytest.raises(Forbidden, match="create, update on MedicationRequest"):
        p.require("MedicationRequest", "c", "r", "u")
    with pytest.raises(ValueError):
        p.permits("MedicationRequest", "x")


def test_contexts_and_the_patients_a_principal_sees():
    system, user = principal("system/*.rs"), principal("user/*.rs")
    mine = principal("patient/*.rs", patient="pat-p01", record="p01")
    assert (system.context, user.context, mine.context) == ("system", "user", "patient")
    assert system.sees_patient("p02") and user.sees_patient(None)
    assert mine.sees_patient("p01")
    assert not mine.sees_patient("p02") and not mine.sees_patient(None)


def test_a_patient_scope_needs_a_patient():
    with pytest.raises(Unauthorized):
        principal("patient/*.rs")
