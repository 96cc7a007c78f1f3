"""Is a code in a value set? Answered from the ValueSets and CodeSystems of the loaded
packages (packages.py), offline: True, False, or None when it cannot be told here (the value
set, or a code system it draws on, is not available: VSAC, LOINC, SNOMED CT, RxNorm, ...)."""

from __future__ import annotations

from typing import Iterator

from .packages import Definitions

HIERARCHY_OPS = ("is-a", "descendent-of")


class ValueSets:
    def __init__(self, defs: Definitions):
        self.defs = defs
        self._cache: dict[tuple, bool | None] = {}
        self._codes: dict[str, dict[str, dict] | None] = {}

    def known(self, url: str) -> bool:
        return self.defs.get(url, "ValueSet") is not None

    def contains(self, url: str, system: str | None, code: str | None,
                 _seen: frozenset = frozenset()) -> bool | None:
        if url in _seen:
            return None  # a value set that includes itself
        key = (url, system, code)
        if key not in self._cache:
            self._cache[key] = self._contains(url, system, code, _seen | {url})
        return self._cache[key]

    def _contains(self, url, system, code, seen) -> bool | None:
        vs = self.defs.get(url, "ValueSet")
        if vs is None or code is None:
            return None
        compose = vs.get("compose")
        if compose is None:
            contains = list(_expansion(vs.get("expansion", {}).get("contains") or []))
            if not contains:
                return None
            return any(c.get("code") == code and (system is None or c.get("system") == system)
                       for c in contains)
        for exclude in compose.get("exclude") or []:
            if self._include(exclude, system, code, seen) is True:
                return False
        results = [self._include(inc, system, code, seen) for inc in compose.get("include") or []]
        if True in results:
            return True
        return None if None in results else False

    def _include(self, inc: dict, system, code, seen) -> bool | None:
        parts: list[bool | None] = [self.contains(ref, system, code, seen)
                                    for ref in inc.get("valueSet") or []]
        if inc.get("system"):
            if system is not None and inc["system"] != system:
                return False
            parts.append(self._in_system(inc, code))
        if False in parts:
            return False
        return None if None in parts or not parts else True

    def _in_system(self, inc: dict, code: str) -> bool | None:
        if inc.get("concept"):
            return any(c.get("code") == code for c in inc["concept"])
        codes = self.system_codes(inc["system"])
        if codes is None:
            return None
        if code not in codes:
            return False
        for flt in inc.get("filter") or []:
            if flt.get("property") != "concept" or flt.get("op") not in HIERARCHY_OPS + ("=",):
                return None
            if not self._under(codes, code, flt["value"], flt["op"]):
                return False
        return True

    def system_codes(self, url: str) -> dict[str, dict] | None:
        """code -> {display, parent} of a complete code system, None when it is not here."""
        if url not in self._codes:
            cs = self.defs.get(url, "CodeSystem")
            if cs is None or cs.get("content") not in ("complete", None):
                self._codes[url] = None
            else:
                flat: dict[str, dict] = {}
                _flatten(cs.get("concept") or [], None, flat)
                self._codes[url] = flat
        return self._codes[url]

    def display_ok(self, system: str, code: str, display: str) -> bool | None:
        codes = self.system_codes(system)
        if codes is None or code not in codes:
            return None
        concept = codes[code]
        return display in concept["displays"] or not concept["displays"]

    @staticmethod
    def _under(codes: dict, code: str, ancestor: str, op: str) -> bool:
        if op == "=":
            return code == ancestor
        current = code if op == "is-a" else codes[code]["parent"]
        while current is not None:
            if current == ancestor:
                return True
            current = codes.get(current, {}).get("parent")
        return False


def _flatten(concepts: list[dict], parent: str | None, out: dict) -> None:
    for c in concepts:
        displays = [c["display"]] if c.get("display") else []
        displays += [d["value"] for d in c.get("designation") or [] if d.get("value")]
        out[c["code"]] = {"parent": parent, "displays": displays}
        _flatten(c.get("concept") or [], c["code"], out)


def _expansion(contains: list[dict]) -> Iterator[dict]:
    for c in contains:
        yield c
        yield from _expansion(c.get("contains") or [])
