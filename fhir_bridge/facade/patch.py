"""``PATCH [type]/[id]`` with a JSON Patch (RFC 6902, ``application/json-patch+json``), for
the types that take ``PUT``: the patch is applied to the resource as served (json_patch.py),
and the result is saved as an update of exactly that version, through the update path of
writes.py (plans.plan_update, then the records' one save: validation, safety checks, audit,
outbox, subscriptions), answered as an update is.

``If-Match`` naming another version than the current one: 412 before anything is applied. A
change by someone else between the read and the save: 412 with If-Match, else 409 (the patch
was applied to a version that is no longer current: apply it again)."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from ..auth.principal import current_principal
from ..errors import Conflict, Gone, Issue, PreconditionFailed, UnsupportedMediaType
from ..fhir import jsonio
from ..store import foreign
from . import intake, json_patch, plans, repository
from .views import _negotiate, _resource_type
from .writes import run_one

PATCH_TYPE = "application/json-patch+json"

bp = Blueprint("fhir_patch", __name__, url_prefix="/fhir")
bp.before_request(_negotiate)


def _patch_body() -> object:
    if request.mimetype != PATCH_TYPE:
        raise UnsupportedMediaType(
            f"PATCH takes a JSON Patch sent as {PATCH_TYPE} (got {request.mimetype or 'none'});"
            " FHIRPath Patch is not supported",
            [Issue("Content-Type", f"must be {PATCH_TYPE}", "not-supported")])
    return jsonio.strict_loads(request.get_data(cache=True))


def _generated_narrative_left_out(conn, served: dict, patched: object) -> object:
    """The bridge's generated narrative describes the record: a patch that leaves it as it was
    does not make it the client's (kept as sent, it would no longer follow the record), so it
    is left out and generated again. A sender's narrative (kept as sent) stays."""
    if not isinstance(patched, dict) or "text" not in patched or \
            patched["text"] != served.get("text"):
        return patched
    key = (served["resourceType"], served["id"])
    kept = foreign.stored(conn, [key]).get(key)
    if kept is not None and "text" in kept.original:
        return patched
    return {k: v for k, v in patched.items() if k != "text"}


@bp.patch("/<fhir_type:resource_type>/<fhir_id:resource_id>")
def patch(resource_type: str, resource_id: str):
    rtype = _resource_type(resource_type)
    operations = _patch_body()
    asked = plans.if_match_version(request.headers.get("If-Match"))
    bridge = current_app.extensions["fhir_bridge"]

    def build(conn) -> plans.Plan:
        intake.require_writable(bridge.mapper, rtype)
        current_principal().require(rtype, "u")
        plans.owner(conn, rtype, resource_id)  # 404, or 405 for a part of another resource
        stored = repository.current(conn, rtype, resource_id)
        if stored.deleted:
            raise Gone(f"{rtype}/{resource_id} was deleted: there is nothing to patch")
        if asked is not None and asked != stored.version_id:
            raise PreconditionFailed(f"{rtype}/{resource_id} is not at version {asked}", [
                Issue("If-Match", f"the current version is {stored.version_id}; read it "
                                  "again", "conflict")])
        served = stored.resource()
        patched = json_patch.apply(served, operations,
                                   current_app.config.get("MAX_CONTENT_LENGTH"))
        return plans.plan_update(conn, _generated_narrative_left_out(conn, served, patched),
                                 rtype, resource_id, plans.stored_resolver(conn),
                                 stored.version_id)

    try:
        return run_one(build)
    except PreconditionFailed as exc:
        if asked is not None:
            raise
        raise Conflict(f"{rtype}/{resource_id} changed while the patch was applied: apply it "
                       "again", [Issue("(id)", exc.issues[0].message if exc.issues else
                                       "changed", "conflict")]) from None
