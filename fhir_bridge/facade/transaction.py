"""Batch and transaction Bundles POSTed to the base URL.

A transaction is all or nothing, in ONE database transaction: every entry is planned
(plans.py) and all are saved by one call of the records' save path. ``urn:uuid`` fullUrls
get the ids the server assigns (a create's resource id, an update's or a conditional
match's), and every reference to them is rewritten before the entries are read. An entry
that is part of another (a panel's item Observation, a CarePlan's Goal) is read with the
resource that points at it and answered with the resource the bridge made of it. Any error
answers for the whole transaction, its issues located in the entry
(``Bundle.entry[2].resource.subject``).

A batch runs its entries one by one, each on its own: each entry's response carries its
status, and an OperationOutcome when it failed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from flask import current_app

from ..errors import BadRequest, BridgeError, Conflict, Issue
from ..fhir import references
from ..api.outcome import operation_outcome
from . import conditional, intake, plans, repository, urls
from .repository import StoredResource

METHODS = ("POST", "PUT", "DELETE")


@dataclass
class Entry:
    index: int
    method: str
    resource_type: str
    resource_id: str | None
    query: str | None
    resource: Any
    full_url: str | None
    if_match: str | None
    if_none_exist: str | None
    assigned: str | None = None  # "Type/id" this entry's resource gets
    match: StoredResource | None = None  # a conditional create's existing match
    member_of: int | None = None  # index of the entry whose resource this one is part of
    kept: list = field(default_factory=list)  # a member's elements kept as sent: (path, why)


@dataclass
class BundleAnswer:
    bundle: dict
    results: list[plans.Result] = field(default_factory=list)


def _bridge():
    return current_app.extensions["fhir_bridge"]


def _status(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def _entry(index: int, raw: Any, base: str) -> Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise BadRequest("every entry needs a request", [Issue(f"{where}.request", "missing")])
    req = raw["request"]
    method, url = req.get("method"), req.get("url")
    if method not in METHODS:
        raise BadRequest(f"entry {index}: method {method!r} is not served in a Bundle here",
                         [Issue(f"{where}.request.method", "must be POST, PUT or DELETE",
                                "not-supported")])
    if not isinstance(url, str) or not url:
        raise BadRequest(f"entry {index} has no url", [Issue(f"{where}.request.url", "missing")])
    url = url.removeprefix(base).lstrip("/")
    path, _, query = url.partition("?")
    rtype, _, rid = path.partition("/")
    if not rtype or "/" in rid or (method == "POST" and rid) or \
            (method == "DELETE" and not rid) or (method == "PUT" and not rid and not query):
        raise BadRequest(f"entry {index}: {method} {url} is not a write served here",
                         [Issue(f"{where}.request.url", "POST [type], PUT [type]/[id], PUT "
                                "[type]?query or DELETE [type]/[id]", "not-supported")])
    resource = raw.get("resource")
    if method != "DELETE" and not isinstance(resource, dict):
        raise BadRequest(f"entry {index} has no resource", [Issue(f"{where}.resource",
                                                                  "missing")])
    full_url = raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None
    return Entry(index, method, rtype, rid or None, query or None,
                 copy.deepcopy(resource), full_url, req.get("ifMatch"), req.get("ifNoneExist"))


def process(body: Any) -> BundleAnswer:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise BadRequest("POST a batch or transaction Bundle to the base URL",
                         [Issue("Bundle.resourceType", "must be Bundle")])
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise BadRequest("the Bundle must be a batch or a transaction",
                         [Issue("Bundle.type", f"is {kind!r}")])
    raw = body.get("entry") or []
    if not isinstance(raw, list):
        raise BadRequest("Bundle.entry must be a list", [Issue("Bundle.entry", "not a list")])
    base = urls.fhir_base(_bridge().config)
    if kind == "batch":
        return _batch(raw, base)
    return _transaction([_entry(i, e, base) for i, e in enumerate(raw)])


# -- transaction -------------------------------------------------------------------------------

def _located(error: BridgeError, entry: Entry) -> BridgeError:
    """The error with each issue placed in its entry."""
    where = f"Bundle.entry[{entry.index}]"
    out = copy.copy(error)
    out.issues = []
    for issue in error.issues:
        path = issue.path
        if path.startswith(entry.resource_type + "."):
            path = f"{where}.resource{path[len(entry.resource_type):]}"
        elif path.startswith(("(", "If-")):
            path = f"{where}.request"
        elif not path.startswith("Bundle."):
            path = f"{where}.resource.{path}" if path != entry.resource_type else \
                f"{where}.resource"
        out.issues.append(Issue(path, issue.message, issue.code, issue.severity))
    out.message = f"entry {entry.index}: {error.message}"
    out.args = (out.message,)
    return out


def _assign(conn, entry: Entry, see) -> None:
    """The id this entry's resource gets, before any entry is read (urn:uuid targets)."""
    mapper = _bridge().mapper
    if entry.method == "DELETE" or (entry.method == "PUT" and entry.resource_id):
        entry.assigned = f"{entry.resource_type}/{entry.resource_id}"
        return
    query = entry.query if entry.method == "PUT" else entry.if_none_exist
    if query:
        where = "(query)" if entry.method == "PUT" else "If-None-Exist"
        _, match = conditional.plan(conn, entry.resource_type, query, where, see)
        if match is not None:
            entry.assigned = f"{entry.resource_type}/{match.id}"
            entry.match = match if entry.method == "POST" else None
            return
    mapping = mapper.classify(entry.resource)
    if mapping is None or mapping.child:
        return  # part of another entry's resource, or refused when read
    record_id = plans.named_id(mapper, mapping.concept, entry.resource)
    entry.assigned = f"{entry.resource_type}/{mapper.resource_id(mapping.concept, record_id)}"


