"""FHIR Bulk Data Access 2.0 export: kick-off, status, NDJSON files, cancel, expiry, scopes,
ownership and the audit, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.bulk import jobs
from fhir_bridge.bulk.worker import Exporter
from fhir_bridge.store import tables

from .conftest import FIXTURES, read_json, token_for

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
DOCS = ("p01-depression-ssri-titration.json", "p02-bipolar-lithium.json")


@pytest.fixture
def bulk_app(database_url, tmp_path):
    app = create_app({"database_url": database_url,
                      "bulk": {"output_dir": str(tmp_path / "exports"),
                               "max_resources_per_file": 5}})
    client = app.test_client()
    for name in DOCS:
        answer = client.post("/api/v1/documents", json=read_json(FIXTURES / "internal" / name),
                             headers=auth(app, "system/*.cruds"))
        assert answer.status_code == 200, answer.json
    yield app
    app.extensions["fhir_bridge"].engine.dispose()


def auth(app, *scopes, **claims) -> dict:
    return {"Authorization": "Bearer " + token_for(app, *(scopes or ("system/*.rs",)),
                                                   **claims)}


def kick_off(app, path="/fhir/$export", headers=None, **claims):
    answer = app.test_client().get(path, headers={**ASYNC, **(headers or auth(app, **claims))})
    assert answer.status_code == 202, answer.get_json()
    return answer.headers["Content-Location"].removeprefix("http://localhost")


def run_jobs(app) -> None:
    bridge = app.extensions["fhir_bridge"]
    exporter = Exporter(bridge.engine, bridge.config)
    while exporter.run_once() is not None:
        pass


def manifest(app, status_path, headers=None) -> dict:
    answer = app.test_client().get(status_path, headers=headers or auth(app))
    assert answer.status_code == 200, answer.get_json()
    return json.loads(answer.get_data())


def lines(app, url, headers=None) -> list[dict]:
    answer = app.test_client().get(url.removeprefix("http://localhost"),
                                   headers=headers or auth(app))
    try:
        assert answer.status_code == 200, answer.get_json()
        assert answer.mimetype == "application/fhir+ndjson"
        return [json.loads(line) for line in answer.get_data().splitlines()]
    finally:
        answer.close()  # a file response holds the file open until closed


def exported(app, doc, headers=None) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for item in doc["output"]:
        got = lines(app, item["url"], headers)
        assert len(got) == item["count"]
        assert {r["resourceType"] for r in got} == {item["type"]}
        out.setdefault(item["type"], []).extend(got)
    return out


def search_ids(app, rtype, query="") -> set[str]:
    answer = app.test_client().get(f"/fhir/{rtype}?_count=500&{query}",
                                   headers=auth(app, "system/*.rs"))
    return {e["resource"]["id"] for e in answer.json.get("entry", [])}


def test_a_system_export_writes_every_resource_once_in_ndjson_files(bulk_app):
    status = kick_off(bulk_app)
    waiting = bulk_app.test_client().get(status, headers=auth(bulk_app))
    assert waiting.status_code == 202
    assert waiting.headers["X-Progress"] and int(waiting.headers["Retry-After"]) > 0
    run_jobs(bulk_app)
    doc = manifest(bulk_app, status)
    assert doc["requiresAccessToken"] is True and doc["error"] == []
    assert doc["request"] == "http://localhost/fhir/$export"
    assert dt.datetime.fromisoformat(doc["transactionTime"]).tzinfo is not None
    files = exported(bulk_app, doc)
    for rtype in ("Patient", "MedicationRequest", "Observation", "CarePlan", "CareTeam"):
        assert {r["id"] for r in files[rtype]} == search_ids(bulk_app, rtype), rtype
    assert "AuditEvent" not in files
    # max_resources_per_file 5: a type with more resources is split over several files
    observation_files = [o for o in doc["output"] if o["type"] == "Observation"]
    assert len(observation_files) > 1 and all(o["count"] <= 5 for o in observation_files)
    assert files["Patient"][0]["meta"]["versionId"]


def test_type_since_and_type_filter_narrow_the_export(bulk_app):
    status = kick_off(bulk_app, "/fhir/$export?_type=MedicationRequest,Patient"
                      "&_typeFilter=MedicationRequest%3Fstatus%3Dactive"
                      "&_outputFormat=application%2Ffhir%2Bndjson")
    run_jobs(bulk_app)
    files = exported(bulk_app, manifest(bulk_app, status))
    assert set(files) == {"MedicationRequest", "Patient"}
    assert {r["id"] for r in files["MedicationRequest"]} == search_ids(
        bulk_app, "MedicationRequest", "status=active")
    assert {r["status"] for r in files["MedicationRequest"]} == {"active"}
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).isoformat()
    status = kick_off(bulk_app, f"/fhir/$export?_since={later.replace('+', '%2B')}")
    run_jobs(bulk_app)
    assert manifest(bulk_app, status)["output"] == []


def test_patient_and_group_exports_hold_only_their_patients_compartment(bulk_app):
    status = kick_off(bulk_app, "/fhir/Patient/$export")
    run_jobs(bulk_app)
    files = exported(bulk_app, manifest(bulk_app, status))
    assert "Practitioner" not in files and "Patient" in files
    groups = bulk_app.test_client().get("/fhir/Group", headers=auth(bulk_app)).json
    panels = [e["resource"] for e in groups["entry"] if e["resource"]["id"] != "all-patients"]
    assert panels, "the fixtures' care teams name practitioners"
    smallest = min(panels, key=lambda g: g["quantity"])
    members = {m["entity"]["reference"] for m in smallest["member"]}
    status = kick_off(bulk_app, f"/fhir/Group/{smallest['id']}/$export")
    run_jobs(bulk_app)
    files = exported(bulk_app, manifest(bulk_app, status))
    assert {f"Patient/{r['id']}" for r in files["Patient"]} == members
    assert {r["subject"]["reference"] for r in files["MedicationRequest"]} <= members
    missing = bulk_app.test_client().get("/fhir/Group/panel-nobody/$export",
                                         headers={**ASYNC, **auth(bulk_app)})
    assert missing.status_code == 404


@pytest.mark.parametrize("query, field", [
    ("_outputFormat=text/csv", "_outputFormat"), ("_type=Foo", "_type"),
    ("_type=AuditEvent", "_type"), ("_since=2025-01-01", "_since"),
    ("_typeFilter=Observation%3Fnot-a-param%3D1", "_typeFilter"),
    ("_type=Patient&_typeFilter=Observation%3Fstatus%3Dfinal", "_typeFilter"),
    ("includeAssociatedData=LatestProvenanceResources", "includeAssociatedData")])
def test_a_kick_off_that_cannot_be_run_as_asked_is_400_naming_the_parameter(bulk_app, query,
                                                                              field):
    before = _job_count(bulk_app)
    answer = bulk_app.test_client().get(f"/fhir/$export?{query}",
                                        headers={**ASYNC, **auth(bulk_app)})
    assert answer.status_code == 400
    assert [field] in [i.get("expression") for i in answer.json["issue"]]
    assert _job_count(bulk_app) == before


def test_a_kick_off_without_prefer_respond_async_is_400(bulk_app):
    answer = bulk_app.test_client().get("/fhir/$export", headers=auth(bulk_app))
    assert answer.status_code == 400 and answer.json["issue"][0]["expression"] == ["Prefer"]


@pytest.mark.parametrize("scopes, claims", [
    (("user/*.rs",), {}), (("patient/*.rs",), {"patient": "pat-p01"}),
    (("system/Observation.rs",), {})])
def test_only_system_scopes_that_read_the_types_may_export(bulk_app, scopes, claims):
    path = "/fhir/$export?_type=Patient" if scopes == ("system/Observation.rs",) \
        else "/fhir/$export"
    answer = bulk_app.test_client().get(path, headers={**ASYNC, **auth(bulk_app, *scopes,
                                                                        **claims)})
    assert answer.status_code == 403


def test_a_v1_system_read_scope_exports_what_it_names(bulk_app):
    status = kick_off(bulk_app, headers=auth(bulk_app, "system/Observation.read"))
    run_jobs(bulk_app)
    doc = manifest(bulk_app, status, auth(bulk_app, "system/Observation.read"))
    assert {o["type"] for o in doc["output"]} == {"Observation"}


def test_status_and_files_belong_to_the_client_that_started_the_export(bulk_app):
    status = kick_off(bulk_app)
    run_jobs(bulk_app)
    url = manifest(bulk_app, status)["output"][0]["url"].removeprefix("http://localhost")
    other = auth(bulk_app, "system/*.rs", subject="another-client")
    client = bulk_app.test_client()
    assert client.get(status, headers=other).status_code == 404
    assert client.get(url, headers=other).status_code == 404
    assert client.delete(status, headers=other).status_code == 404
    assert client.get(url).status_code == 401  # requiresAccessToken
    assert lines(bulk_app, url)


def test_delete_cancels_an_export_and_removes_its_files(bulk_app, tmp_path):
    status = kick_off(bulk_app)
    run_jobs(bulk_app)
    url = manifest(bulk_app, status)["output"][0]["url"].removeprefix("http://localhost")
    client = bulk_app.test_client()
    assert client.delete(status, headers=auth(bulk_app)).status_code == 202
    assert client.get(status, headers=auth(bulk_app)).status_code == 404
    assert client.get(url, headers=auth(bulk_app)).status_code == 404
    run_jobs(bulk_app)  # the worker's sweep removes the files
    assert list((tmp_path / "exports").iterdir()) == []
    waiting = kick_off(bulk_app)
    assert client.delete(waiting, headers=auth(bulk_app)).status_code == 202
    run_jobs(bulk_app)  # a job cancelled before it ran is never run
    assert list((tmp_path / "exports").iterdir()) == []


def test_finished_exports_expire(database_url, tmp_path):
    app = create_app({"database_url": database_url,
                      "bulk": {"output_dir": str(tmp_path / "exports"), "file_ttl_seconds": 1}})
    try:
        app.test_client().post("/api/v1/documents", headers=auth(app, "system/*.cruds"),
                               json=read_json(FIXTURES / "internal" / DOCS[0]))
        status = kick_off(app)
        bridge = app.extensions["fhir_bridge"]
        exporter = Exporter(bridge.engine, bridge.config)
        exporter.run_once()
        url = manifest(app, status)["output"][0]["url"].removeprefix("http://localhost")
        time.sleep(1.2)
        assert app.test_client().get(status, headers=auth(app)).status_code == 404
        assert app.test_client().get(url, headers=auth(app)).status_code == 404
        exporter.sweep()
        assert list((tmp_path / "exports").iterdir()) == []
    finally:
        app.extensions["fhir_bridge"].engine.dispose()


def test_a_job_left_by_a_dead_worker_runs_again(bulk_app):
    status = kick_off(bulk_app)
    engine = bulk_app.extensions["fhir_bridge"].engine
    taken = jobs.claim(engine, "dead-worker", lease_seconds=-1)  # its lease ran out at once
    assert taken is not None
    assert bulk_app.test_client().get(status, headers=auth(bulk_app)).status_code == 202
    run_jobs(bulk_app)
    assert manifest(bulk_app, status)["output"]
    assert jobs.claim(engine, "another-worker", 60) is None


def test_an_export_is_audited(bulk_app):
    status = kick_off(bulk_app, "/fhir/$export?_type=Patient")
    run_jobs(bulk_app)
    engine = bulk_app.extensions["fhir_bridge"].engine
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tables.audit_events.c.content).where(
            tables.audit_events.c.subtype == "operation")).scalars().all()
    events = [json.loads(r) for r in rows]
    kick_offs = [e for e in events if "GET /fhir/$export -> HTTP 202" in json.dumps(e)]
    assert len(kick_offs) == 1, "the kick-off is audited like every request"
    written = [e for e in events if "bulk export" in json.dumps(e)]
    assert written, "the export job records what it wrote"
    assert any(d.get("what", {}).get("reference", "").startswith("Patient/")
               for d in written[0]["entity"])
    assert manifest(bulk_app, status)["output"]


def _job_count(app) -> int:
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(tables.bulk_jobs)).scalar()


def test_a_relative_output_dir_is_read_from_the_working_directory(database_url, tmp_path,
                                                                  monkeypatch):
    """Files were written relative to the working directory but looked up relative to the
    package (send_file's rule for relative paths): every download was a 500."""
    monkeypatch.chdir(tmp_path)
    app = create_app({"database_url": database_url, "bulk": {"output_dir": "exports"}})
    try:
        app.test_client().post("/api/v1/documents", headers=auth(app, "system/*.cruds"),
                               json=read_json(FIXTURES / "internal" / DOCS[0]))
        status = kick_off(app, "/fhir/$export?_type=Patient")
        run_jobs(app)
        [item] = manifest(app, status)["output"]
        assert [r["id"] for r in lines(app, item["url"])] == ["pat-p01"]
        assert (tmp_path / "exports").is_dir()
    finally:
        app.extensions["fhir_bridge"].engine.dispose()


def test_a_running_export_stops_at_its_next_page_when_cancelled(bulk_app, tmp_path):
    from fhir_bridge.bulk.export import Cancelled, write_export

    status = kick_off(bulk_app)
    bridge = bulk_app.extensions["fhir_bridge"]
    job = jobs.claim(bridge.engine, "worker-a", 60)
    assert bulk_app.test_client().delete(status, headers=auth(bulk_app)).status_code == 202
    with pytest.raises(Cancelled):
        write_export(bridge.engine, job, tmp_path / "exports", 500, 10,
                     lambda progress: jobs.renew(bridge.engine, job.id, "worker-a", 60,
                                                 progress))


def test_groups_are_read_by_system_and_user_tokens_only(bulk_app):
    client = bulk_app.test_client()
    group = client.get("/fhir/Group/all-patients", headers=auth(bulk_app))
    assert group.status_code == 200
    assert (group.json["type"], group.json["quantity"]) == ("person", len(DOCS))
    assert client.get("/fhir/Group/panel-nobody", headers=auth(bulk_app)).status_code == 404
    patient = auth(bulk_app, "patient/*.rs", patient="pat-p01")
    assert client.get("/fhir/Group", headers=patient).status_code == 403
    assert client.get("/fhir/Group", headers=auth(bulk_app, "user/Group.rs")).status_code == 200
