"""Shared fixtures: the app on SQLite and on PostgreSQL, a client, and store snapshots."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.app import create_app
from fhir_bridge.auth.mint import mint_dev_token
from fhir_bridge.fhir import jsonio
from fhir_bridge.store import tables

pytest_plugins = ["tests.log_privacy"]

FIXTURES = PROJECT_ROOT / "fixtures"
SHARED_CODES = PROJECT_ROOT.parent / "shared" / "reference" / "codes.csv"
PG_URL = os.environ.get("FHIR_BRIDGE_TEST_DATABASE_URL")


def fixture_documents() -> list[Path]:
    return sorted((FIXTURES / "internal").glob("*.json"))


def read_json(path: Path):
    return jsonio.loads(path.read_bytes())


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables.metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """Each test that takes this runs twice: on SQLite and on PostgreSQL (scripts/test starts
    it and sets FHIR_BRIDGE_TEST_DATABASE_URL; in CI a missing server fails the run)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bridge.db'}"
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("FHIR_BRIDGE_TEST_DATABASE_URL is not set: PostgreSQL must run in CI")
        pytest.skip("PostgreSQL not configured (run scripts/postgres-server start)")
    _reset_postgres(PG_URL)
    return PG_URL


#: The development issuer's secret in every test (tests about a missing secret unset it).
TEST_SECRET = "test-secret-for-fhir-bridge-0123456789abcdef"
FULL_ACCESS = ("system/*.cruds",)


@pytest.fixture(autouse=True)
def dev_secret(monkeypatch):
    monkeypatch.setenv("FHIR_BRIDGE_DEV_SECRET", TEST_SECRET)
    return TEST_SECRET


def token_for(app, *scopes: str, **claims) -> str:
    """A token of the development issuer for ``app`` (claims: patient, subject, ttl_seconds)."""
    return mint_dev_token(app.extensions["fhir_bridge.auth"].settings, scopes or FULL_ACCESS,
                          environ={"FHIR_BRIDGE_DEV_SECRET": TEST_SECRET}, **claims)


class FullAccessClient(FlaskClient):
    """A test client that sends a full-access system token unless a test says otherwise
    (``environ_base["HTTP_AUTHORIZATION"]``, or an Authorization header on one request)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(
            self.application, ttl_seconds=3600)


@contextmanager
def module_app(tmp_path_factory, name: str, documents: Iterable[dict] = (),
               full_access: bool = False) -> Iterator:
    """An app shared by a whole test module (function-scoped fixtures cannot feed one): a new
    SQLite store holding ``documents``, loaded with a full-access token. With ``full_access``
    its test clients send that token by default, as the ``app`` fixture's do."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FHIR_BRIDGE_DEV_SECRET", TEST_SECRET)
        db = tmp_path_factory.mktemp(name) / "bridge.db"
        app = create_app({"database_url": f"sqlite:///{db}"})
    if full_access:
        app.test_client_class = FullAccessClient
    client = app.test_client()
    headers = {"Authorization": "Bearer " + token_for(app, ttl_seconds=3600)}
    for doc in documents:
        response = client.post("/api/v1/documents", json=doc, headers=headers)
        assert response.status_code == 200, response.json
    try:
        yield app
    finally:
        app.extensions["fhir_bridge"].engine.dispose()


@pytest.fixture
def app(database_url):
    app = create_app({"database_url": database_url})
    app.test_client_class = FullAccessClient
    yield app
    app.extensions["fhir_bridge"].engine.dispose()


@pytest.fixture
def sqlite_app(tmp_path):
    """The app on SQLite only, for tests about the API rather than the database."""
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'bridge.db'}"})
    app.test_client_class = FullAccessClient
    yield app
    app.extensions["fhir_bridge"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


#: Tables that every request writes to by design: the audit trail records refused and
#: unchanged requests too (tests/test_fhir_api.py checks it).
AUDIT_TABLES = ("audit_events",)


def snapshot(app) -> dict[str, list]:
    """Every row of every table but the audit trail: compare before and after to prove
    nothing was written."""
    engine = app.extensions["fhir_bridge"].engine
    out = {}
    with engine.connect() as conn:
        for table in tables.metadata.sorted_tables:
            if table.name in AUDIT_TABLES:
                continue
            rows = conn.execute(sa.select(table)).all()
            out[table.name] = sorted((tuple(str(v) for v in row) for row in rows))
    return out


@pytest.fixture
def loaded_client(client):
    """A client whose store holds fixture p01."""
    doc = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")
    response = client.post("/api/v1/documents", json=doc)
    assert response.status_code == 200, response.json
    return client


# --- the real HAPI FHIR server ---------------------------------------------------------------

HAPI_URL = os.environ.get("FHIR_BRIDGE_TEST_HAPI_URL")


def expunge(base_url: str) -> None:
    import requests

    response = requests.post(f"{base_url}/$expunge", json={
        "resourceType": "Parameters",
        "parameter": [{"name": "expungeEverything", "valueBoolean": True}]},
        headers={"Content-Type": "application/fhir+json"}, timeout=120)
    response.raise_for_status()


@pytest.fixture
def hapi_url() -> str:
    """The HAPI FHIR JPA test server (scripts/hapi-server start), emptied for each test."""
    if not HAPI_URL:
        if os.environ.get("CI"):
            pytest.fail("FHIR_BRIDGE_TEST_HAPI_URL is not set: the HAPI server must run in CI")
        pytest.skip("HAPI not configured (scripts/hapi-server start)")
    expunge(HAPI_URL)
    return HAPI_URL


def hapi_count(base_url: str, resource_type: str, **params) -> int:
    import requests

    response = requests.get(f"{base_url}/{resource_type}",
                            params={"_summary": "count", **params},
                            headers={"Cache-Control": "no-cache"}, timeout=60)
    response.raise_for_status()
    return response.json()["total"]
