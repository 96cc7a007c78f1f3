"""Drug recognition: from what a prescriber sends to the ingredient the clinical rules know.

Prescriptions name a drug in many ways: "sertraline", "Sertraline HCl 50 mg tablet", "Zoloft",
the RxNorm clinical drug "sertraline 50 MG Oral Tablet [Zoloft]", or a coding (RxNorm
ingredient, SCD/SBD, or another system). This module reduces each to one ingredient key: the
``key`` of ``terminology/rxnorm-drugs.csv`` (an ingredient with a verified RxNorm code) or of
``terminology/drugs/ingredients.csv`` (an ingredient known by name, coded locally). The words it
sets aside (salts and esters, dose forms, release markers, strength units, routes) are in
``terminology/drugs/name-parts.csv``; brand names in ``terminology/drugs/brands.csv``. Every row
of these tables names its source.

A name is read as a set of words: numbers (strengths), dose forms, release markers, units,
routes and joining words are dropped; the rest must be an ingredient's or a brand's words, as
written or without their salt words ("lithium citrate" -> lithium, "divalproex" -> divalproex
sodium). Text in brackets (an SBD's brand, "Zoloft (sertraline)") is read on its own and must
agree. A combination of ingredients is not one ingredient: it is not recognised.

The mapping engine (both directions) and the record schema use it, and the clinical rules read
the keys it gives; it imports nothing above the mapping layer.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from .terminology import local_code
from .valuemaps import MAPPINGS_DIR

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
#: The note a prescription of a drug the bridge does not recognise carries (and its warning).
UNKNOWN_DRUG_NOTE = "not checked for interactions, duplicates or maximum dose: unknown drug"
#: Words that join the parts of a name and say nothing about the drug.
_JOINING = frozenset({"and", "with", "plus", "of", "per", "as", "in", "the", "a"})
_WORD = re.compile(r"[a-z]+|[0-9]+(?:[.,][0-9]+)?")
_BRACKETED = re.compile(r"[\[(]([^\[\]()]*)[\])]")
_SKIPPED_KINDS = ("form", "release", "unit", "route")


class ConflictingDrug(ValueError):
    """The name and the codings (or two of them) name different ingredients."""

    def __init__(self, keys: Iterable[str]):
        self.keys = tuple(sorted(set(keys)))
        super().__init__("names different drugs: " + ", ".join(self.keys))


@dataclass(frozen=True)
class Vocabulary:
    names: dict[frozenset[str], str]  # an ingredient's words -> its key
    brands: dict[frozenset[str], str]  # a brand's words -> the ingredient key
    salts: frozenset[str]
    skipped: frozenset[str]
    displays: dict[str, str]  # key -> the ingredient's name
    codes: dict[tuple[str, str], str]  # (system, code) of a verified coding -> key
    codings: dict[str, dict]  # key -> its verified coding


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=4)
def vocabulary(directory: Path = MAPPINGS_DIR) -> Vocabulary:
    terms = directory / "terminology"
    parts = _rows(terms / "drugs" / "name-parts.csv")
    salts = frozenset(r["word"] for r in parts if r["kind"] == "salt")
    skipped = frozenset(r["word"] for r in parts if r["kind"] in _SKIPPED_KINDS) | _JOINING
    rxnorm = _rows(terms / "rxnorm-drugs.csv")
    named = [(r["key"], r["display"]) for r in rxnorm] \
        + [(r["key"], r["name"]) for r in _rows(terms / "drugs" / "ingredients.csv")]
    displays: dict[str, str] = {}
    for key, name in named:
        displays.setdefault(key, name)
    brands = [(r["key"], r["brand"]) for r in _rows(terms / "drugs" / "brands.csv")]
    return Vocabulary(
        names=_index(named, salts, skipped), brands=_index(brands, salts, skipped),
        salts=salts, skipped=skipped, displays=displays,
        codes={(r["system"], r["code"]): r["key"] for r in rxnorm},
        codings={r["key"]: {"system": r["system"], "code": r["code"], "display": r["display"]}
                 for r in rxnorm})


def _index(named: list[tuple[str, str]], salts: frozenset[str], skipped: frozenset[str]
           ) -> dict[frozenset[str], str]:
    """Words -> key: each name as written, and without its salt words where that is not
    another name nor shared by two keys ("divalproex" for divalproex sodium, not "lithium"
    for lithium carbonate)."""
    exact: dict[frozenset[str], str] = {}
    bare: dict[frozenset[str], set[str]] = {}
    for key, name in named:
        words = _content(name, skipped)
        if exact.get(words, key) != key:
            raise ValueError(f"drug name {name!r} names both {exact[words]} and {key}")
        exact[words] = key
        without = words - salts
        if without and without != words:
            bare.setdefault(without, set()).add(key)
    derived = {words: keys.pop() for words, keys in bare.items() if len(keys) == 1}
    return {**derived, **exact}


def _content(text: str, skipped: frozenset[str]) -> frozenset[str]:
    words = _WORD.findall(text.lower().replace("_", " "))
    return frozenset(w for w in words if not w[0].isdigit() and w not in skipped)


def _part_key(words: frozenset[str], vocab: Vocabulary) -> str | None:
    if not words:
        return None
    for candidate in (words, words - vocab.salts):
        if not candidate:
            continue
        key = vocab.names.get(candidate) or vocab.brands.get(candidate)
        if key is not None:
            return key
    return None


def name_key(text: str | None) -> str | None:
    """The ingredient key a name written by a prescriber stands for, or None.

    Raises ConflictingDrug when its parts (the text and text in brackets) name different
    ingredients."""
    if not text or not text.strip():
        return None
    return _name_key(text.strip())


@lru_cache(maxsize=4096)
def _name_key(text: str) -> str | None:
    vocab = vocabulary()
    parts = [m.group(1) for m in _BRACKETED.finditer(text)] + [_BRACKETED.sub(" ", text)]
    found = {k for k in (_part_key(_content(p, vocab.skipped), vocab) for p in parts) if k}
    if len(found) > 1:
        raise ConflictingDrug(found)
    if found:
        return found.pop()
    return None


def coding_key(coding: dict) -> str | None:
    """The ingredient key of one coding: its verified code (an RxNorm ingredient of our
    table), else what its display names (an SCD/SBD or another system's coding)."""
    key = vocabulary().codes.get((coding.get("system") or "", coding.get("code") or ""))
    return key if key is not None else name_key(coding.get("display"))


def recognise(text: str | None = None, codings: Iterable[dict] = ()) -> str | None:
    """The ingredient key that the name and the codings name, or None when none of them is
    recognised. Raises ConflictingDrug when they name different ingredients."""
    found = {k for k in [name_key(text), *(coding_key(c) for c in codings)] if k}
    if len(found) > 1:
        raise ConflictingDrug(found)
    return found.pop() if found else None


def known(key: str) -> bool:
    """Whether a key is an ingredient the tables hold (so the safety rules can check it)."""
    return key in vocabulary().displays


def known_keys() -> frozenset[str]:
    return frozenset(vocabulary().displays)


def display(key: str) -> str:
    """The ingredient's name ("lithium carbonate" for lithium-carbonate); the key itself for
    a drug no table holds."""
    return vocabulary().displays.get(key, key)


def verified_coding(key: str) -> dict | None:
    """The verified RxNorm ingredient coding of a key, when our table holds one."""
    coding = vocabulary().codings.get(key)
    return dict(coding) if coding else None


def key_of(text: str) -> str:
    """The key the rules list a drug under: the recognised ingredient, else the text in lower
    case with words joined by "-" (an unknown drug matches no rule)."""
    try:
        return name_key(text) or local_code(text)
    except ConflictingDrug:
        return local_code(text)


def is_ours(coding: dict) -> bool:
    """Whether a coding is a verified ingredient coding of our table (the bridge writes it
    itself for the recognised drug)."""
    return (coding.get("system") or "", coding.get("code") or "") in vocabulary().codes