def _plan(conn, entry: Entry, resolve, batch: frozenset
          ) -> plans.Plan | StoredResource | None:
    """The entry's plan; a conditional create's match; None to delete what is gone."""
    if_match = plans.if_match_version(entry.if_match)
    if entry.method == "DELETE":
        return plans.plan_delete(conn, entry.resource_type, entry.resource_id, if_match)
    if entry.method == "PUT" and entry.resource_id:
        return plans.plan_update(conn, entry.resource, entry.resource_type, entry.resource_id,
                                 resolve, if_match, batch)
    if entry.method == "PUT":
        return plans.plan_conditional_update(conn, entry.resource, entry.resource_type,
                                             entry.query, resolve, if_match, batch,
                                             record_id=_record_id(entry))
    return plans.plan_create(conn, entry.resource, entry.resource_type, resolve,
                             entry.if_none_exist, batch, record_id=_record_id(entry))


def _record_id(entry: Entry) -> str | None:
    """The record id behind the resource id ``_assign`` gave (prefix-id)."""
    if entry.assigned is None:
        return None
    mapping = _bridge().mapper.classify(entry.resource)
    return entry.assigned.split("/", 1)[1].removeprefix(f"{mapping.id_prefix}-")


def _transaction(entries: list[Entry]) -> BundleAnswer:
    mapper = _bridge().mapper
    with _bridge().engine.connect() as conn:
        see = plans.viewer()
        for entry in entries:
            try:
                _assign(conn, entry, see)
            except BridgeError as exc:
                raise _located(exc, entry) from None
        ids = {key: e.assigned for e in entries if e.full_url and e.assigned
               for key in _names(e.full_url)}
        for entry in entries:
            if isinstance(entry.resource, dict):
                references.rewrite(entry.resource, lambda ref: ids.get(ref, ref))
        members = _members(entries)
        by_ref = {ref: e.resource for e in entries if isinstance(e.resource, dict)
                  for ref in _names(e.full_url) + [e.assigned] if ref}
        stored = plans.stored_resolver(conn)
        resolve = lambda ref: by_ref.get(ref) or stored(ref)  # noqa: E731
        for parent in sorted(set(members.values())):
            try:
                _localize_members(entries[parent], entries, members, resolve, by_ref)
            except BridgeError as exc:
                raise _located(exc, entries[parent]) from None
        batch = frozenset((m.concept, e.assigned.split("/", 1)[1].removeprefix(
            f"{m.id_prefix}-")) for e in entries if e.assigned and e.method != "DELETE"
            and (m := mapper.classify(e.resource)) is not None and not m.child)
        planned: list[tuple[Entry, plans.Plan]] = []
        for entry in entries:
            if entry.index in members or entry.match is not None:
                continue
            try:
                plan = _plan(conn, entry, resolve, batch)
            except BridgeError as exc:
                raise _located(exc, entry) from None
            if isinstance(plan, StoredResource):
                entry.match = plan
            elif plan is not None:
                planned.append((entry, plan))
    try:
        results = plans.execute([p for _, p in planned])
    except conditional.Matched as exc:
        raise Conflict("a conditional create of this transaction was made meanwhile by "
                         "another request; send the transaction again",
                         [Issue("Bundle.entry", f"{exc} exists now", "conflict")]) from None
    except BridgeError as exc:
        index = getattr(exc, "plan_index", None)
        if index is not None:
            raise _located(exc, planned[index][0]) from None
        raise
    by_entry = {entry.index: result for (entry, _), result in zip(planned, results)}
    answers = []
    for entry in entries:
        if entry.index in by_entry:
            answers.append(_response(by_entry[entry.index]))
        elif entry.match is not None:
            answers.append(_stored_response(200, entry.match))
        elif entry.index in members:
            answers.append(_member_response(entry))
        else:
            answers.append({"response": {"status": _status(204)}})
    return BundleAnswer({"resourceType": "Bundle", "type": "transaction-response",
                         "entry": answers}, list(by_entry.values()))


