"""Writes through /fhir, planned then saved: each create, update or delete becomes a Plan
(the internal record, what must hold when it is saved), and ``execute`` saves any number of
plans in ONE call of the records' save path (``RecordStore.save``: consequences, validation,
safety checks, monitoring, subscriptions, audit and outbox, all in one transaction), the same
path the JSON API takes. Scopes (SMART ``c``, ``u``, ``d``; v1 ``write`` is all three) and
the patient context are checked while planning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sqlalchemy as sa
from flask import current_app

from ..api.outcome import safety_warnings
from ..api.records import detected_issues
from ..auth import compartment
from ..auth.api_rules import require_write
from ..auth.principal import current_principal
from ..mapping.foreign import Foreign
from ..errors import BadRequest, BridgeError, Forbidden, InvalidInput, Issue, MethodNotAllowed, \
    NotFound, PreconditionFailed
from ..model import Concept, concept_by_name
from ..store import tables as t
from ..store.records import StoredRecord
from . import access, conditional, intake, repository
from .conditional import Condition
from .repository import StoredResource
from .search import Viewer


def _bridge():
    return current_app.extensions["fhir_bridge"]


@dataclass
class Plan:
    concept: Concept
    record_id: str
    resource_type: str
    record: dict | None  # None: a deletion
    create: bool = False
    if_match: int | None = None  # the resource version the client last read
    condition: Condition | None = None
    resource: dict | None = None  # the resource as written (to name problems in it)
    foreign: Foreign | None = None  # the parse: kept as sent beside the record, and notes

    @property
    def resource_id(self) -> str:
        return _bridge().mapper.resource_id(self.concept.name, self.record_id)


@dataclass
class Result:
    plan: Plan
    status: int  # 200, 201 or 204
    stored: StoredResource | None  # the resource as now served (None once deleted)
    warnings: dict | None = None  # safety findings and notes, an OperationOutcome
    saved: list[StoredRecord] = field(default_factory=list)


def if_match_version(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise BadRequest('If-Match must be an ETag like W/"3"', [Issue("If-Match",
                                                                       "not a version")])
    return int(text)


def viewer(reading: bool = True) -> Viewer:
    """What the caller may find: its patient's resources only (patient context) and, when
    ``reading`` (conditions, references), of the types it may read. A write needs no read
    scope on what it writes."""
    principal = current_principal()
    patient = principal.patient_record_id if principal.context == "patient" else None
    if principal.context == "patient" and patient is None:
        raise Forbidden("the token's patient is not known here")
    if not reading:
        return Viewer(lambda rtype: True, patient)
    return Viewer(lambda rtype: access.permits(principal, rtype, "r"), patient)


def stored_resolver(conn: sa.Connection) -> Callable[[str], dict | None]:
    """References to resources served here (a CarePlan's stored goals, ...)."""
    seen = viewer()

    def resolve(reference: str) -> dict | None:
        parts = reference.split("/")
        if len(parts) < 2:
            return None
        found = repository.current(conn, parts[-2], parts[-1])
        if found is None or found.deleted or not seen.sees(found):
            return None
        return found.resource()

    return resolve


def owner(conn: sa.Connection, resource_type: str, resource_id: str):
    """(concept, record id, version, deleted) of a stored resource; 404 when unknown."""
    r = t.resources
    row = conn.execute(sa.select(r.c.concept, r.c.record_id, r.c.version_id, r.c.deleted,
                                 r.c.patient_id).where(r.c.resource_type == resource_type,
                                                       r.c.id == resource_id)).first()
    if row is None or not viewer(reading=False).sees(StoredResource(resource_type, resource_id, 1,
                                                       None, row.patient_id, False, None)):
        raise NotFound(f"{resource_type}/{resource_id} is not known",
                       [Issue("(id)", "updates change resources that exist; create with POST",
                              "not-found")])
    if row.concept not in _bridge().mapper.by_concept or \
            _bridge().mapper.resource_id(row.concept, row.record_id) != resource_id:
        raise MethodNotAllowed(f"{resource_type}/{resource_id} is part of another resource",
                               [Issue("(id)", f"it belongs to {row.concept} "
                                      f"{row.record_id!r}: write that one", "not-supported")])
    return row


def _require(concept: Concept, letter: str) -> None:
    """The record's own type and what writing it also updates (an adherence report: its
    prescription), as the records API requires (auth/api_rules.py)."""
    require_write(current_principal(), concept, letter)


def named_id(mapper, concept_name: str, resource: dict) -> str:
    """The record id a create gets: the bridge's own identifier when the resource carries
    it (a client that knows the bridge's ids), else a new one."""
    system = mapper.identifier_system(concept_name)
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == system \
                and isinstance(identifier.get("value"), str):
            return identifier["value"]
    return intake.new_id()


def plan_create(conn, resource: dict, resource_type: str,
                resolve: Callable[[str], dict | None], if_none_exist: str | None = None,
                batch: frozenset = frozenset(), record_id: str | None = None
                ) -> Plan | StoredResource:
    """A create, or (``If-None-Exist`` matching one) the resource that exists already."""
    mapper = _bridge().mapper
    intake.require_writable(mapper, resource_type)
    current_principal().require(resource_type, "c")
    condition = None
    if if_none_exist is not None:
        condition, match = conditional.plan(conn, resource_type, if_none_exist,
                                            "If-None-Exist", viewer())
        if match is not None:
            return match
    foreign = intake.read_resource(mapper, resource, resource_type, resolve, lambda m: (
        record_id or named_id(mapper, m.concept, resource)))
    concept, record = concept_by_name(foreign.concept), foreign.record
    _require(concept, "c")
    compartment.check_write(concept, record, batch)
    return Plan(concept, record["id"], resource_type, record, create=True,
                condition=condition, resource=resource, foreign=foreign)


def plan_update(conn, resource: dict, resource_type: str, resource_id: str,
                resolve: Callable[[str], dict | None], if_match: int | None = None,
                batch: frozenset = frozenset()) -> Plan:
    mapper = _bridge().mapper
    intake.require_writable(mapper, resource_type)
    if isinstance(resource, dict) and resource.get("id") != resource_id:
        raise BadRequest("the resource's id must be the id in the URL",
                         [Issue(f"{resource_type}.id", f"must be {resource_id!r}")])
    current_principal().require(resource_type, "u")
    row = owner(conn, resource_type, resource_id)
    foreign = intake.read_resource(mapper, resource, resource_type, resolve,
                                   lambda m: row.record_id)
    concept, record = concept_by_name(foreign.concept), foreign.record
    if concept.name != row.concept:
        raise InvalidInput(f"{resource_type}/{resource_id} holds a {row.concept}",
                           [Issue(f"{resource_type}.code" if resource_type == "Observation"
                                  else resource_type, f"reads as a {concept.name}, not a "
                                                      f"{row.concept}")])
    _require(concept, "u")
    compartment.check_write(concept, record, batch)
    return Plan(concept, row.record_id, resource_type, record, create=bool(row.deleted),
                if_match=if_match, resource=resource, foreign=foreign)


def plan_conditional_update(conn, resource: dict, resource_type: str, query: str,
                            resolve: Callable[[str], dict | None], if_match: int | None = None,
                            batch: frozenset = frozenset(), record_id: str | None = None
                            ) -> Plan:
    """``PUT [type]?identifier=...``: no match creates, one match updates it, more: 412."""
    intake.require_writable(_bridge().mapper, resource_type)
    current_principal().require(resource_type, "u")
    condition, match = conditional.plan(conn, resource_type, query, "(query)", viewer())
    if match is None:
        if isinstance(resource, dict):
            resource = {k: v for k, v in resource.items() if k != "id"}
        found = plan_create(conn, resource, resource_type, resolve, batch=batch,
                            record_id=record_id)
        found.condition = condition
        return found
    if isinstance(resource, dict) and resource.get("id") not in (None, match.id):
        raise BadRequest("the resource's id is not the one the query matches",
                         [Issue(f"{resource_type}.id", f"must be {match.id!r} or left out")])
    body = {**resource, "id": match.id} if isinstance(resource, dict) else resource
    out = plan_update(conn, body, resource_type, match.id, resolve, if_match, batch)
    out.condition = condition
    return out


def plan_delete(conn, resource_type: str, resource_id: str,
                if_match: int | None = None) -> Plan | None:
    """A deletion; None when the resource is deleted already (deleting is idempotent)."""
    mapper = _bridge().mapper
    intake.require_writable(mapper, resource_type)
    current_principal().require(resource_type, "d")
    row = owner(conn, resource_type, resource_id)
    concept = concept_by_name(row.concept)
    if concept.name in intake.NOT_DELETABLE:
        raise MethodNotAllowed(f"{resource_type}/{resource_id} cannot be deleted",
                               [Issue("(id)", intake.NOT_DELETABLE[concept.name],
                                      "not-supported")])
    if row.deleted:
        return None
    return Plan(concept, row.record_id, resource_type, None, if_match=if_match)


class DryRun(Exception):
    """Raised inside the saving transaction by ``execute(dry_run=True)``: rolls it back."""

    def __init__(self, saved: list[StoredRecord]):
        super().__init__("dry run")
        self.saved = saved


def _pin(conn: sa.Connection, plan: Plan) -> None:
    """In the saving transaction: the resource is still at the version the client read (the
    record's row is locked first, after its patient's, in the order every save takes)."""
    if conn.dialect.name != "sqlite":
        patient = compartment.patient_of(plan.concept, plan.record) if plan.record else None
        for concept_name, record_id in (("patient", patient), (plan.concept.name,
                                                                 plan.record_id)):
            if record_id is not None:
                conn.execute(sa.select(t.records.c.id).where(
                    t.records.c.concept == concept_name, t.records.c.id == record_id)
                    .with_for_update())
    r = t.resources
    current = conn.execute(sa.select(r.c.version_id).where(
        r.c.resource_type == plan.resource_type, r.c.id == plan.resource_id)).scalar()
    if current != plan.if_match:
        raise PreconditionFailed(f"{plan.resource_type}/{plan.resource_id} changed since "
                                 f"version {plan.if_match}",
                                 [Issue("If-Match", f"the current version is {current}; "
                                                    "read it again", "conflict")])


def execute(plans: list[Plan], dry_run: bool = False) -> list[Result]:
    """Save every plan in one transaction; a Result per plan, in order."""
    bridge = _bridge()
    see = viewer()
    writes = [p for p in plans if p.record is not None]
    deletions = [(p.concept, p.record_id) for p in plans if p.record is None]

    def first(conn):
        for checks in ("condition", "if_match"):
            for index, plan in enumerate(plans):
                try:
                    if checks == "condition" and plan.condition is not None:
                        conditional.recheck(conn, plan.condition, see, plan.create)
                    elif checks == "if_match" and plan.if_match is not None:
                        _pin(conn, plan)
                except BridgeError as exc:
                    exc.plan_index = index  # which entry of a transaction
                    raise

    def also(conn, saved):
        if dry_run:
            raise DryRun(saved)

    try:
        saved = bridge.store.save([(p.concept, p.record) for p in writes], also=also,
                                  first=first, deletions=deletions, source="api",
                                  keep=[p.foreign for p in writes if p.foreign is not None],
                                  create_only=[i for i, p in enumerate(writes) if p.create])
    except DryRun as done:
        saved = done.saved
    except InvalidInput as exc:  # the store's reference checks name record fields
        raise in_plan_terms(plans, exc) from None
    with bridge.engine.connect() as conn:
        return [_result(conn, plan, saved, dry_run) for plan in plans]


def in_plan_terms(plans: list[Plan], error: InvalidInput) -> InvalidInput:
    """A store error about one planned record, with its fields named as FHIRPaths of the
    resource written; ``plan_index`` says which plan (for a transaction's entry)."""
    for index, plan in enumerate(plans):
        if plan.resource is not None and \
                f"{plan.concept.name} {plan.record_id!r}" in error.message:
            out = intake.in_fhir_terms(_bridge().mapper, plan.concept, error, plan.resource)
            out.plan_index = index
            return out
    return error


def _result(conn, plan: Plan, saved: list[StoredRecord], dry_run: bool) -> Result:
    stored = None if plan.record is None or dry_run else \
        repository.current(conn, plan.resource_type, plan.resource_id)
    found = detected_issues(saved, plan.record_id) if plan.concept.name == "prescription" \
        else []
    issues = safety_warnings(found, _bridge().mapper)["issue"] if found else []
    if plan.concept.name == "assessment" and plan.record is not None:
        issues += alert_warnings(plan.record, _bridge().mapper)
    issues += intake.notes_outcome(plan.foreign.notes if plan.foreign else [])
    warnings = {"resourceType": "OperationOutcome", "issue": issues} if issues else None
    status = 204 if plan.record is None else 201 if plan.create else 200
    return Result(plan, status, stored, warnings, saved)



def alert_warnings(record: dict, mapper) -> list[dict]:
    """The safety alerts an assessment raised (PHQ-9 item 9, C-SSRS risk; instruments.yaml),
    as warnings of the answer: each stored as an active Flag, which the issue names, so the
    writer learns at once what the JSON API's ``alerts`` tell its clients."""
    from ..clinical.scoring import read
    from ..mapping.catalogs import instruments

    if not record.get("alerts"):
        return []
    reading = read(instruments()[record["instrument"]],
                   {a["number"]: a["value"] for a in record.get("items") or []},
                   record.get("total"))
    system = mapper.terminology.local_system("clinical-alert")
    return [{"severity": "warning", "code": "informational",
             "details": {"coding": [{"system": system, "code": a.alert, "display": a.text}],
                         "text": a.text},
             "diagnostics": f"{a.alert}: stored as an active Flag "
                            f"({mapper.reference('assessment-alert', record['id'] + '.' + a.alert)})",
             "expression": ["Observation.hasMember"]} for a in reading.alerts]
