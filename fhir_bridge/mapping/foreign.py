"""Foreign FHIR (resources the bridge did not write, e.g. an EHR's), read without loss.

``parse_foreign`` reads a resource into an internal record through the reverse mapping and keeps
the resource as sent (``Kept.original``) beside the bridge's own rendering of that record at
that moment (``Kept.baseline``). ``merge_kept`` later lays the bridge's current rendering of the
record over the original: an element the practice changed since (current differs from the
baseline) is the bridge's, every other element is the sender's, as sent. So a resource read
from an EHR and written back is unchanged except where the practice changed it, and everything
the internal model cannot hold (identifiers such as an NPI, name prefixes, extra telecoms,
extensions, codings of other code systems) survives.

Each element of the original the baseline does not reproduce is a note: its FHIRPath and why
(``notes``), reported once per element by the caller (pull report, ``sync_notes``, /fhir
OperationOutcome). This module (the three-way merge itself in foreign_merge.py) is the one
place for it; store and sync only call it.

A record that renders to several resources (a panel with its items and total) keeps each one:
the resources the sender's main one points at where the record's children are (a panel's
``hasMember``) are read through ``resolve``, paired with the child the bridge renders of each
(``members.py``) and kept as sent under that child's id (``Foreign.members``); the main one's
references to them are moved to those ids. Every rendering merges each over its own original.

What is served and pushed: ``labelled`` adds the bridge's profile claims and security labels
(psychiatry sensitivity, restricted) to the merge of what the sender sent, so a served copy is
always labelled; ``as_sent_meta`` takes off again those the sender did not have, for a push
back to the sender.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import InvalidInput, Issue
from ..model import concept_by_name
from .document import load_record
from .engine import Mapper
from .fixups import fix_record
from .foreign_merge import MISSING, align, merge, other_choice
from .members import sent_members

#: meta elements the sending server owns: never stored, never merged back.
SERVER_META = ("versionId", "lastUpdated", "source")
#: meta elements the bridge claims on everything it serves (profiles, security labels).
LABELS = ("profile", "security")


@dataclass
class Kept:
    """The resource as sent and the bridge's rendering of it when it was read."""

    original: dict[str, Any]
    baseline: dict[str, Any]

    def as_json(self) -> dict:
        return {"original": self.original, "baseline": self.baseline}

    @classmethod
    def from_json(cls, data: dict) -> "Kept":
        return cls(data["original"], data["baseline"])


@dataclass
class Member:
    """A resource the record renders besides its main one (a panel's item or total), made of
    the sender's resource ``sent_id``: its original is kept under the bridge's id for it."""

    kept: Kept
    sent_as: str  # the reference of the sender's main resource to it
    sent_id: str | None
    version: str | None  # the sender's version of it, when read from a server
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return self.kept.original["resourceType"], self.kept.original["id"]


@dataclass
class Foreign:
    concept: str
    record: dict[str, Any]
    kept: Kept
    notes: list[tuple[str, str]] = field(default_factory=list)  # (FHIRPath, reason)
    members: list[Member] = field(default_factory=list)

    def every_kept(self) -> list[Kept]:
        """What is kept of each resource of the record: the main one first."""
        return [self.kept] + [m.kept for m in self.members]


def parse_foreign(mapper: Mapper, resource: dict[str, Any],
                  resolve: Callable[[str], dict | None] | None = None,
                  record_id: str | None = None) -> Foreign:
    """The record a foreign resource holds, what is kept as sent, and the notes.

    ``resource`` carries the local id and local references (references the caller could not
    make local stay external: the record leaves them out, the kept original holds them). The
    record id is ``record_id`` if given, else the one the mapping reads. InvalidInput names each
    field the record still lacks or refuses (activities by index)."""
    rtype = resource.get("resourceType", "Resource")
    try:
        back = mapper.to_internal(resource, resolve=resolve, external=True)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a shape no rule expects
        raise InvalidInput(f"the {rtype} cannot be read", [
            Issue(rtype, f"an element has a shape the mapping does not read ({exc!r})")]) \
            from None
    record = back.record
    if record_id is not None:
        record["id"] = record_id
    filled = fix_record(back.concept, record, resource)
    try:
        record = load_record(concept_by_name(back.concept), record)
    except InvalidInput as exc:  # what the mapping could not read is likely why: name it
        exc.issues = [*exc.issues, *(Issue(_element_of(resource, where, rtype), why,
                                           "not-supported") for where, why in back.unmapped)]
        raise
    rendered, *children = mapper.to_fhir(back.concept, record)
    original = _without_server_meta(resource)
    told = [(_element_of(original, where, rtype),
             why if "kept as" in why else f"{why}: kept as sent") for where, why in back.unmapped]
    members = []
    for sent_as, sent, child in sent_members(mapper.mapping_for(back.concept), original,
                                             children, resolve):  # moves references to them
        kept = {**_without_server_meta(sent), "id": child["id"]}
        members.append(Member(Kept(kept, child), sent_as, sent.get("id"),
                              (sent.get("meta") or {}).get("versionId"),
                              _once(_losses(kept, child, child["resourceType"]), [])))
    notes = _once(_losses(original, rendered, rtype), told + filled)
    return Foreign(back.concept, record, Kept(original, rendered), notes, members)


def merge_kept(fhir: dict[str, Any], kept: Kept) -> dict[str, Any]:
    """The bridge's current rendering ``fhir`` laid over the kept original (see module doc).
    The id is always the bridge's; the narrative is the sender's (or none): the bridge's
    generated one describes the record, not what the sender holds."""
    merged = merge(kept.original, kept.baseline, fhir)
    merged["id"] = fhir["id"]
    if "text" in kept.original:  # the sender's narrative; the bridge's is not added
        merged["text"] = copy.deepcopy(kept.original["text"])
    else:
        merged.pop("text", None)
    return merged


