"""The search parameters the FHIR API supports, loaded from mappings/search-parameters.yaml."""

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


@dataclass(frozen=True)
class ResourceSearch:
    """What one resource type can be searched by."""

    resource_type: str
    in_patient_compartment: bool
    params: dict[str, SearchParameter]
    combinations: tuple[tuple[str, ...], ...] = ()  # declared in the CapabilityStatement

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


def _param(name: str, spec: dict) -> SearchParameter:
    if spec["type"] not in TYPES:
        raise ValueError(f"search parameter {name}: unknown type {spec['type']!r}")
    return SearchParameter(name, spec["type"], tuple(spec["paths"]),
                           tuple(spec.get("targets", ())), spec.get("doc", ""))


def for_type(resource_type: str) -> ResourceSearch | None:
    return load().get(resource_type)
