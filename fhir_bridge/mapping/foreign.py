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
OperationOutcome). This module is the one place for the merge; store and sync only call it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import InvalidInput, Issue
from ..model import concept_by_name
from .document import load_record
from .engine import Mapper
from .fixups import fix_record

_MISSING: Any = object()
#: meta elements the sending server owns: never stored, never merged back.
SERVER_META = ("versionId", "lastUpdated", "source")


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
class Foreign:
    concept: str
    record: dict[str, Any]
    kept: Kept
    notes: list[tuple[str, str]] = field(default_factory=list)  # (FHIRPath, reason)


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
    rendered = mapper.to_fhir(back.concept, record)[0]
    original = _without_server_meta(resource)
    told = [(_element_of(original, where, rtype),
             why if "kept as" in why else f"{why}: kept as sent") for where, why in back.unmapped]
    notes = _once(_losses(original, rendered, rtype), told + filled)
    return Foreign(back.concept, record, Kept(original, rendered), notes)


def merge_kept(fhir: dict[str, Any], kept: Kept) -> dict[str, Any]:
    """The bridge's current rendering ``fhir`` laid over the kept original (see module doc).
    The id is always the bridge's; the narrative is the sender's (or none): the bridge's
    generated one describes the record, not what the sender holds."""
    merged = _merge(kept.original, kept.baseline, fhir)
    merged["id"] = fhir["id"]
    if "text" in kept.original:  # the sender's narrative; the bridge's is not added
        merged["text"] = copy.deepcopy(kept.original["text"])
    else:
        merged.pop("text", None)
    return merged


# -- merging ----------------------------------------------------------------------------------

def _merge(o: Any, b: Any, n: Any) -> Any:
    if b == n:
        return o if o is _MISSING else copy.deepcopy(o)
    if isinstance(o, dict) and isinstance(b, dict) and isinstance(n, dict) and \
            not _atomic(b) and not _atomic(n):
        out = {}
        for key in list(o) + [k for k in n if k not in o]:
            value = _merge(o.get(key, _MISSING), b.get(key, _MISSING), n.get(key, _MISSING))
            if value is not _MISSING:
                out[key] = value
        return _one_choice(out, o, n)
    if isinstance(o, list) and isinstance(b, list) and isinstance(n, list):
        return _merge_list(o, b, n)
    return n if n is _MISSING else copy.deepcopy(n)


def _one_choice(out: dict, o: dict, n: dict) -> dict:
    """One type of a choice element (value[x], effective[x], ...): a type the bridge wrote
    anew replaces the sender's other type (valueQuantity for the sent valueInteger)."""
    for key in [k for k in n if k not in o]:
        found = _CHOICE.match(key)
        if found:
            for other in [k for k in o if k != key and k.startswith(found.group(1))
                          and _CHOICE.match(k) and k not in n]:
                out.pop(other, None)
    return out


_CHOICE = re.compile(r"^(value|effective|onset|abatement|medication|occurrence|scheduled|"
                     r"deceased|multipleBirth|reported|asNeeded|performed|born|timing)[A-Z]")


def _other_choice(key: str, b: dict) -> str | None:
    found = _CHOICE.match(key)
    if not found or key in b:
        return None
    return next((k for k in b if k.startswith(found.group(1)) and _CHOICE.match(k)), None)


def _atomic(value: dict) -> bool:
    """A CodeableConcept or Reference the practice changed is the bridge's whole: the sender's
    other codings (or display) described what it was before."""
    return "coding" in value or "reference" in value


def _merge_list(o: list, b: list, n: list) -> list:
    b_to_o = {j: i for i, j in _align(o, b).items()}
    n_to_b = _pair_changed(b, n)
    used_b = set(n_to_b.values())
    merged_at: dict[int, Any] = {}
    added = []
    for k, item in enumerate(n):
        j = n_to_b.get(k)
        i = b_to_o.get(j) if j is not None else None
        if i is None:
            if j is None or b[j] != item:
                added.append(copy.deepcopy(item))
        else:
            merged_at[i] = _merge(o[i], b[j], item)
    out = []
    for i, item in enumerate(o):
        j = next((jj for jj, ii in b_to_o.items() if ii == i), None)
        if j is None:
            out.append(copy.deepcopy(item))  # the bridge has no place for it: kept
        elif i in merged_at:
            out.append(merged_at[i])
        elif j not in used_b:
            continue  # the practice removed it
    return out + added


def _pair_changed(b: list, n: list) -> dict[int, int]:
    """Which baseline item each current item is: equal items first, then by position."""
    pairs: dict[int, int] = {}
    free = set(range(len(b)))
    for k, item in enumerate(n):
        j = next((j for j in sorted(free) if b[j] == item), None)
        if j is not None:
            pairs[k] = j
            free.discard(j)
    if len(b) == len(n):
        for k in range(len(n)):
            if k not in pairs and k in free:
                pairs[k] = k
                free.discard(k)
    return pairs


def _align(o: list, b: list) -> dict[int, int]:
    """original index -> baseline index, by the most leaves in common (position breaks ties);
    an item with nothing in common with any other is not aligned."""
    leaves_o = [_leaves(x) for x in o]
    leaves_b = [_leaves(x) for x in b]
    scored = sorted(((len(lo & lb), -abs(i - j), i, j) for i, lo in enumerate(leaves_o)
                     for j, lb in enumerate(leaves_b) if lo & lb), reverse=True)
    out: dict[int, int] = {}
    taken: set[int] = set()
    for _, _, i, j in scored:
        if i not in out and j not in taken:
            out[i] = j
            taken.add(j)
    if len(o) == len(b):  # lists of the same length: what is left pairs up by position
        for i in range(len(o)):
            if i not in out and i not in taken:
                out[i] = i
                taken.add(i)
    return out


def _leaves(value: Any, path: tuple = ()) -> set:
    if isinstance(value, dict):
        return {leaf for k, v in value.items() for leaf in _leaves(v, path + (k,))}
    if isinstance(value, list):
        return {leaf for i, v in enumerate(value) for leaf in _leaves(v, path + (i,))}
    return {(path, str(value))}


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
            other = _other_choice(key, b)
            if other:
                out.append((f"{path}.{key}", f"read into the record, which the bridge writes as "
                                             f"{other}: kept as sent"))
            else:
                out += _losses(value, b.get(key, _MISSING), f"{path}.{key}")
        return out
    if isinstance(o, list) and isinstance(b, list):
        aligned = _align(o, b)
        return [loss for i, item in enumerate(o)
                for loss in _losses(item, b[aligned[i]] if i in aligned else _MISSING,
                                    f"{path}[{i}]")]
    if b is _MISSING:
        return [(path, _reason(path, None))]
    return [(path, _reason(path, b))]


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


def _reason(path: str, bridge_value: Any) -> str:
    last = path.rsplit(".", 1)[-1]
    if path.split(".")[1:2] == ["text"]:
        return "the sender's narrative: kept as sent"
    elif last.startswith(("extension", "modifierExtension")):
        why = "an extension the bridge does not read"
    elif last == "reference":
        why = "a reference to the sender's own resource"
    elif ".identifier" in path:
        why = "an identifier the internal record has no place for"
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
