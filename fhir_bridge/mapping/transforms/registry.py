"""The registry of named transforms: a transform is a (forward, reverse) pair under a name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ...errors import MappingError
from ..context import Context

UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Transform:
    forward: Callable[[Any, dict, Context], Any]
    reverse: Callable[[Any, dict, Context], Any]


TRANSFORMS: dict[str, Transform] = {}


def transform(name: str):
    """Register a class-less pair: decorate a function returning (forward, reverse)."""

    def register(factory):
        forward, reverse = factory()
        TRANSFORMS[name] = Transform(forward, reverse)
        return factory

    return register


def get_transform(name: str) -> Transform:
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise MappingError(f"unknown transform {name!r}", "load") from None
