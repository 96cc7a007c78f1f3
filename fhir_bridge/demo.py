"""The demo data: the fixture patients (``fixtures/internal/``) loaded into a store without
overwriting anything (``fhir-bridge demo``, ``fhir-bridge serve --demo``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import PROJECT_ROOT
from .fhir import jsonio

FIXTURES = PROJECT_ROOT / "fixtures" / "internal"


@dataclass
class DemoLoad:
    """What ``load_demo`` did: fixture records added per concept, and how many were stored
    already (left as they are)."""

    added: dict[str, int] = field(default_factory=dict)
    kept: int = 0

    def summary(self) -> str:
        line = f"demo data loaded: {sum(self.added.values())} records"
        if self.kept:
            line += (f"; {self.kept} were stored already and are left as they are (the demo "
                     "never overwrites)")
        return line


def load_demo(app, progress: Callable[[int, int], None] | None = None) -> DemoLoad:
    """Load the fixture records that the app's store does not hold yet; a record that exists
    is left as it is, whatever happened to it since (a dose change, an edit), so loading the
    demo again never overwrites anything. What saving the new records changes besides (e.g.
    DetectedIssues, monitoring items) is not counted. ``progress`` gets (documents loaded,
    records added) after each fixture document."""
    from .importing import add_missing

    bridge = app.extensions["fhir_bridge"]
    result = DemoLoad()
    added: set[tuple[str, str]] = set()
    named: set[tuple[str, str]] = set()  # fixtures share records (practitioners): count once
    for number, path in enumerate(sorted(FIXTURES.glob("*.json")), start=1):
        new, pairs = add_missing(bridge.store, jsonio.loads(path.read_bytes()))
        added.update((c.name, r["id"]) for c, r in new)
        named.update((c.name, r["id"]) for c, r in pairs)
        for concept, _ in new:
            result.added[concept.name] = result.added.get(concept.name, 0) + 1
        if progress is not None:
            progress(number, sum(result.added.values()))
    result.kept = len(named - added)
    return result
