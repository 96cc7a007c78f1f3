"""Drug classes as data (``mappings/drug-classes.yaml``): which drugs a class holds, keyed by
the ingredient key a prescription's ``drug`` holds (recognised by ``mapping/drugs.py``: a key
of ``terminology/rxnorm-drugs.csv`` or ``terminology/drugs/ingredients.csv``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..mapping import drugs as recognition
from ..mapping.valuemaps import MAPPINGS_DIR


@lru_cache(maxsize=4)
def classes(directory: Path = MAPPINGS_DIR) -> dict[str, dict[str, Any]]:
    with open(directory / "drug-classes.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def drug_key(drug: str) -> str:
    """The key a drug is listed under: "Lurasidone", "lurasidone" and "Latuda 40 mg tablet"
    are the same drug (also for records stored before names were recognised)."""
    return recognition.key_of(drug)


def recognised(drug: str) -> bool:
    """Whether the rules know the drug (an unknown one is not checked)."""
    return recognition.known(drug_key(drug))


def members(side: str | Iterable[str]) -> frozenset[str]:
    """The drugs of a class name, a single drug key, or a list of drug keys."""
    if isinstance(side, str):
        table = classes()
        return frozenset(table[side]["drugs"]) if side in table else frozenset([side])
    return frozenset(side)


def class_text(name: str) -> str:
    entry = classes().get(name)
    return entry["text"] if entry else name
