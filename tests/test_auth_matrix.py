"""The authorization matrix of the internal API: for every collection and every interaction
(create, read, update, delete, search), and for the prescription operations, score trends and
document import, the right SMART scopes pass and every other token is refused.

Rules (docs/auth.md): a collection's resource type is its mapping's (prescriptions ->
MedicationRequest, assessments -> Observation, ...). GET one = r, GET list = s, POST = c,
PUT = u; the API has no DELETE (405 for any valid token). Writing an adherence report also
needs u on MedicationRequest (it updates its prescription). Missing token, expired, badly
signed, unknown issuer, alg none, wrong audience: 401. Valid token without the scope: 403.
"""

from __future__ import annotations

import copy
import itertools
import uuid

import pytest

from fhir_bridge.model import CONCEPTS

from .auth_support import bad_tokens, bearer, dev_token
from .conftest import FIXTURES, module_app, read_json

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")
P02 = read_json(FIXTURES / "internal" / "p02-bipolar-lithium.json")
ADMIN = ("system/*.cruds",)

ALSO_WRITES = {"adherence-reports": "MedicationRequest"}


def _types() -> dict[str, str]:
    """collection -> the ``resource`` of its concept's mapping file."""
    import yaml

    from fhir_bridge import PROJECT_ROOT

    by_concept = {}
    for path in (PROJECT_ROOT / "mappings").glob("*.map.yaml"):
        head = yaml.safe_load(path.read_text())
        by_concept[head["concept"]] = head["resource"]
    # a concept still being built (no mapping yet) has no type: nothing can permit it
    return {c.collection: by_concept[c.name] for c in CONCEPTS if c.name in by_concept}


#: Every collection of the API and its resource type (from its mapping).
TYPES = _types()
#: Collections with records in the fixtures p01 and p02 (the others are tested by listing).
WITH_DATA = sorted(c for c in TYPES if P01.get(c) and P02.get(c))


def test_collections_are_guarded_by_their_mappings_resource_type():
    assert {k: TYPES[k] for k in ("patients", "prescriptions", "assessments", "care-plans",
                                  "caregivers", "diagnoses")} == {
        "patients": "Patient", "prescriptions": "MedicationRequest",
        "assessments": "Observation", "care-plans": "CarePlan",
        "caregivers": "RelatedPerson", "diagnoses": "Condition"}
    assert len(WITH_DATA) >= 10


@pytest.mark.parametrize("collection", sorted(set(TYPES) - set(WITH_DATA)))
def test_collections_without_fixture_data_are_guarded_too(client, collection):
    url = f"/api/v1/{collection}"
    rt = TYPES[collection]
    assert call(client, "GET", url, None, dev_token(f"system/{rt}.s")).status_code == 200
    assert call(client, "GET", url, None, dev_token(f"system/{rt}.r")).status_code == 403
    assert call(client, "GET", url, None).status_code == 401
    assert call(client, "POST", url, {"id": "x"}, dev_token(f"system/{rt}.rus")).status_code \
        == 403


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with module_app(tmp_path_factory, "auth", (P01, P02)) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


def first(doc: dict, collection: str) -> dict:
    return doc[collection][0]


def fresh_copy(collection: str, record: dict) -> dict:
    """The record under a new id (care-plan goal ids are unique too)."""
    suffix = uuid.uuid4().hex[:8]
    new = copy.deepcopy(record)
    new["id"] = f"{record['id']}-{suffix}"
    if collection == "care-plans":
        renamed = {g["id"]: f"{g['id']}-{suffix}" for g in new.get("goals", [])}
        for goal in new.get("goals", []):
            goal["id"] = renamed[goal["id"]]
        for activity in new.get("activities", []):
            if "goal_ids" in activity:
                activity["goal_ids"] = [renamed[g] for g in activity["goal_ids"]]
    return new


def request_for(collection: str, interaction: str, doc: dict = P01):
    """(method, url, json body) of one interaction on a record of ``doc``."""
    record = first(doc, collection)
    base = f"/api/v1/{collection}"
    if interaction == "s":
        patient = doc["patients"][0]["id"]
        return "GET", base if collection == "practitioners" else f"{base}?patient_id={patient}", \
            None
    if interaction == "r":
        return "GET", f"{base}/{record['id']}", None
    if interaction == "c":
        return "POST", base, fresh_copy(collection, record)
    if interaction == "u":
        return "PUT", f"{base}/{record['id']}", record
    return "DELETE", f"{base}/{record['id']}", None