def labelled(merged: dict[str, Any], fhir: dict[str, Any]) -> dict[str, Any]:
    """A merged resource as served: the bridge's profile claims and security labels of its
    rendering ``fhir`` beside the sender's (the sender's first)."""
    ours = fhir.get("meta") or {}
    for key in LABELS:
        theirs = (merged.get("meta") or {}).get(key) or []
        added = [label for label in ours.get(key) or [] if label not in theirs]
        if added:
            merged.setdefault("meta", {})[key] = copy.deepcopy(theirs) + copy.deepcopy(added)
    return merged


def as_sent_meta(resource: dict[str, Any], kept: Kept) -> dict[str, Any]:
    """A merged resource going back to its sender: without the profile claims and security
    labels the merge added (those the bridge renders that the sender's original lacks)."""
    meta = resource.get("meta")
    if not meta:
        return resource
    sent = kept.original.get("meta") or {}
    ours = kept.baseline.get("meta") or {}
    for key in LABELS:
        if key in meta:
            kept_labels = [label for label in meta[key]
                           if label in (sent.get(key) or []) or label not in (ours.get(key) or [])]
            if kept_labels:
                meta[key] = kept_labels
            else:
                del meta[key]
    if not meta:
        del resource["meta"]
    return resource


# -- notes ------------------------------------------------------------------------------------

def _losses(o: Any, b: Any, path: str) -> list[tuple[str, str]]:
    """Each element of the original the baseline does not reproduce, as (FHIRPath, reason)."""
    if o == b:
        return []
    if isinstance(o, dict) and isinstance(b, dict) and not _is_coding(o):
        out = []
        for key, value in o.items():
            if key in ("meta", "id"):
                continue
            other = other_choice(key, b)
            if other:
                out.append((f"{path}.{key}", f"read into the record, which the bridge writes as "
                                             f"{other}: kept as sent"))
            else:
                out += _losses(value, b.get(key, MISSING), f"{path}.{key}")
        return out
    if isinstance(o, list) and isinstance(b, list):
        aligned = align(o, b)
        return [loss for i, item in enumerate(o)
                for loss in _losses(item, b[aligned[i]] if i in aligned else MISSING,
                                    f"{path}[{i}]")]
    if b is MISSING:
        return [(path, _reason(path, None))]
    return [(path, _reason(path, b, o))]


def _is_coding(value: dict) -> bool:
    """A Coding is noted whole: its system, code and display mean something only together."""
    return "system" in value and "code" in value and "value" not in value


def _once(found: list[tuple[str, str]], told: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One note per element: an element inside another noted one is not noted again; what the
    mapping said about an element (or one inside it) is the reason given."""
    def within(inner: str, outer: str) -> bool:
        return inner == outer or inner.startswith((outer + ".", outer + "["))

    notes: dict[str, str] = {}
    for path, why in sorted(found):
        if not any(within(path, kept) for kept in notes):
            notes[path] = why
    said: set[str] = set()  # notes of the mapping itself: joined, never replaced
    for path, why in told:
        outer = next((kept for kept in notes if within(path, kept) or within(kept, path)), None)
        if outer is None:
            notes[path] = why
        else:
            for inner in [k for k in notes if within(k, path) and k != path]:
                del notes[inner]
            where = outer if within(path, outer) else path
            notes[where] = f"{notes[where]}; {why}" if where in said and where in notes \
                and why not in notes[where] else why
        said.add(outer if outer is not None and within(path, outer) else path)
    return sorted(notes.items())


def _reason(path: str, bridge_value: Any, sent: Any = None) -> str:
    last = path.rsplit(".", 1)[-1]
    if path.split(".")[1:2] == ["text"]:
        return "the sender's narrative: kept as sent"
    elif last.startswith(("extension", "modifierExtension")):
        why = "an extension the bridge does not read"
    elif last == "reference":
        why = "a reference to the sender's own resource"
    elif ".identifier" in path:
        why = "an identifier the internal record has no place for"
    elif ".coding" in path and isinstance(bridge_value, dict) and isinstance(sent, dict) and \
            all(bridge_value.get(k) == sent.get(k) for k in ("system", "code")):
        why = "the sender's form of a code the bridge writes too (display, extensions)"
    elif ".coding" in path:
        why = "a code the bridge's terminology tables do not hold"
    else:
        why = "no place in the internal record"
    if bridge_value is not None and not isinstance(bridge_value, (dict, list)):
        why += f" (the bridge would write {bridge_value!r})"
    return f"{why}: kept as sent"


def _element_of(original: dict, where: str, rtype: str) -> str:
    """A reverse mapping's note names a reference or a rule path; the FHIRPath of the element
    of the original that holds it."""
    if where.startswith(rtype + "."):
        return where
    found = _find_reference(original, where, rtype)
    return found or f"{rtype}.{where}"


def _find_reference(node: Any, reference: str, path: str) -> str | None:
    if isinstance(node, dict):
        if node.get("reference") == reference:
            return path
        for key, value in node.items():
            found = _find_reference(value, reference, f"{path}.{key}")
            if found:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _find_reference(value, reference, f"{path}[{i}]")
            if found:
                return found
    return None


def _without_server_meta(resource: dict) -> dict:
    out = copy.deepcopy(resource)
    meta = {k: v for k, v in (out.get("meta") or {}).items() if k not in SERVER_META}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out
