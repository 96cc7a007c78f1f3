"""Every code the bridge can write in one of its local code systems, generated from the data
that decides it: the mapping files (constant concepts, the closed word lists of the internal
model that a rule turns into local codes, component names), the catalogs (instruments.yaml,
measurements.yaml, medication-safety.yaml, drug-classes.yaml) and the terminology tables
(a key a table holds gets its verified code, not a local one).

The codes and displays come from the mapping's own transforms, called on every value the
data allows, so they are what the mapping writes. A concept given as free text (a drug or a
side effect no table holds) gets a local code made from its text: such a system is *open*
(``content: fragment``), listing the codes the catalogs know.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml
from marshmallow import fields as mfields
from marshmallow import validate as mvalidate

from ..errors import BridgeError
from ..mapping.catalogs import instruments, measurement_kinds
from ..mapping.context import Context
from ..mapping.engine import Mapper
from ..mapping import transforms as _registered  # noqa: F401 - registers every transform
from ..mapping.transforms.codes import coded
from ..mapping.transforms.registry import get_transform
from ..mapping.valuemaps import MAPPINGS_DIR
from ..mapping.terminology import local_code

SAMPLE_DATE = "2025-01-01"


@dataclass
class LocalSystem:
    """One local code system: code -> displays (the first is the CodeSystem's display, the
    others designations); ``open`` when free text can add codes."""

    name: str
    url: str
    codes: dict[str, list[str]] = field(default_factory=dict)
    open: bool = False

    def add(self, code: str, display: str | None) -> None:
        shown = self.codes.setdefault(code, [])
        if display and display not in shown:
            shown.append(display)


class _Collector:
    def __init__(self, mapper: Mapper):
        self.mapper = mapper
        self.ctx = Context(mapper)
        prefix = mapper.terminology.local_system("")
        self.prefix = prefix
        self.systems: dict[str, LocalSystem] = {}

    def system(self, name: str) -> LocalSystem:
        url = self.mapper.terminology.local_system(name)
        return self.systems.setdefault(url, LocalSystem(name, url))

    def collect(self, node: Any) -> None:
        """Every local coding in a transform's output."""
        if isinstance(node, dict):
            url = node.get("system")
            if isinstance(url, str) and url.startswith(self.prefix) and "code" in node:
                self.system(url[len(self.prefix):]).add(node["code"], node.get("display"))
            for value in node.values():
                self.collect(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                self.collect(value)

    def forward(self, name: str, value: Any, args: dict | None = None) -> None:
        self.collect(get_transform(name).forward(value, args or {}, self.ctx))


FREE_TEXT = "sample text"  # a free-text sample: a local code made from it marks an open system
MAX_SAMPLES = 400


def _field(schema: Any, path: Iterable[str]) -> Any:
    """The marshmallow field at a dotted internal path (through nested lists)."""
    current: Any = schema
    found = None
    for step in path:
        if current is None:
            return None
        found = current().fields.get(step)
        if found is None:
            return None
        inner = found.inner if isinstance(found, mfields.List) else found
        current = inner.nested if isinstance(inner, mfields.Nested) else None
    return found


def _choices(schema_field: Any) -> list[str] | None:
    for check in getattr(schema_field, "validators", None) or []:
        if isinstance(check, mvalidate.OneOf):
            return list(check.choices)
    return None


def _samples(schema_field: Any, depth: int = 0) -> list[Any]:
    """The values a field may hold (every choice of a closed list) or one sample of its type."""
    choices = _choices(schema_field)
    if choices is not None:
        return choices
    if schema_field is None or depth > 3:
        return [None]
    if isinstance(schema_field, mfields.List):
        return [[item] for item in _samples(schema_field.inner, depth + 1)[:1]]
    if isinstance(schema_field, mfields.Nested):
        nested = schema_field.nested
        return [{name: _samples(f, depth + 1)[0] for name, f in nested().fields.items()}]
    if isinstance(schema_field, mfields.Date):
        return [SAMPLE_DATE]
    if isinstance(schema_field, mfields.DateTime):
        return [SAMPLE_DATE + "T00:00:00+00:00"]
    if isinstance(schema_field, mfields.Integer):
        return [30]
    if isinstance(schema_field, mfields.Float):
        return [50.0]
    if isinstance(schema_field, mfields.Boolean):
        return [True]
    return [FREE_TEXT]


def _value_lists(schemas: list[tuple[str, Any]], internal: list[str]) -> list[list[Any]]:
    """Sample values for each internal field of a rule (``_parent.x``: the parent's field)."""
    out = []
    for name in internal:
        steps = name.split(".")
        scope = next((schema for prefix, schema in schemas if steps[0] == prefix), None)
        if scope is not None:
            steps = steps[1:]
        else:
            scope = schemas[0][1]
        out.append(_samples(_field(scope, steps)))
    return out


def _combinations(values: list[list[Any]]) -> Iterable[tuple]:
    """Every value of each field once, the other fields at their first sample: codes depend
    on one field at a time (a full product would repeat them)."""
    seen = 0
    yield tuple(v[0] for v in values)
    for index, options in enumerate(values):
        for option in options[1:]:
            row = [v[0] for v in values]
            row[index] = option
            seen += 1
            if seen > MAX_SAMPLES:
                return
            yield tuple(row)


def _walk_rules(c: _Collector, rules: list[dict], schemas: list[tuple[str, Any]]) -> None:
    """Call each forward rule's transform on the values its internal fields may hold (their
    closed lists from the internal model) and keep the local codings it writes."""
    for rule in rules:
        if rule.get("direction") == "reverse":
            continue
        internal = rule.get("internal")
        names = list(internal) if isinstance(internal, list) else [internal] if internal else []
        if "each" in rule:
            nested = _field(schemas[0][1], names[0].split(".")) if names else None
            inner = getattr(getattr(nested, "inner", None), "nested", None)
            _walk_rules(c, rule["each"], [("", inner), *schemas])
            continue
        term = rule.get("term")
        if term is not None:
            c.collect(coded(c.ctx, term.get("tables", []), term["key"], term["local"],
                            display=term.get("display")))
            continue
        if "value" in rule:
            c.collect(rule["value"])
        if not rule.get("transform") or not names or schemas[0][1] is None:
            continue
        for row in _combinations(_value_lists(schemas, names)):
            value = row if len(names) > 1 else row[0]
            try:
                c.forward(rule["transform"], value, rule.get("args") or {})
            except (BridgeError, KeyError, TypeError, ValueError, AttributeError, IndexError):
                continue  # needs the whole record (catalog transforms: see _catalogs)


def _scopes(raw: dict, mappings: dict[str, dict], schemas: dict[str, Any]) -> list:
    """[("", the record's schema), ("_parent", its parent's)] for a mapping; a child
    mapping's record is an item of a list field of its parent."""
    own = schemas.get(raw["concept"])
    for parent in mappings.values():
        for child in parent.get("children") or []:
            if child.get("mapping") == raw["name"]:
                parent_schema = schemas.get(parent["concept"])
                listed = _field(parent_schema, [child["internal"]])
                inner = getattr(getattr(listed, "inner", None), "nested", None)
                return [("", own or inner or parent_schema), ("_parent", parent_schema)]
    return [("", own)]


def _catalogs(c: _Collector, schemas: dict[str, Any]) -> None:
    """The transforms whose codes come from the catalogs rather than from a rule's field."""
    from ..clinical import scoring
    from ..clinical.safety import rules as safety_rules

    for kind in measurement_kinds().values():
        for comp in kind.components:
            c.collect(coded(c.ctx, ["measurements"], comp["code"], "measurement-component"))
    for key, instrument in instruments().items():
        for item in instrument.items:
            c.forward("instrument_item", (key, item.number))
        _scoring(c, key, instrument, scoring.read)
    adherence = schemas["adherence"]
    for source in _samples(_field(adherence, ["source"])):
        for finding in _samples(_field(adherence, ["finding"])):
            c.forward("adherence_extension", {"source": source, "finding": finding,
                                              "date_asserted": SAMPLE_DATE})
    config = safety_rules()
    _safety(c, config)
    _drugs(c, config["max_daily_dose"])


def _scoring(c: _Collector, key: str, instrument: Any, read: Any) -> None:
    rules = instrument.scoring
    if rules is None:
        return
    for band in rules.bands:
        spec = band.get("interpretation", "")
        if c.mapper.terminology.table("interpretations").get(spec) is None:
            c.system("score-band").add(f"{key}.{band['band']}", band["text"])
    if rules.risk:
        none = read(instrument, {}, None)
        c.system("suicide-risk-level").add(none.risk, none.risk_text)
        for rule in rules.risk:
            c.system("suicide-risk-level").add(rule["level"], rule["text"])
    for alert in rules.alerts:
        c.system("clinical-alert").add(alert["alert"], alert["text"])


def _safety(c: _Collector, config: dict) -> None:
    for drug in config["max_daily_dose"]:
        limit = config["max_daily_dose"][drug]["mg"]
        shown = f"{limit:g}"
        c.forward("safety_rule_code", (f"max-dose.{drug}",
                                       f"{drug} above the maximum daily dose of {shown} mg"))
    for rule in config["duplicate_therapy"]:
        c.forward("safety_rule_code", (f"duplicate.{rule['class']}", rule["text"]))
    for rule in config["interactions"]:
        c.forward("safety_rule_code", (f"interaction.{rule['id']}", rule["text"]))


def _drugs(c: _Collector, dosed: Iterable[str]) -> None:
    """Drugs the catalogs name (drug-classes.yaml, the maximum doses of
    medication-safety.yaml) that RxNorm's table does not hold."""
    with open(MAPPINGS_DIR / "drug-classes.yaml", encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    names: set[str] = set(dosed)
    for body in raw.values() if isinstance(raw, dict) else ():
        names.update(d for d in (body.get("drugs") or ()) if isinstance(d, str))
    for name in sorted(names):
        c.collect(coded(c.ctx, ["rxnorm-drugs"], name, "medication"))
    c.system("medication").open = True


@lru_cache(maxsize=4)
def local_code_systems(local_code_base: str = "urn:fhir-bridge:codesystem",
                       directory: Path = MAPPINGS_DIR) -> tuple[LocalSystem, ...]:
    """Every local code system the bridge writes, with every code it can write."""
    from ..model import CONCEPTS

    mapper = Mapper(local_code_base=local_code_base, directory=directory)
    c = _Collector(mapper)
    schemas = {concept.name: concept.schema for concept in CONCEPTS}
    mappings = {}
    for path in sorted(directory.glob("*.map.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        raw["name"] = path.name.removesuffix(".map.yaml")
        mappings[raw["name"]] = raw
    for raw in mappings.values():
        _walk_rules(c, raw.get("rules") or [], _scopes(raw, mappings, schemas))
    _catalogs(c, schemas)
    for system in c.systems.values():
        system.codes.pop(FREE_TEXT, None)  # a free-text field whose codes the catalogs give
        if system.codes.pop(local_code(FREE_TEXT), None) is not None:
            system.open = True  # free text becomes a local code: not every code is listed
    from ..audit.events import LOCAL_SUBTYPES

    for code, display in LOCAL_SUBTYPES.items():
        c.system("audit-subtype").add(code, display)
    return tuple(sorted(c.systems.values(), key=lambda s: s.name))
