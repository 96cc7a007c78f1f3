"""Building push transactions: outbox entries, the bundle that carries them, and reading the
server's answer.

- a resource the target has not confirmed yet goes to the id the bridge derived for it
  (``PUT Type/<client id>``) when the target takes client ids (:mod:`.first_writes`), else is a
  conditional update by the bridge's identifier (``PUT Type?identifier=system|value``); either
  way a retry after a lost answer updates instead of duplicating;
- a resource the target holds is ``PUT Type/<remote id>`` with ``If-Match`` on the version we
  last saw: a newer remote edit makes it fail (409/412) and becomes a conflict record, never an
  overwrite;
- references point at the entry's ``urn:uuid`` when the target is in the same bundle, at the
  remote id when known, at ``Type/<client id>`` for a resource of a bundle still in flight that
  goes there (``placed``), else at a conditional reference ``Type?identifier=...``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from .. import audit
from ..errors import RemoteUnavailable
from ..fhir import jsonio, references
from ..mapping.foreign import as_sent_meta
from ..store import foreign
from ..store.batch_reads import resource_rows
from . import remote_map
from .targets import BRIDGE_TAG

_LOCATION = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([^/]+))?")
Key = tuple[str, str]


@dataclass(eq=False)
class Entry:
    resource_type: str
    local_id: str
    seqs: list[int]
    deleted: bool
    content: dict | None
    content_hash: str | None
    remote: remote_map.Remote | None
    identity: tuple[str, str] | None  # the bridge's identifier (system, value)
    raw: str  # the stored JSON, parsed again for a copy to rewrite
    deps: frozenset[Key] = frozenset()  # the stored resources it points at (none if deleted)
    client_id: str | None = None  # a first write goes to PUT Type/<client_id> (first_writes)

    @property
    def key(self) -> Key:
        return self.resource_type, self.local_id


def referenced(content: dict | None) -> set[Key]:
    """The local resources a resource's references name (relative references only)."""
    if not content:
        return set()
    return {key for key in map(references.split, references.references(content)) if key}


def build(conn: sa.Connection, target: str, entries: list[Entry],
          placed: dict[Key, str] | None = None) -> dict:
    """The transaction bundle for these entries (see the module docstring). ``placed``: the
    client ids of unconfirmed resources in bundles sent before this one."""
    placed = placed or {}
    in_bundle = {e.key: e for e in entries if not e.deleted}
    needed: set[Key] = set()
    for e in entries:
        if not e.deleted:
            needed |= referenced(e.content)
    needed -= set(in_bundle)
    known = remote_map.load(conn, target, needed)
    identities = {key: identity(jsonio.loads(row.content))
                  for key, row in resource_rows(conn, needed - set(known) - set(placed)).items()}
    theirs = foreign.stored(conn, set(in_bundle))  # an EHR's resources: not tagged as ours
    out = []
    for e in entries:
        full_url = f"urn:uuid:{entry_uuid(target, e.key)}"
        if e.deleted:
            # By remote id when known; else by identifier, in case an earlier push landed
            # and its answer was lost.
            url = f"{e.resource_type}/{e.remote.remote_id}" if e.remote else \
                f"{e.resource_type}?identifier={e.identity[0]}|{e.identity[1]}"
            out.append({"request": {"method": "DELETE", "url": url}})
            continue
        resource = jsonio.loads(e.raw)  # a fresh copy: cheaper than deepcopy
        resource.pop("id")
        if e.remote is not None:
            resource["id"] = e.remote.remote_id
        elif e.client_id is not None:
            resource["id"] = e.client_id
        if e.key not in theirs:
            resource.setdefault("meta", {})["tag"] = [BRIDGE_TAG]
        else:  # back with only the labels and profile claims it was sent with
            as_sent_meta(resource, theirs[e.key])

        def rewrite_one(ref: str) -> str:
            key = references.split(ref)
            if key in in_bundle:
                return f"urn:uuid:{entry_uuid(target, key)}"
            if key in known:
                return f"{key[0]}/{known[key].remote_id}"
            if key in placed:
                return f"{key[0]}/{placed[key]}"
            if key in identities and identities[key]:
                system, value = identities[key]
                return f"{key[0]}?identifier={system}|{value}"
            return ref

        references.rewrite(resource, rewrite_one)
        if e.remote is not None:
            request = {"method": "PUT", "url": f"{e.resource_type}/{e.remote.remote_id}"}
            if e.remote.remote_version:
                request["ifMatch"] = f'W/"{e.remote.remote_version}"'
        elif e.client_id is not None:
            request = {"method": "PUT", "url": f"{e.resource_type}/{e.client_id}"}
        else:
            system, value = e.identity
            request = {"method": "PUT",
                       "url": f"{e.resource_type}?identifier={system}|{value}"}
        out.append({"fullUrl": full_url, "resource": resource, "request": request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": out}


def identity(resource: dict) -> tuple[str, str] | None:
    """The bridge's own identifier: the mapping engine always writes it first."""
    identifiers = resource.get("identifier") or []
    if isinstance(identifiers, dict):  # QuestionnaireResponse: one Identifier
        identifiers = [identifiers]
    return (identifiers[0]["system"], identifiers[0]["value"]) if identifiers else None


def audit_entries(target: str, worker: str, entries: list[Entry],
                  stored: dict) -> list[audit.AuditEntry]:
    """One AuditEvent per patient whose resources went to the target (a disclosure)."""
    by_patient: dict[str | None, list[Entry]] = {}
    for entry in entries:
        row = stored.get(entry.key)
        by_patient.setdefault(row.patient_id if row is not None else None, []).append(entry)
    return [audit.AuditEntry(
        action="R", subtype="sync-push", kind="transmit", agent=f"{worker} -> {target}",
        patient_id=patient_id,
        entities=[f"{e.resource_type}/{e.local_id}" for e in group])
        for patient_id, group in by_patient.items()]


def entry_uuid(target: str, key: Key) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"fhir-bridge:{target}/{key[0]}/{key[1]}")


def location(response: dict, entry: Entry) -> tuple[str, str | None]:
    """(remote id, version) from one entry of the server's answer."""
    match = _LOCATION.search(response.get("location") or "")
    if match and match.group(1) == entry.resource_type:
        version = match.group(3)
        if version is None and response.get("etag"):
            version = response["etag"].removeprefix("W/").strip('"')
        return match.group(2), version
    if entry.remote is not None:
        return entry.remote.remote_id, None
    raise RemoteUnavailable(f"no location for {entry.resource_type}/{entry.local_id}")
