"""A resource against a StructureDefinition's snapshot: cardinality (min and max) of every
element and slice, fixed and pattern values, and required bindings, each issue located by a
FHIRPath-ish path (``Observation.component[0].code``).

Slices are told apart by their ``value`` / ``pattern`` discriminators (an extension's url, a
component's code); slices by type or profile are not checked. Invariants (FHIRPath
constraints) are not evaluated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .terminology import ValueSets

PRIMITIVES = {"boolean", "integer", "string", "decimal", "uri", "url", "canonical", "base64Binary",
              "instant", "date", "dateTime", "time", "code", "oid", "id", "markdown",
              "unsignedInt", "positiveInt", "uuid", "xhtml"}


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning | information
    path: str
    message: str


class Snapshot:
    """The elements of one StructureDefinition's snapshot, by id."""

    def __init__(self, sd: dict):
        self.url = sd["url"]
        self.elements = sd.get("snapshot", {}).get("element") or []
        self.by_id = {e["id"]: e for e in self.elements}
        self._children: dict[str, list[dict]] = {}
        self._slices: dict[str, list[dict]] = {}
        for e in self.elements:
            head, _, last = e["id"].rpartition(".")
            if ":" in last:
                base, _, _ = last.partition(":")
                self._slices.setdefault(f"{head}.{base}" if head else base, []).append(e)
            elif head:
                self._children.setdefault(head, []).append(e)
        self.root = self.elements[0] if self.elements else None

    def children(self, element_id: str) -> list[dict]:
        return self._children.get(element_id, [])

    def slices(self, element_id: str) -> list[dict]:
        return [s for s in self._slices.get(element_id, []) if "." not in
                s["id"][len(element_id):]]


def _name(element: dict) -> str:
    return element["path"].rsplit(".", 1)[-1]


def _values(node: dict, element: dict) -> list[tuple[str, Any]]:
    """(json key, value) of every value of one element in a node (a choice: any type)."""
    name = _name(element)
    if name.endswith("[x]"):
        stem = name[:-3]
        types = [t["code"] for t in element.get("type") or []]
        keys = [stem + t[0].upper() + t[1:] for t in types] or \
            [k for k in node if k.startswith(stem) and k[len(stem):][:1].isupper()]
    else:
        keys = [name]
    out = []
    for key in keys:
        value = node.get(key, node.get("_" + key))
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            out.append((key, item))
    return out


