"""Codes: CodeableConcepts from the terminology tables, local codes otherwise."""

from __future__ import annotations

from ..context import Context
from ..terminology import local_code
from .registry import transform


def coded(ctx: Context, tables: list[str], key: str, local: str, text: bool = True,
          display: str | None = None) -> dict:
    """A CodeableConcept for key: the verified code when a table holds it, else a local code
    (the key as code and display, unless a display is given)."""
    for name in tables:
        code = ctx.terminology.table(name).get(key)
        if code is not None:
            return {"coding": [code.coding()], "text": code.display} if text \
                else {"coding": [code.coding()]}
    shown = display or key
    coding = {"system": ctx.terminology.local_system(local), "code": local_code(key),
              "display": shown}
    return {"coding": [coding], "text": shown} if text else {"coding": [coding]}


def table_key(ctx: Context, tables: list[str], codings: list[dict]) -> str | None:
    """The key of the first coding one of the terminology tables holds."""
    for coding in codings:
        for name in tables:
            code = ctx.terminology.table(name).lookup(coding.get("system"), coding.get("code"))
            if code is not None:
                return code.key
    return None


def decoded(ctx: Context, tables: list[str], local: str, concept: dict) -> str | None:
    """The internal key of a CodeableConcept: a table key, else a local code's display."""
    codings = concept.get("coding") or []
    key = table_key(ctx, tables, codings)
    if key is not None:
        return key
    local_system = ctx.terminology.local_system(local)
    for coding in codings:
        if coding.get("system") == local_system:
            return coding.get("display") or coding.get("code")
    return concept.get("text") or (codings[0].get("display") if codings else None)


def _tables(args: dict) -> list[str]:
    tables = args.get("tables") or [args["table"]]
    return list(tables)


@transform("concept")
def _concept():
    """A key of terminology tables (args.table or args.tables) <-> CodeableConcept.

    Keys the tables do not hold are written as a local code (args.local names the local code
    system) with the key as display and text: never a guessed code."""
    def forward(v, a, c):
        return coded(c, _tables(a), v, a.get("local", a.get("table", "concept")))

    def reverse(v, a, c):
        return decoded(c, _tables(a), a.get("local", a.get("table", "concept")), v)

    return forward, reverse


@transform("local_concept")
def _local_concept():
    """A word of a closed internal list as a local code (args.system) with a readable display."""
    def forward(v, a, c):
        display = v.replace("-", " ").capitalize()
        return {"coding": [{"system": c.terminology.local_system(a["system"]), "code": v,
                            "display": display}], "text": display}

    def reverse(v, a, c):
        system = c.terminology.local_system(a["system"])
        for coding in v.get("coding") or []:
            if coding.get("system") == system:
                return coding.get("code")
        c.unmapped.append((a["system"], f"no {system} coding"))
        return None

    return forward, reverse
