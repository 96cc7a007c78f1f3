"""Closed lists of internal words read from the vocabularies other systems use: the codes of
the terminology tables, the reverse vocabularies (``mappings/reverse-vocabularies.yaml``), the
bridge's own local codes, then the text. A concept none of them knows is reported (the element
is kept as sent by the foreign-data merge) and the field stays empty."""

from __future__ import annotations

from ..context import Context
from ..vocabularies import vocabulary
from .codes import coded, table_key
from .registry import transform


def word_of(ctx: Context, concept: dict, tables: list[str], local: str,
            vocab: str | None) -> str | None:
    codings = concept.get("coding") or []
    local_system = ctx.terminology.local_system(local)
    own = next((c["code"] for c in codings if c.get("system") == local_system and c.get("code")),
               None)
    return table_key(ctx, tables, codings) or own or (
        vocabulary(vocab).from_concept(concept) if vocab else None)


def _shown(concept: dict) -> str:
    codings = concept.get("coding") or []
    parts = [f"{c.get('system')}|{c.get('code')}" for c in codings]
    if concept.get("text"):
        parts.append(repr(concept["text"]))
    return ", ".join(parts) or "nothing"


@transform("known_concept")
def _known_concept():
    """A word of a closed list (args.tables keys, args.vocabulary words) <-> CodeableConcept.

    Forward: the table's code, else a local code (args.local) with a readable display. Reverse:
    only a word the tables or the vocabulary name; anything else is reported under args.field."""
    def forward(v, a, c):
        return coded(c, a["tables"], v, a["local"], display=v.replace("-", " ").capitalize())

    def reverse(v, a, c):
        word = word_of(c, v, a["tables"], a["local"], a.get("vocabulary"))
        if word is None:
            c.unmapped.append((a.get("field", a["local"]),
                               f"{_shown(v)} is no {a['local'].replace('-', ' ')} the bridge "
                               "knows"))
        return word

    return forward, reverse