def matches_pattern(value: Any, pattern: Any) -> bool:
    """FHIR pattern[x]: every element of the pattern is in the value (arrays: each pattern
    item matches some value item)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches_pattern(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(matches_pattern(i, p) for i in items) for p in pattern)
    return value == pattern


def _fixed(element: dict) -> tuple[str, Any] | None:
    for key, value in element.items():
        if key.startswith("fixed") or key.startswith("pattern"):
            return key, value
    return None


class ProfileChecker:
    def __init__(self, snapshot: Snapshot, value_sets: ValueSets):
        self.snap = snapshot
        self.vs = value_sets
        self.found: list[Finding] = []

    def check(self, resource: dict) -> list[Finding]:
        root = self.snap.root
        if root is None:
            return [Finding("warning", resource.get("resourceType", ""),
                            f"profile {self.snap.url} has no snapshot: not checked")]
        self._node(resource, root["id"], root["path"])
        return self.found

    def _node(self, node: dict, element_id: str, where: str) -> None:
        for child in self.snap.children(element_id):
            values = _values(node, child)
            self._cardinality(child, len(values), f"{where}.{_name(child).replace('[x]', '')}")
            for index, (key, value) in enumerate(values):
                path = f"{where}.{key}" + (f"[{index}]" if child["max"] != "1" else "")
                self._value(child, value, path)
            slices = self.snap.slices(child["id"])
            if slices and child.get("slicing"):
                self._slices(child, slices, values, where)

    def _cardinality(self, element: dict, count: int, path: str) -> None:
        least, most = element.get("min", 0), element.get("max", "*")
        if count < least:
            self.found.append(Finding("error", path, f"{least} required by {self._where(element)}"
                                      f", {count} found"))
        if most != "*" and count > int(most):
            self.found.append(Finding("error", path, f"at most {most} allowed by "
                                      f"{self._where(element)}, {count} found"))

    def _where(self, element: dict) -> str:
        return f"{self.snap.url.rsplit('/', 1)[-1]} ({element['id']})"

    def _value(self, element: dict, value: Any, path: str) -> None:
        fixed = _fixed(element)
        if fixed is not None:
            key, expected = fixed
            ok = value == expected if key.startswith("fixed") else matches_pattern(value, expected)
            if not ok:
                self.found.append(Finding("error", path, f"must be {_short(expected)} "
                                          f"({key} of {self._where(element)})"))
        binding = element.get("binding") or {}
        if binding.get("strength") == "required" and binding.get("valueSet"):
            self._binding(binding["valueSet"], element, value, path)
        if isinstance(value, dict) and "contentReference" not in element:
            self._node(value, element["id"], path)

    def _binding(self, url: str, element: dict, value: Any, path: str) -> None:
        codings = list(_codings(value))
        if codings is None or not codings:
            if isinstance(value, dict) and "coding" not in value and "text" in value:
                self.found.append(Finding("error", path, f"a code from {url} is required "
                                          "(required binding), only text found"))
            return
        results = [self.vs.contains(url, system, code) for system, code in codings]
        if True in results:
            return
        if None in results:
            if self.vs.known(url) or not all(isinstance(v, str) for v in [value]):
                self.found.append(Finding("warning", path, f"cannot tell offline whether "
                                          f"{_show(codings)} is in {url}"))
            return
        self.found.append(Finding("error", path, f"{_show(codings)} is not in the value set "
                                  f"{url} (required binding)"))

    def _slices(self, element: dict, slices: list[dict], values: list, where: str) -> None:
        discriminators = element["slicing"].get("discriminator") or []
        if not discriminators or any(d.get("type") not in ("value", "pattern")
                                     for d in discriminators):
            return
        for sl in slices:
            wanted = [self._discriminator_value(sl, d["path"]) for d in discriminators]
            if any(w is None for w in wanted):
                continue
            matching = [(k, v) for k, v in values
                        if all(any(matches_pattern(x, w) for x in _at(v, d["path"]))
                               for d, w in zip(discriminators, wanted))]
            name = f"{where}.{_name(element).replace('[x]', '')}:{sl['sliceName']}"
            self._cardinality(sl, len(matching), name)
            for index, (_, value) in enumerate(matching):
                if isinstance(value, dict):
                    self._node(value, sl["id"], f"{name}[{index}]")

    def _discriminator_value(self, sl: dict, path: str) -> Any:
        if path == "$this":
            found = _fixed(sl)
            return found[1] if found else None
        target = self.snap.by_id.get(f"{sl['id']}.{path}")
        if target is None:
            return None
        found = _fixed(target)
        return found[1] if found else None


def _at(value: Any, path: str) -> list[Any]:
    """The values at a discriminator path (through arrays)."""
    found = [value]
    if path == "$this":
        return found
    for step in path.split("."):
        nxt = []
        for item in found:
            got = item.get(step) if isinstance(item, dict) else None
            nxt += got if isinstance(got, list) else [] if got is None else [got]
        found = nxt
    return found


def _codings(value: Any) -> Iterator[tuple[str | None, str]]:
    if isinstance(value, str):
        yield None, value
    elif isinstance(value, dict):
        if "coding" in value:
            for c in value["coding"] or []:
                if isinstance(c, dict) and c.get("code"):
                    yield c.get("system"), c["code"]
        elif value.get("code") is not None:
            yield value.get("system"), value["code"]


def _show(codings: list[tuple[str | None, str]]) -> str:
    """The codings by their systems only: the codes themselves are what the sender wrote and
    may hold anything, a name included (the output must never repeat one)."""
    systems = sorted({s or "(no system)" for s, _ in codings})
    return f"the code ({', '.join(systems)})"


def _short(value: Any) -> str:
    import json

    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 160 else text[:157] + "..."
