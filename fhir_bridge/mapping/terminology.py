"""Terminology tables: the CSV files in ``mappings/terminology/``, looked up by key or by code.

Every row names its system, code, display, verification status and source. Only rows whose
status is ``verified`` or ``secondary`` are loaded; anything else is an error in the table.
Concepts that no table holds are written with a local code system and their text, never with a
guessed code (see ``local_coding``).
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from dataclasses import dataclass
from pathlib import Path

from ..errors import MappingError

SHIPPABLE_STATUSES = frozenset({"verified", "secondary"})


@dataclass(frozen=True)
class Code:
    key: str
    system: str
    code: str
    display: str
    status: str
    source: str

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


class Table:
    """One terminology table: key -> Code and (system, code) -> Code."""

    def __init__(self, name: str, codes: list[Code]):
        self.name = name
        self.by_key = {c.key: c for c in codes}
        self.by_code = {(c.system, c.code): c for c in codes}
        if len(self.by_key) != len(codes) or len(self.by_code) != len(codes):
            raise MappingError(f"terminology table {name} repeats a key or a code", "load")

    def get(self, key: str) -> Code | None:
        return self.by_key.get(key)

    def lookup(self, system: str | None, code: str | None) -> Code | None:
        return self.by_code.get((system or "", code or ""))

    def __iter__(self):
        return iter(self.by_key.values())


class Terminology:
    """All tables of a mappings directory, plus the local code system base."""

    def __init__(self, directory: Path, local_base: str):
        self.local_base = local_base.rstrip("/:")
        self.tables: dict[str, Table] = {}
        for path in sorted(directory.glob("*.csv")):
            self.tables[path.stem] = Table(path.stem, _read_table(path))

    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            raise MappingError(f"no terminology table {name!r}", "load") from None

    def local_system(self, name: str) -> str:
        return f"{self.local_base}:{name}" if self.local_base.startswith("urn:") \
            else f"{self.local_base}/{name}"

    def all_codes(self) -> list[Code]:
        return [code for table in self.tables.values() for code in table]


@lru_cache(maxsize=None)
def table_keys(name: str, directory: Path | None = None) -> frozenset[str]:
    """The keys of one table of ``mappings/terminology`` (for schemas that accept them)."""
    from .valuemaps import MAPPINGS_DIR

    path = (directory or MAPPINGS_DIR / "terminology") / f"{name}.csv"
    return frozenset(code.key for code in _read_table(path))


def local_code(text: str) -> str:
    """A stable local code for a free-text concept: lower case, words joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unspecified"


def _read_table(path: Path) -> list[Code]:
    codes = []
    with open(path, encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            status = (row.get("status") or "").strip()
            if status not in SHIPPABLE_STATUSES:
                raise MappingError(
                    f"{path.name}:{line}: status {status!r} may not ship (verified or secondary)",
                    "load")
            if not (row.get("source") or "").strip():
                raise MappingError(f"{path.name}:{line}: every code needs its source", "load")
            codes.append(Code(row["key"], row["system"], row["code"], row["display"],
                              status, row["source"]))
    return codes
