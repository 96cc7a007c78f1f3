"""Reverse vocabularies (``mappings/reverse-vocabularies.yaml``): the codes and words other
systems send, read one way into the bridge's internal words.

The forward direction stays in ``terminology/*.csv`` (one code per word). Here several codes may
name one word, so a vocabulary is a lookup, never a way to write a code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from ..errors import MappingError
from .valuemaps import MAPPINGS_DIR


class Vocabulary:
    def __init__(self, name: str, body: dict):
        self.name = name
        self.codes = {(system, str(code)): word
                      for system, table in (body.get("codes") or {}).items()
                      for code, word in table.items()}
        self.text = {_norm(k): v for k, v in (body.get("text") or {}).items()}
        self.detail_kind = dict(body.get("detail-kind") or {})
        self.reference_type = dict(body.get("reference-type") or {})

    def from_codings(self, codings: list[dict]) -> str | None:
        for coding in codings or []:
            word = self.codes.get((coding.get("system"), coding.get("code")))
            if word is not None:
                return word
        return None

    def from_text(self, *texts: str | None) -> str | None:
        for text in texts:
            if text and _norm(text) in self.text:
                return self.text[_norm(text)]
        return None

    def from_concept(self, concept: dict) -> str | None:
        """A coding first, then the concept's text, then the codings' displays."""
        codings = concept.get("coding") or []
        return self.from_codings(codings) or self.from_text(
            concept.get("text"), *(c.get("display") for c in codings))


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


@lru_cache(maxsize=4)
def load_vocabularies(directory: Path = MAPPINGS_DIR) -> dict[str, Vocabulary]:
    with open(directory / "reverse-vocabularies.yaml", encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    return {name: Vocabulary(name, body) for name, body in raw.items()}


def vocabulary(name: str) -> Vocabulary:
    try:
        return load_vocabularies()[name]
    except KeyError:
        raise MappingError(f"no reverse vocabulary {name!r}", "load") from None
