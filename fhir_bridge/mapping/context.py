"""What a transform may consult while it maps one record or resource."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .engine import Mapper


@dataclass
class Context:
    mapper: "Mapper"
    record: dict[str, Any] | None = None  # the internal record being mapped (forward)
    resource: dict[str, Any] | None = None  # the FHIR resource being read (reverse)
    #: Finds another resource of the same set by its reference ("Observation/x"), for children.
    resolve: Callable[[str], dict | None] = lambda ref: None
    #: Things a reverse mapping could not carry over, as (path, reason); reported, never dropped.
    unmapped: list[tuple[str, str]] = field(default_factory=list)
    #: Reading foreign FHIR: a reference the caller could not make local is left out of the
    #: record (the kept original holds it) instead of being carried whole.
    external: bool = False

    @property
    def terminology(self):
        return self.mapper.terminology

    @property
    def value_maps(self):
        return self.mapper.value_maps
