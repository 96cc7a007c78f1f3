"""Structural value maps from ``mappings/value-maps.yaml`` (internal word <-> FHIR code)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from .. import PROJECT_ROOT
from ..errors import MappingError

MAPPINGS_DIR = PROJECT_ROOT / "mappings"


class ValueMap:
    def __init__(self, name: str, forward: dict[str, str]):
        self.name = name
        self.forward = dict(forward)
        self.reverse = {v: k for k, v in self.forward.items()}
        if len(self.reverse) != len(self.forward):
            raise MappingError(f"value map {name} maps two words to one code", "load")

    def to_fhir(self, word: str) -> str:
        try:
            return self.forward[word]
        except KeyError:
            raise MappingError(f"{word!r} is not in value map {self.name}", "render") from None

    def to_internal(self, code: str) -> str:
        try:
            return self.reverse[code]
        except KeyError:
            raise MappingError(f"code {code!r} is not in value map {self.name}", "parse") from None

    def words(self) -> list[str]:
        return list(self.forward)


@lru_cache(maxsize=4)
def load_value_maps(directory: Path = MAPPINGS_DIR) -> dict[str, ValueMap]:
    with open(directory / "value-maps.yaml", encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    maps = {}
    for name, body in raw.items():
        pairs = {w: w for w in body} if isinstance(body, list) else {str(k): str(v)
                                                                     for k, v in body.items()}
        maps[name] = ValueMap(name, pairs)
    return maps


def words(name: str) -> list[str]:
    """The internal words of one map: the choices a schema accepts."""
    return load_value_maps()[name].words()