def call(client, method, url, body, token=None):
    headers = bearer(token) if token is not None else {"Authorization": ""}
    return client.open(url, method=method, json=body, headers=headers)


def right_scopes(collection: str, interaction: str) -> list[tuple[str, ...]]:
    """Scope sets that each must be enough (v2 exact, v1, wildcards, user context)."""
    rt = TYPES[collection]
    extra = (f"system/{ALSO_WRITES[collection]}.u",) \
        if collection in ALSO_WRITES and interaction in "cu" else ()
    v1 = "read" if interaction in "rs" else "write"
    return [(f"system/{rt}.{interaction}", *extra),
            (f"system/{rt}.{v1}", *extra),
            (f"system/*.{interaction}", *extra),
            (f"user/{rt}.cruds", *(e.replace("system/", "user/") for e in extra)),
            ("system/*.*", "openid", "offline_access")]


def wrong_scopes(collection: str, interaction: str) -> dict[str, tuple[str, ...]]:
    rt = TYPES[collection]
    other = "Goal" if rt != "Goal" else "Flag"
    others = "".join(i for i in "cruds" if i != interaction)
    wrong = {"wrong resource type": (f"system/{other}.cruds",),
             "wrong interaction": (f"system/{rt}.{others}",),
             "no clinical scope": ("openid", "launch", "offline_access"),
             "restricted v2 scope (unsupported)": (f"system/{rt}.{interaction}?category=x",)}
    if collection in ALSO_WRITES and interaction in "cu":
        wrong["not the prescription it updates"] = (f"system/{rt}.cruds",)
    return wrong


MATRIX = list(itertools.product(WITH_DATA, "crus"))


@pytest.mark.parametrize("collection,interaction", MATRIX)
def test_the_right_scopes_pass(client, collection, interaction):
    for scopes in right_scopes(collection, interaction):
        method, url, body = request_for(collection, interaction)
        answer = call(client, method, url, body, dev_token(*scopes))
        assert answer.status_code in (200, 201), (scopes, answer.json)


@pytest.mark.parametrize("collection,interaction", MATRIX)
def test_tokens_without_the_scope_are_forbidden(client, collection, interaction):
    method, url, body = request_for(collection, interaction)
    for why, scopes in wrong_scopes(collection, interaction).items():
        answer = call(client, method, url, body, dev_token(*scopes))
        assert answer.status_code == 403, (why, answer.status_code)
        assert answer.json["issue"][0]["code"] == "forbidden"
        assert "WWW-Authenticate" not in answer.headers


