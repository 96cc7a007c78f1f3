"""The search parameters the FHIR API supports, loaded from mappings/search-parameters.yaml:
``types`` (resources in the store) and ``catalog`` (resources built by the bridge and searched
as a list: conformance resources, Questionnaires, topics, Groups)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from .. import PROJECT_ROOT

PARAMETERS_FILE = PROJECT_ROOT / "mappings" / "search-parameters.yaml"
TYPES = ("token", "reference", "date", "string", "uri")


@dataclass(frozen=True)
class SearchParameter:
    name: str
    type: str  # token | reference | date | string | uri
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()
    doc: str = ""
    relative_to: str = ""  # uri: the base a value without a scheme is read against
    values: tuple[str, ...] = ()  # token: the only codes it can have (else 400)


@dataclass(frozen=True)
class ResourceSearch:
    """What one resource type can be searched by."""

    resource_type: str
    in_patient_compartment: bool
    params: dict[str, SearchParameter]
    combinations: tuple[tuple[str, ...], ...] = ()  # declared in the CapabilityStatement
    listed: bool = False  # a catalog type: searched over a list of resources, not the store

    def reference_params(self) -> dict[str, SearchParameter]:
        return {n: p for n, p in self.params.items() if p.type == "reference"}


@lru_cache(maxsize=None)
def load(path: Path = PARAMETERS_FILE) -> dict[str, ResourceSearch]:
    doc = yaml.safe_load(path.read_text())
    common = {name: _param(name, spec) for name, spec in doc["common"].items()}
    out = {}
    for rtype, spec in doc["types"].items():
        params = dict(common)
        params.update({name: _param(name, p) for name, p in spec.get("params", {}).items()})
        combinations = tuple(tuple(c) for c in spec.get("combinations", ()))
        unknown = {n for c in combinations for n in c} - set(params)
        if unknown:
            raise ValueError(f"{rtype}: combinations name unknown parameters {sorted(unknown)}")
        out[rtype] = ResourceSearch(rtype, spec.get("compartment") == "patient", params,
                                    combinations)
    return out


@lru_cache(maxsize=None)
def load_catalog(path: Path = PARAMETERS_FILE) -> dict[str, ResourceSearch]:
    doc = yaml.safe_load(path.read_text())
    twice = set(doc.get("catalog", {})) & set(doc["types"])
    if twice:
        raise ValueError(f"types both in the store and in the catalog: {sorted(twice)}")
    return {rtype: ResourceSearch(rtype, False, {name: _param(name, p) for name, p in
                                                 spec["params"].items()}, listed=True)
            for rtype, spec in doc.get("catalog", {}).items()}


def _param(name: str, spec: dict) -> SearchParameter:
    if spec["type"] not in TYPES:
        raise ValueError(f"search parameter {name}: unknown type {spec['type']!r}")
    if spec.get("relative_to") and spec["type"] != "uri":
        raise ValueError(f"search parameter {name}: only uri parameters take relative_to")
    if spec.get("values") and spec["type"] != "token":
        raise ValueError(f"search parameter {name}: only token parameters take values")
    return SearchParameter(name, spec["type"], tuple(spec["paths"]),
                           tuple(spec.get("targets", ())), spec.get("doc", ""),
                           spec.get("relative_to", ""), tuple(spec.get("values", ())))


def for_type(resource_type: str) -> ResourceSearch | None:
    """A type in the store (the catalog types are ``catalog_for_type``'s)."""
    return load().get(resource_type)


def catalog_for_type(resource_type: str) -> ResourceSearch | None:
    return load_catalog().get(resource_type)
