"""The authorization matrix of the FHIR API: for every resource type it serves and every
interaction (read, vread, history, search), the scope that grants it passes and every other
token is refused: another type's scope, another interaction's scope, no token, an expired token,
a bad signature, an unknown issuer, `alg: none`, another audience. A patient token never sees
another patient's resources."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from fhir_bridge.facade import parameters
from fhir_bridge.store import tables as t

from .auth_support import bad_tokens, bearer, dev_token
from .conftest import fixture_documents, module_app, read_json

TYPES = sorted(parameters.load())
#: interaction -> (URL for a type and an id, the SMART permission letter it needs)
INTERACTIONS = {
    "read": ("{type}/{id}", "r"),
    "vread": ("{type}/{id}/_history/1", "r"),
    "history-instance": ("{type}/{id}/_history", "r"),
    "history-type": ("{type}/_history", "r"),
    "search-type": ("{type}?_count=5", "s"),
}
MATRIX = [(rtype, interaction) for rtype in TYPES for interaction in INTERACTIONS]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    documents = [read_json(path) for path in fixture_documents()]
    with module_app(tmp_path_factory, "fhir-auth", documents) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


def an_id(app, rtype: str) -> str:
    """A resource of the type that the store holds (an AuditEvent exists after any request)."""
    table = t.audit_events if rtype == "AuditEvent" else t.resources
    query = sa.select(table.c.id).limit(1)
    if rtype != "AuditEvent":
        query = query.where(t.resources.c.resource_type == rtype)
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        return conn.execute(query).scalar() or "none-stored"


def url(app, rtype: str, interaction: str) -> str:
    template, _ = INTERACTIONS[interaction]
    return "/fhir/" + template.format(type=rtype, id=an_id(app, rtype))


def get(client, path: str, token: str | None):
    return client.get(path, headers=bearer(token) if token else {"Authorization": ""})


@pytest.mark.parametrize("rtype,interaction", MATRIX)
def test_the_scope_that_grants_the_interaction_passes(app, client, rtype, interaction):
    letter = INTERACTIONS[interaction][1]
    for scope in (f"system/{rtype}.{letter}", f"user/{rtype}.read"):
        response = get(client, url(app, rtype, interaction), dev_token(scope))
        # 404: the type has no stored resource (Provenance comes only from sync pull)
        assert response.status_code in (200, 404), (scope, response.json)
        assert response.status_code == 200 or an_id(app, rtype) == "none-stored"


@pytest.mark.parametrize("rtype,interaction", MATRIX)
def test_other_scopes_are_forbidden(app, client, rtype, interaction):
    letter = INTERACTIONS[interaction][1]
    other_type = "Goal" if rtype != "Goal" else "CarePlan"
    everything_else = "cuds" if letter == "r" else "crud"  # all but the permission needed
    for scope in (f"system/{other_type}.rs", f"system/{rtype}.{everything_else}"):
        response = get(client, url(app, rtype, interaction), dev_token(scope))
        assert response.status_code == 403, (scope, response.json)
        assert response.json["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("rtype,interaction", MATRIX)
def test_missing_and_invalid_tokens_are_unauthorized(app, client, rtype, interaction):
    path = url(app, rtype, interaction)
    assert get(client, path, None).status_code == 401
    for name, token in bad_tokens("system/*.cruds", "system/AuditEvent.rs").items():
        response = get(client, path, token)
        assert response.status_code == 401, name
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("rtype", [r for r in TYPES
                                   if parameters.load()[r].in_patient_compartment])
def test_a_patient_token_never_sees_another_patients_resources(app, client, rtype):
    def owned_by(patient_id: str):
        table = t.audit_events if rtype == "AuditEvent" else t.resources
        query = sa.select(table.c.id).where(table.c.patient_id == patient_id)
        if rtype != "AuditEvent":
            query = query.where(t.resources.c.resource_type == rtype)
        with app.extensions["fhir_bridge"].engine.connect() as conn:
            return [row.id for row in conn.execute(query)]

    get(client, "/fhir/Patient/pat-p01", dev_token("system/Patient.r"))  # an AuditEvent each
    get(client, "/fhir/Patient/pat-p02", dev_token("system/Patient.r"))
    mine = set(owned_by("p02"))
    theirs = next(iter(owned_by("p01")), None)
    token = dev_token(f"patient/{rtype}.rs", patient="pat-p02")
    bundle = get(client, f"/fhir/{rtype}?_count=500", token).json
    assert {e["resource"]["id"] for e in bundle.get("entry", [])} <= mine
    if theirs is not None:
        for path in (f"/fhir/{rtype}/{theirs}", f"/fhir/{rtype}/{theirs}/_history/1",
                     f"/fhir/{rtype}/{theirs}/_history"):
            assert get(client, path, token).status_code == 404, path
