"""Generated narratives: a short, escaped XHTML summary of a resource's own elements.

R4 expects every DomainResource to carry a human-readable narrative (dom-6). The bridge writes
``text.status = generated``: a table of the resource's top-level elements, each summarised in a
line (a CodeableConcept by its text or display, a Quantity by value and unit, a Reference by its
display or target, ...). Every value is escaped, so nothing from a record can inject markup; the
result is the restricted XHTML R4 allows (no scripts, no attributes but the namespace).
"""

from __future__ import annotations

import html
from typing import Any

XHTML = "http://www.w3.org/1999/xhtml"
#: Elements a reader does not need in the summary (identity, bookkeeping, nested narrative).
_SKIP = {"resourceType", "id", "meta", "text", "identifier", "extension", "modifierExtension",
         "contained", "implicitRules", "language"}
_MAX_ITEMS = 6  # list elements shown before "and N more"
_MAX_CHARS = 300  # longest line, cut with an ellipsis


def with_narrative(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource with a generated ``text`` placed after ``meta`` (kept if it has one)."""
    if "text" in resource:
        return resource
    out: dict[str, Any] = {}
    for key, value in resource.items():
        out[key] = value
        if key == ("meta" if "meta" in resource else "id"):
            out["text"] = narrative(resource)
    return out


def narrative(resource: dict[str, Any]) -> dict[str, str]:
    """``{"status": "generated", "div": ...}`` summarising the resource."""
    rows = []
    for key, value in resource.items():
        if key in _SKIP or key.startswith("_"):
            continue
        line = _summary(value)
        if line:
            rows.append(f"<tr><th>{_esc(_label(key))}</th><td>{_esc(_cut(line))}</td></tr>")
    title = f"<p><b>{_esc(resource.get('resourceType', 'Resource'))}</b></p>"
    table = f"<table>{''.join(rows)}</table>" if rows else ""
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">{title}{table}</div>'}


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _label(key: str) -> str:
    """'effectiveDateTime' -> 'effective date time'."""
    out = []
    for ch in key:
        out.append(f" {ch.lower()}" if ch.isupper() else ch)
    return "".join(out)


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_CHARS else text[:_MAX_CHARS - 1] + "\u2026"


def _summary(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list):
        parts = [p for p in (_summary(v) for v in value[:_MAX_ITEMS]) if p]
        more = len(value) - _MAX_ITEMS
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    if isinstance(value, dict):
        return _summary_of_dict(value)
    return ""


def _summary_of_dict(value: dict) -> str:
    if "text" in value and isinstance(value["text"], str):  # CodeableConcept, Annotation
        return value["text"]
    if "coding" in value:  # a CodeableConcept without text
        return _summary([c.get("display") or c.get("code") for c in value["coding"]])
    if "display" in value or "reference" in value:  # Coding display, Reference
        return str(value.get("display") or value.get("reference") or value.get("code") or "")
    if "value" in value and not isinstance(value["value"], (dict, list)):  # Quantity, Identifier
        unit = value.get("unit") or value.get("code") or ""
        return f"{value.get('comparator', '')}{value['value']} {unit}".strip()
    if "start" in value or "end" in value:  # Period
        return f"{value.get('start', '')} to {value.get('end', '')}".strip()
    if "family" in value or "given" in value:  # HumanName
        return " ".join([*value.get("given", []), value.get("family", "")]).strip()
    parts = [f"{_label(k)}: {s}" for k, v in value.items()
             if k not in _SKIP and (s := _summary(v))]
    return ", ".join(parts)
