"""The mapping engine: reads the declarative files in ``mappings/`` and runs them both ways.

One entry mapping per internal concept (``concept:``); child mappings (``child: true``) make the
extra resources a record brings along (assessment items, plan goals). A rule says where an
internal field (``internal``) goes in the resource (``fhir``) and through which named transform
(``transform`` + ``args``); ``value`` writes a constant; ``each`` maps a list item by item with
sub-rules; ``merge: true`` merges a transform's dict into the target instead of replacing it;
``direction`` limits a rule to ``forward`` or ``reverse``. The engine itself adds id,
identifier, meta.profile and meta.security, and a generated narrative (``fhir/narrative.py``)
where the mapping writes none, so mapping files hold only clinical content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from ..errors import MappingError
from ..fhir.narrative import with_narrative
from . import paths
from .context import Context
from .reverse import apply_reverse as _apply_reverse, matches as _matches
from .terminology import Terminology
from .transforms import Transform, coded, get_transform
from .valuemaps import MAPPINGS_DIR, load_value_maps

SECURITY_LABELS = ("psychiatry-sensitivity", "restricted")
#: Resource types whose ``identifier`` is one Identifier, not a list (R4).
SINGLE_IDENTIFIER = frozenset({"QuestionnaireResponse"})
_TEMPLATE = re.compile(r"\{([^{}]+)\}")


@dataclass
class Rule:
    fhir: str
    internal: tuple[str, ...] = ()
    transform: Transform | None = None
    args: dict = field(default_factory=dict)
    value: Any = None
    each: list["Rule"] | None = None
    direction: str = "both"
    merge: bool = False
    append: bool = False
    term: dict | None = None  # a constant concept: {key, tables?, local, display?}

    @property
    def multi(self) -> bool:
        return len(self.internal) > 1


@dataclass
class ChildSpec:
    mapping: str
    internal: str
    fhir: str | None = None  # where the parent points at the children (None: it does not)
    wrap: str | None = None  # a scalar field carried as {wrap: value} into the child mapping
    direction: str = "both"  # "forward": derived children, not read back (the record
    #                          derives them again)
    where: str | None = None  # only the items that have this field (e.g. overdue_since)
    unread: str | None = None  # references no child mapping reads (not in the set, or of
    #                            unknown content) are kept in this internal field with the
    #                            reason, and written back as they were, instead of refused


@dataclass
class Mapping:
    name: str
    resource_type: str
    concept: str
    id_prefix: str
    id_template: str
    profile: str | None
    security: bool
    rules: list[Rule]
    children: list[ChildSpec]
    child: bool
    match: list[dict]


@dataclass
class Reversed:
    """The outcome of mapping one FHIR resource back: the concept, the record, what was lost."""

    concept: str
    record: dict[str, Any]
    unmapped: list[tuple[str, str]]


def _parse_rule(raw: dict, where: str) -> Rule:
    if "fhir" not in raw:
        raise MappingError(f"{where}: a rule needs 'fhir'", "load")
    internal = raw.get("internal")
    internal_paths = tuple(internal) if isinstance(internal, list) else \
        ((internal,) if internal else ())
    if "value" not in raw and "term" not in raw and not internal_paths:
        raise MappingError(f"{where}: rule for {raw['fhir']} needs internal, value or term",
                           "load")
    direction = raw.get("direction", "both")
    if direction not in ("both", "forward", "reverse"):
        raise MappingError(f"{where}: direction must be both, forward or reverse", "load")
    each = [_parse_rule(r, f"{where}.{raw['fhir']}") for r in raw["each"]] \
        if "each" in raw else None
    return Rule(fhir=raw["fhir"], internal=internal_paths,
                transform=get_transform(raw.get("transform", "copy")),
                args=raw.get("args") or {}, value=raw.get("value"), each=each,
                direction=direction, merge=bool(raw.get("merge")),
                append=bool(raw.get("append")), term=raw.get("term"))


def load_mapping(path: Path) -> Mapping:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    where = path.name
    try:
        return Mapping(
            name=path.name.removesuffix(".map.yaml"), resource_type=raw["resource"],
            concept=raw["concept"],
            id_prefix=raw["id_prefix"], id_template=raw.get("id", "{id}"),
            profile=raw.get("profile"), security=bool(raw.get("security", False)),
            rules=[_parse_rule(r, where) for r in raw.get("rules") or []],
            children=[ChildSpec(**c) for c in raw.get("children") or []],
            child=bool(raw.get("child", False)), match=list(raw.get("match") or []))
    except (KeyError, TypeError) as exc:
        raise MappingError(f"{where}: {exc}", "load") from exc


class Mapper:
    """All mappings of one directory, with the terminology and identifier settings they use."""

    def __init__(self, identifier_base: str = "urn:fhir-bridge:id",
                 local_code_base: str = "urn:fhir-bridge:codesystem",
                 directory: Path = MAPPINGS_DIR):
        self.identifier_base = identifier_base.rstrip("/:")
        self.terminology = Terminology(directory / "terminology", local_code_base)
        self.value_maps = load_value_maps(directory)
        self.mappings = {m.name: m for m in (load_mapping(p)
                                             for p in sorted(directory.glob("*.map.yaml")))}
        self.by_concept = {m.concept: m for m in self.mappings.values()}
        self._by_system = {self.identifier_system(m.concept): m for m in self.mappings.values()}
        for m in self.mappings.values():
            for child in m.children:
                if child.mapping not in self.mappings:
                    raise MappingError(f"{m.name}: no child mapping {child.mapping!r}", "load")

    # -- identity ------------------------------------------------------------------------------

    def identifier_system(self, concept: str) -> str:
        sep = ":" if self.identifier_base.startswith("urn:") else "/"
        return f"{self.identifier_base}{sep}{concept}"

    def mapping_for(self, concept: str) -> Mapping:
        try:
            return self.by_concept[concept]
        except KeyError:
            raise MappingError(f"no mapping for concept {concept!r}", "load") from None

    def resource_type(self, concept: str) -> str:
        return self.mapping_for(concept).resource_type

    def resource_id(self, concept: str, internal_id: str) -> str:
        return f"{self.mapping_for(concept).id_prefix}-{internal_id}"

    def reference(self, concept: str, internal_id: str) -> str:
        m = self.mapping_for(concept)
        return f"{m.resource_type}/{m.id_prefix}-{internal_id}"

    def internal_id(self, concept: str, reference: str | None, ctx: Context) -> str | None:
        """'MedicationRequest/rx-42' -> '42'. A reference the bridge did not make is kept whole
        (e.g. 'Patient/example') and reported, for sync to resolve through its id map."""
        if not reference:
            return None
        m = self.mapping_for(concept)
        type_, _, fhir_id = reference.rpartition("/")
        type_ = type_.rsplit("/", 1)[-1]
        if type_ == m.resource_type and fhir_id.startswith(m.id_prefix + "-"):
            return fhir_id[len(m.id_prefix) + 1:]
        if ctx.external:
            ctx.unmapped.append((reference, "points at a resource the bridge could not import: "
                                            "kept as an external reference"))
            return None
        ctx.unmapped.append(("reference", f"{reference} is not a {m.resource_type}"
                             if type_ != m.resource_type else
                             f"{reference} was not written by the bridge"))
        return reference

    # -- forward -------------------------------------------------------------------------------

    def to_fhir(self, concept: str, record: dict[str, Any]) -> list[dict[str, Any]]:
        """An internal record as FHIR resources: the entry resource first, then its children."""
        out: list[dict[str, Any]] = []
        self._forward(self.mapping_for(concept), record, out)
        return out

    def _forward(self, m: Mapping, record: dict, out: list) -> dict:
        business_id = _fill(m.id_template, record)
        resource: dict[str, Any] = {"resourceType": m.resource_type,
                                    "id": f"{m.id_prefix}-{business_id}"}
        meta: dict[str, Any] = {}
        if m.profile:
            meta["profile"] = [m.profile]
        if m.security:
            meta["security"] = [self.terminology.table("security-labels").get(k).coding()
                                for k in SECURITY_LABELS]
        if meta:
            resource["meta"] = meta
        identifier = {"system": self.identifier_system(m.concept), "value": business_id}
        resource["identifier"] = identifier if m.resource_type in SINGLE_IDENTIFIER \
            else [identifier]
        ctx = Context(self, record=record)
        _apply_forward(m.rules, record, resource, ctx)
        position = len(out)
        out.append(resource)
        for spec in m.children:
            child_map = self.mappings[spec.mapping]
            value = paths.get(record, spec.internal)
            if value is None:
                continue
            if spec.wrap:  # scalars (or a list of scalars) become records of one field
                items = [{spec.wrap: v} for v in (value if isinstance(value, list) else [value])]
            else:
                items = value
            if spec.where:
                items = [item for item in items if paths.get(item, spec.where) is not None]
            refs = (paths.get(resource, spec.fhir) or []) if spec.fhir else []
            for item in items:
                child = self._forward(child_map, {**item, "_parent": record}, out)
                refs.append({"reference": f"{child['resourceType']}/{child['id']}"})
            kept = (paths.get(record, spec.unread) if spec.unread else None) or []
            refs.extend({"reference": k["reference"]} for k in kept if "reference" in k)
            if refs and spec.fhir:
                paths.put(resource, spec.fhir, refs)
        out[position] = resource = with_narrative(resource)
        return resource

    # -- reverse -------------------------------------------------------------------------------

    def classify(self, resource: dict[str, Any]) -> Mapping | None:
        """Which mapping reads this resource: by the bridge's identifier, else by match rules."""
        for identifier in identifiers(resource):
            m = self._by_system.get(identifier.get("system"))
            if m is not None and m.resource_type == resource.get("resourceType"):
                return m
        for m in self.mappings.values():
            if m.child or m.resource_type != resource.get("resourceType"):
                continue
            if all(_matches(cond, resource, self) for cond in m.match):
                return m
        return None

    def to_internal(self, resource: dict[str, Any],
                    resolve: Callable[[str], dict | None] | None = None,
                    external: bool = False) -> Reversed:
        m = self.classify(resource)
        if m is None:
            raise MappingError(f"no mapping reads this {resource.get('resourceType')}", "parse")
        ctx = Context(self, resource=resource, resolve=resolve or (lambda ref: None),
                      external=external)
        record = self._reverse(m, resource, ctx)
        return Reversed(m.concept, record, ctx.unmapped)

    def _reverse(self, m: Mapping, resource: dict, ctx: Context) -> dict:
        record: dict[str, Any] = {}
        if m.id_template == "{id}":
            record["id"] = self._business_id(m, resource)
        outer, ctx.resource = ctx.resource, resource  # transforms see what is being read
        _apply_reverse(m.rules, resource, record, ctx)
        ctx.resource = outer
        claimed: set[str] = set()
        offered: dict[str, str] = {}
        for spec in m.children:
            if spec.fhir is None:
                continue
            child_map = self.mappings[spec.mapping]
            collected = []
            for ref in paths.get(resource, spec.fhir) or []:
                reference = ref.get("reference", "")
                if reference in claimed:  # read by an earlier child spec
                    continue
                target = ctx.resolve(reference)
                if target is None:
                    offered[reference] = "is not in the set"
                    continue
                if not self._reads_as_child(target, child_map):
                    offered.setdefault(reference, f"is not a {child_map.concept} the bridge "
                                                  "can read")
                    continue
                claimed.add(reference)
                if spec.direction != "forward":
                    collected.append(self._reverse(child_map, target, ctx))
            if spec.direction == "forward":
                continue
            if spec.wrap:
                if collected and spec.wrap in collected[0]:
                    paths.put(record, spec.internal, collected[0][spec.wrap])
            else:  # after what a rule may have read into the same field (components)
                record[spec.internal] = (record.get(spec.internal) or []) + collected
        for spec in m.children:
            kept = [{"reference": r, "reason": f"{why}: kept as sent"} for r, why in offered.items()
                    if spec.unread and r not in claimed]
            if kept:
                paths.put(record, spec.unread, (paths.get(record, spec.unread) or []) + kept)
                claimed.update(offered)
        for reference, why in offered.items():
            if reference not in claimed:
                ctx.unmapped.append((reference, why))
        return record

    def _reads_as_child(self, target: dict, child_map: Mapping) -> bool:
        """A child the bridge wrote (by its identifier), or one it did not write (no
        identifier of the bridge) that the child mapping's match rules accept."""
        found = self.classify(target)
        if found is child_map:
            return True
        ours = any(self._by_system.get(i.get("system")) for i in identifiers(target))
        return bool(child_map.match) and not ours and \
            target.get("resourceType") == child_map.resource_type and \
            all(_matches(cond, target, self) for cond in child_map.match)

    def _business_id(self, m: Mapping, resource: dict) -> str:
        system = self.identifier_system(m.concept)
        for identifier in identifiers(resource):
            if identifier.get("system") == system and identifier.get("value"):
                return identifier["value"]
        fhir_id = resource.get("id") or ""
        return fhir_id[len(m.id_prefix) + 1:] if fhir_id.startswith(m.id_prefix + "-") \
            else fhir_id


