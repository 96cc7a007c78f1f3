"""Two versions of a FHIR resource side by side, element by element: every leaf by its path
(``dosageInstruction[0].doseAndRate[0].doseQuantity.value``), and whether the sides differ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

#: Elements that differ between any two copies and say nothing about the content.
IGNORED = ("meta", "text", "id")


@dataclass(frozen=True)
class Row:
    path: str
    local: str | None
    remote: str | None

    @property
    def differs(self) -> bool:
        return self.local != self.remote


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if not path and key in IGNORED:
                continue
            yield from leaves(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, f"{path}[{index}]")
    else:
        yield path, _text(node)


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def side_by_side(local: dict | None, remote: dict | None) -> list[Row]:
    """Rows in the local resource's order, then what only the remote has."""
    mine = dict(leaves(local or {}))
    theirs = dict(leaves(remote or {}))
    paths = list(mine) + [p for p in theirs if p not in mine]
    return [Row(p, mine.get(p), theirs.get(p)) for p in paths]