def _names(full_url: str | None) -> list[str]:
    """How the entry's resource is referred to: its fullUrl, and for an absolute URL also
    the relative ``Type/id`` it ends with (R4 bundle.html#references)."""
    if not full_url:
        return []
    key = references.split("/".join(full_url.split("/")[-2:]))
    return [full_url] + ([f"{key[0]}/{key[1]}"] if key and "://" in full_url else [])


def _members(entries: list[Entry]) -> dict[int, int]:
    """Entries whose resource is part of another entry's (no entry mapping reads it and
    another entry points at it): entry index -> the pointing entry's index."""
    mapper = _bridge().mapper
    out = {}
    for entry in entries:
        if entry.method != "POST" or entry.assigned or entry.full_url is None:
            continue
        for other in entries:
            if other is not entry and isinstance(other.resource, dict) and \
                    set(_names(entry.full_url)) & set(references.references(other.resource)):
                mapping = mapper.classify(other.resource)
                if mapping is not None and not mapping.child:
                    out[entry.index] = other.index
                    break
    return out


def _stored_response(status: int, stored: StoredResource | None, outcome: dict | None = None
                     ) -> dict:
    base = urls.fhir_base(_bridge().config)
    response: dict = {"status": _status(status)}
    if stored is not None:
        response.update(location=f"{base}/{stored.resource_type}/{stored.id}/_history/"
                                 f"{stored.version_id}",
                        etag=f'W/"{stored.version_id}"',
                        lastModified=stored.last_updated.isoformat(timespec="milliseconds"))
    if outcome:
        response["outcome"] = outcome
    return {"response": response}


def _response(result: plans.Result) -> dict:
    return _stored_response(result.status, result.stored, result.warnings)


def _localize_members(parent: Entry, entries: list[Entry], members: dict[int, int],
                      resolve, by_ref: dict) -> None:
    """Point the parent at the resources the bridge makes of its members (paired by their code,
    mapping/members.py: an item with its item, the total with the total), so what is kept of
    the parent as sent names them, as a pull's localized resource does."""
    mapper = _bridge().mapper
    urls_of = {name: entries[i] for i, p in members.items() if p == parent.index
               for name in _names(entries[i].full_url)}
    foreign = intake.read_resource(mapper, parent.resource, parent.resource_type, resolve,
                                   lambda m: _record_id(parent))
    paired = {m.sent_as: m for m in foreign.members if m.sent_as in urls_of}
    references.rewrite(parent.resource,
                       lambda ref: "/".join(paired[ref].key) if ref in paired else ref)
    for url, member in paired.items():
        by_ref["/".join(member.key)] = by_ref[url]
        urls_of[url].assigned = "/".join(member.key)
        urls_of[url].kept = member.notes


def _member_response(entry: Entry) -> dict:
    """A member: answered with the resource the bridge made of it, and what of it was kept as
    sent without a place in the record."""
    key = references.split(entry.assigned)
    with _bridge().engine.connect() as conn:
        stored = repository.current(conn, *key) if key else None
    issues = intake.notes_outcome(entry.kept)
    return _stored_response(201 if stored is not None else 200, stored,
                            {"resourceType": "OperationOutcome", "issue": issues} if issues
                            else None)


# -- batch -------------------------------------------------------------------------------------

def _batch(raw: list, base: str) -> BundleAnswer:
    answers, results = [], []
    for index, item in enumerate(raw):
        try:
            entry = _entry(index, item, base)
            with _bridge().engine.connect() as conn:
                plan = _plan(conn, entry, plans.stored_resolver(conn), frozenset())
            if isinstance(plan, StoredResource):
                answers.append(_stored_response(200, plan))
                continue
            if plan is None:
                answers.append({"response": {"status": _status(204)}})
                continue
            result = plans.execute([plan])[0]
        except conditional.Matched as found:
            answers.append(_stored_response(200, found.stored))
            continue
        except BridgeError as exc:
            if exc.status >= 500:
                raise
            answers.append({"response": {"status": _status(exc.status), "outcome":
                                         operation_outcome(exc.message, exc.issues, exc.code)}})
            continue
        results.append(result)
        answers.append(_response(result))
    return BundleAnswer({"resourceType": "Bundle", "type": "batch-response",
                         "entry": answers}, results)