def identifiers(resource: dict) -> list[dict]:
    """A resource's identifiers as a list (one Identifier for SINGLE_IDENTIFIER types)."""
    found = resource.get("identifier") or []
    return [found] if isinstance(found, dict) else [i for i in found if isinstance(i, dict)]


def _fill(template: str, record: dict) -> str:
    def value(match: re.Match) -> str:
        found = paths.get(record, match.group(1))
        if found is None:
            raise MappingError(f"id template needs {match.group(1)}", "render")
        return str(found)

    return _TEMPLATE.sub(value, template)


def _internal_value(rule: Rule, record: dict) -> Any:
    if rule.multi:
        values = tuple(paths.get(record, p) for p in rule.internal)
        return None if all(v is None for v in values) else values
    return paths.get(record, rule.internal[0])


def _apply_forward(rules: Iterable[Rule], record: dict, target: dict, ctx: Context) -> None:
    for rule in rules:
        if rule.direction == "reverse":
            continue
        if rule.term is not None:
            t = rule.term
            paths.put(target, rule.fhir, coded(ctx, t.get("tables", []), t["key"], t["local"],
                                               display=t.get("display")))
            continue
        if not rule.internal:
            paths.put(target, rule.fhir, rule.value)
            continue
        value = _internal_value(rule, record)
        if value is None or value == []:
            continue
        if rule.each is not None:
            items = []
            for item in value:
                built: dict[str, Any] = {}
                _apply_forward(rule.each, {**item, "_parent": record}, built, ctx)
                items.append(built)
            paths.put(target, rule.fhir, items)
            continue
        fhir_value = rule.transform.forward(value, rule.args, ctx)
        if fhir_value is None:
            continue
        if rule.append:
            existing = paths.get(target, rule.fhir)
            if existing is None:
                paths.put(target, rule.fhir, list(fhir_value))
            else:
                existing.extend(fhir_value)
        elif rule.merge:
            existing = paths.get(target, rule.fhir)
            if existing is None:
                paths.put(target, rule.fhir, dict(fhir_value))
            else:
                existing.update(fhir_value)
        else:
            paths.put(target, rule.fhir, fhir_value)
