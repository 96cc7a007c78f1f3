"""The Bulk Data endpoints under /fhir (FHIR Bulk Data Access 2.0):

- ``GET /fhir/$export``, ``/fhir/Patient/$export``, ``/fhir/Group/<id>/$export``: kick-off
  (202, ``Content-Location`` = the status URL);
- ``GET /fhir/bulk-status/<job>``: 202 with ``X-Progress`` and ``Retry-After`` while it runs,
  200 with the manifest when done; ``DELETE`` cancels it (202) and removes its files;
- ``GET /fhir/bulk-files/<job>/<file>``: one NDJSON file;
- ``GET /fhir/Group`` (searched by the /fhir engine, facade/catalog.py) and
  ``/fhir/Group/<id>``: the groups a Group export can name.

A job, its status and its files belong to the client that started it (the token's issuer,
subject and client id): any other caller gets 404, as for a job that does not exist.
"""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

import orjson
from flask import Blueprint, Response, current_app, g, request, send_file

from ..auth import current_principal
from ..errors import BridgeError, Forbidden, Issue, NotFound
from ..facade.catalog import read_answer
from ..facade.urls import fhir_base
from ..store.records import instant, utcnow
from ..subscriptions.repository import client_key
from . import groups, jobs
from .export import job_dir
from .kickoff import parse_kickoff
from .worker import output_root, settings_of

bp = Blueprint("bulk", __name__, url_prefix="/fhir")
NDJSON = "application/fhir+ndjson"


def _bridge():
    return current_app.extensions["fhir_bridge"]


def _owner() -> str:
    principal = current_principal()
    return client_key(principal.issuer, principal.subject, principal.client_id)


def _touched(query: str | None, entities: tuple[str, ...] | list[str] = ()) -> None:
    """Tell the request audit hook the export's query and the group it names."""
    audit = g.setdefault("audit_touched", {"entities": [], "patients": set(), "query": None})
    audit["entities"].extend(entities)
    if query is not None:
        audit["query"] = query


def _kickoff(level: str, group: str | None = None):
    args = list(request.args.items(multi=True))
    params = parse_kickoff(level, args, request.headers.get("Prefer"), group)
    query = request.query_string.decode("utf-8", "replace")
    url = request.base_url if not query else f"{request.base_url}?{query}"
    job_id = jobs.create(_bridge().engine, _owner(), url, params)
    _touched(query or None, [f"Group/{group}"] if group else [])
    return Response(status=202, headers={
        "Content-Location": f"{fhir_base(_bridge().config)}/bulk-status/{job_id}"})


@bp.get("/$export")
def export_system():
    return _kickoff("system")


@bp.get("/Patient/$export")
def export_patients():
    return _kickoff("patient")


@bp.get("/Group/<group_id>/$export")
def export_group(group_id: str):
    _known_group(group_id)
    return _kickoff("group", group_id)


def _group_reader() -> None:
    principal = current_principal()
    if principal.context == "patient":
        raise Forbidden("groups list many patients: a patient-context token cannot read them")
    principal.require("Group", "r")


def _known_group(group_id: str) -> None:
    """The caller may read groups and this one exists (else 403 / 404)."""
    _group_reader()
    with _bridge().engine.connect() as conn:
        if not groups.exists(conn, group_id):
            raise NotFound(f"Group/{group_id} is not known")


def searchable_groups() -> list[dict]:
    """The Groups a search sees (the caller may search groups): the catalog source."""
    _group_reader()
    current_principal().require("Group", "s")
    with _bridge().engine.connect() as conn:
        return groups.all_groups(conn)


@bp.get("/Group/<group_id>")
def read_group(group_id: str):
    _known_group(group_id)
    with _bridge().engine.connect() as conn:
        return read_answer(groups.group_resource(conn, group_id))


def _own_job(job_id: str) -> jobs.Job:
    job = jobs.get(_bridge().engine, job_id)
    if job is None or job.status not in jobs.VISIBLE or job.owner_client != _owner() or (
            job.expires_at is not None and job.expires_at <= utcnow()):
        raise NotFound(f"no export job {job_id!r}")
    return job


@bp.get("/bulk-status/<job_id>")
def status(job_id: str):
    job = _own_job(job_id)
    settings = settings_of(_bridge().config)
    if job.status in ("accepted", "in-progress"):
        return Response(status=202, headers={
            "X-Progress": job.progress or job.status,
            "Retry-After": str(int(settings["retry_after_seconds"]))})
    if job.status == "failed":
        reason = "; ".join(job.errors or [])
        raise BridgeError(f"the export failed: {reason}", [Issue("(export)", reason)])
    base = fhir_base(_bridge().config)
    manifest = {
        "transactionTime": instant(job.transaction_time), "request": job.request_url,
        "requiresAccessToken": True,
        "output": [{"type": f["type"], "url": f"{base}/bulk-files/{job.id}/{f['file']}",
                    "count": f["count"]} for f in job.output or []],
        "error": []}
    # Streamed, so that the /fhir hook that drops empty arrays leaves it whole: the Bulk Data
    # manifest requires "error" even when it is empty.
    response = Response(iter([orjson.dumps(manifest)]), status=200, mimetype="application/json")
    if job.expires_at is not None:
        response.headers["Expires"] = format_datetime(job.expires_at.astimezone(dt.timezone.utc),
                                                     usegmt=True)
    return response


@bp.delete("/bulk-status/<job_id>")
def cancel(job_id: str):
    job = _own_job(job_id)
    if not jobs.cancel(_bridge().engine, job.id):
        raise NotFound(f"no export job {job_id!r}")
    return Response(status=202)


@bp.get("/bulk-files/<job_id>/<name>")
def download(job_id: str, name: str):
    job = _own_job(job_id)
    entry = next((f for f in job.output or [] if f["file"] == name), None)
    if job.status != "completed" or entry is None:
        raise NotFound(f"no file {name!r} in export {job_id!r}")
    path = job_dir(output_root(_bridge().config), job.id) / entry["file"]
    if not path.is_file():
        raise NotFound(f"no file {name!r} in export {job_id!r}")
    _touched(job.request_url.partition("?")[2] or None)
    return send_file(path, mimetype=NDJSON, conditional=False, etag=False)