@pytest.mark.parametrize("collection,interaction", MATRIX + [(c, "d") for c in WITH_DATA])
def test_missing_and_invalid_tokens_are_unauthorized(client, collection, interaction):
    method, url, body = request_for(collection, interaction)
    missing = call(client, method, url, body)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="fhir-bridge"'
    assert missing.json["issue"][0]["code"] == "login"
    for why, token in bad_tokens("system/*.cruds").items():
        answer = call(client, method, url, body, token)
        assert answer.status_code == 401, (why, answer.status_code)
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"], why
        assert answer.json["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("collection", WITH_DATA)
def test_the_api_has_no_delete_whatever_the_scope(client, collection):
    method, url, body = request_for(collection, "d")
    assert call(client, method, url, body, dev_token("system/*.cruds")).status_code == 405


# --- the operations -------------------------------------------------------------------------

def new_prescription(client) -> str:
    record = fresh_copy("prescriptions", first(P01, "prescriptions") | {"status": "active"})
    record.pop("end_date", None)
    record.pop("status_reason", None)
    answer = client.post("/api/v1/prescriptions", json=record,
                         headers=bearer(dev_token(*ADMIN)))
    assert answer.status_code == 201, answer.json
    return record["id"]


def dose_change(rx: str):
    return ("POST", f"/api/v1/prescriptions/{rx}/dose-changes",
            {"id": f"{rx}-next", "dose": {"value": 150, "unit": "mg"},
             "effective_date": "2025-04-28", "reason": "no response",
             "changed_by_id": "dr-lindqvist", "authored_on": "2025-04-28T09:00:00-04:00"})


def discontinuation(rx: str):
    return ("POST", f"/api/v1/prescriptions/{rx}/discontinuation",
            {"date": "2025-05-10", "reason": "remission", "by_id": "dr-lindqvist"})


OPERATIONS = {
    # name: (request builder, scopes that pass, scope sets that do not)
    "dose change": (dose_change, ("system/MedicationRequest.cu",),
                    [("system/MedicationRequest.u",), ("system/MedicationRequest.c",),
                     ("system/MedicationRequest.rs",), ("system/Observation.cruds",)]),
    "discontinuation": (discontinuation, ("system/MedicationRequest.u",),
                        [("system/MedicationRequest.crds",), ("system/Observation.cruds",)]),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_prescription_operations_need_their_scopes(client, name):
    build, good, bad = OPERATIONS[name]
    for scopes in bad:
        method, url, body = build(new_prescription(client))
        assert call(client, method, url, body, dev_token(*scopes)).status_code == 403, scopes
        assert call(client, method, url, body).status_code == 401
    method, url, body = build(new_prescription(client))
    answer = call(client, method, url, body, dev_token(*good))
    assert answer.status_code in (200, 201), answer.json


def test_score_trends_need_observation_read_and_search_and_prescription_search(client):
    url = "/api/v1/patients/p01/score-trends"
    good = ("system/Observation.rs", "system/MedicationRequest.s")
    assert call(client, "GET", url, None, dev_token(*good)).status_code == 200
    for scopes in [("system/Observation.r", "system/MedicationRequest.s"),
                   ("system/Observation.s", "system/MedicationRequest.s"),
                   ("system/Observation.rs",), ("system/Patient.rs",)]:
        assert call(client, "GET", url, None, dev_token(*scopes)).status_code == 403, scopes
    assert call(client, "GET", url, None).status_code == 401


def test_the_fhir_view_of_a_record_needs_read(client):
    url = "/api/v1/prescriptions/p01-rx2/fhir"
    assert call(client, "GET", url, None, dev_token("system/MedicationRequest.r")).status_code \
        == 200
    assert call(client, "GET", url, None, dev_token("system/MedicationRequest.s")).status_code \
        == 403


def with_stored_versions(client, doc: dict) -> dict:
    """The document stating each record's stored version (other tests of this module change
    P01's records, and a document replaces a changed record only when it says so)."""
    admin = bearer(dev_token("system/*.rs"))
    out = {}
    for collection, records in doc.items():
        out[collection] = []
        for record in records:
            etag = client.get(f"/api/v1/{collection}/{record['id']}", headers=admin).headers
            out[collection].append(dict(record, version=int(etag["ETag"][3:-1])))
    return out


def test_a_document_import_needs_create_and_update_on_every_type_it_holds(client):
    every = sorted({f"system/{TYPES[c]}.cu" for c in P01})
    answer = call(client, "POST", "/api/v1/documents", with_stored_versions(client, P01),
                  dev_token(*every))
    assert answer.status_code == 200, answer.json
    for left_out in every:
        scopes = [s for s in every if s != left_out]
        answer = call(client, "POST", "/api/v1/documents", P01, dev_token(*scopes))
        assert answer.status_code == 403, left_out
    only_create = [s.replace(".cu", ".c") for s in every]
    assert call(client, "POST", "/api/v1/documents", P01,
                dev_token(*only_create)).status_code == 403
    assert call(client, "POST", "/api/v1/documents", P01).status_code == 401


# --- patient context --------------------------------------------------------------------------

PATIENT_COLLECTIONS = [c for c in WITH_DATA if c != "practitioners"]


def patient_token(patient="pat-p01", scopes=("patient/*.cruds",)):
    """A patient-context token: its patient claim is the FHIR Patient id (SMART)."""
    return dev_token(*scopes, patient=patient)


@pytest.mark.parametrize("collection", PATIENT_COLLECTIONS)
def test_a_patient_token_lists_only_its_own_patients_records(client, collection):
    token = patient_token()
    for url in (f"/api/v1/{collection}", f"/api/v1/{collection}?patient_id=p01"):
        items = call(client, "GET", url, None, token).json["items"]
        assert items and all((i.get("patient_id") or i["id"]) == "p01" for i in items), url
    other = call(client, "GET", f"/api/v1/{collection}?patient_id=p02", None, token)
    assert other.status_code == 200 and other.json["items"] == []


@pytest.mark.parametrize("collection", PATIENT_COLLECTIONS)
def test_a_patient_token_reads_its_own_records_and_not_another_patients(client, collection):
    token = patient_token()
    own = first(P01, collection)["id"]
    assert call(client, "GET", f"/api/v1/{collection}/{own}", None, token).status_code == 200
    theirs = first(P02, collection)["id"]
    hidden = call(client, "GET", f"/api/v1/{collection}/{theirs}", None, token)
    missing = call(client, "GET", f"/api/v1/{collection}/no-such-record", None, token)
    assert hidden.status_code == missing.status_code == 404  # existence is not revealed
    assert call(client, "GET", f"/api/v1/{collection}/{theirs}/fhir", None,
                token).status_code == 404


@pytest.mark.parametrize("collection", PATIENT_COLLECTIONS)
def test_a_patient_token_writes_its_own_records_and_not_another_patients(client, collection):
    token = patient_token()
    own = first(P01, collection)
    assert call(client, "PUT", f"/api/v1/{collection}/{own['id']}", own, token).status_code \
        == 200
    theirs = first(P02, collection)
    admin = dev_token(*ADMIN)
    before = call(client, "GET", f"/api/v1/{collection}/{theirs['id']}", None, admin).json
    assert call(client, "PUT", f"/api/v1/{collection}/{theirs['id']}", theirs,
                token).status_code == 403
    assert call(client, "POST", f"/api/v1/{collection}", fresh_copy(collection, theirs),
                token).status_code == 403
    if collection != "patients":
        # the other patient's record id under this patient: refused, nothing overwritten
        hijack = dict(theirs, patient_id="p01")
        answer = call(client, "PUT", f"/api/v1/{collection}/{theirs['id']}", hijack, token)
        assert answer.status_code in (409, 422)
    assert call(client, "GET", f"/api/v1/{collection}/{theirs['id']}", None,
                admin).json == before


def test_a_patient_token_cannot_name_another_patients_records(client):
    token = patient_token()
    report = fresh_copy("adherence-reports", first(P01, "adherence-reports"))
    report["prescription_id"] = first(P02, "prescriptions")["id"]
    answer = call(client, "POST", "/api/v1/adherence-reports", report, token)
    assert answer.status_code == 422
    assert "does not exist" in answer.json["issue"][0]["diagnostics"]


def test_a_patient_token_sees_no_practitioners_and_operates_only_on_its_prescriptions(client):
    token = patient_token()
    assert call(client, "GET", "/api/v1/practitioners", None, token).json["items"] == []
    assert call(client, "GET", "/api/v1/practitioners/dr-lindqvist", None,
                token).status_code == 404
    theirs = first(P02, "prescriptions")["id"]
    for method, url, body in (dose_change(theirs), discontinuation(theirs)):
        assert call(client, method, url, body, token).status_code == 404
    assert call(client, "GET", "/api/v1/patients/p02/score-trends", None,
                token).status_code == 404
    assert call(client, "GET", "/api/v1/patients/p01/score-trends", None,
                token).status_code == 200
    # a document of another patient: refused, nothing written
    assert call(client, "POST", "/api/v1/documents", P02, token).status_code == 403


def test_a_patient_token_without_a_patient_claim_is_refused(client):
    answer = call(client, "GET", "/api/v1/patients/p01", None, dev_token("patient/*.rs"))
    assert answer.status_code == 401


def test_a_patient_scope_limits_even_the_user_scopes_of_the_same_token(client):
    token = patient_token(scopes=("patient/Patient.r", "user/*.cruds"))
    assert call(client, "GET", "/api/v1/patients/p02", None, token).status_code == 404
    assert call(client, "GET", "/api/v1/patients/p01", None, token).status_code == 200
