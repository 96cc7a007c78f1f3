"""Care-plan activities read back from any sender: the bridge's own local activity codes,
SNOMED CT / LOINC codes, ``detail.kind``, the text, or a reference to another resource. An
activity nothing maps is kept as a described activity of kind "other" with its text; its
original coding stays in the kept resource (see mapping/foreign.py)."""

from __future__ import annotations

from ..catalogs import measurement_kinds
from ..vocabularies import vocabulary
from .codes import decoded
from .registry import transform

_MEDICATION = "MedicationRequest"


def _label(kind: str) -> str:
    return kind.replace("-", " ").capitalize()


@transform("plan_activity_reference")
def _plan_activity_reference():
    """[kind, prescription_id, topic, status] <-> activity.reference. Forward: medication
    activities only. Reverse: a MedicationRequest the bridge holds is a medication activity;
    a reference to anything else (an Appointment, a ServiceRequest, a MedicationRequest that
    could not be imported) is a described activity kept with the reference as sent."""
    def forward(v, a, c):
        kind, prescription_id = v[0], v[1]
        if kind != "medication":
            return None
        return {"reference": c.mapper.reference("prescription", prescription_id)}

    def reverse(v, a, c):
        reference = v.get("reference") or ""
        rtype = reference.rpartition("/")[0].rsplit("/", 1)[-1]
        if rtype == _MEDICATION:
            local = c.mapper.internal_id("prescription", reference, c)
            if local is not None and "/" not in local:
                return "medication", local, None, None
        elif c.external:
            c.unmapped.append((reference, "the bridge does not import this type: kept as an "
                                          "external reference"))
        kind = vocabulary("care-plan-activity").reference_type.get(rtype, "other")
        return kind, None, v.get("display") or f"{rtype or 'Activity'} (external)", "unknown"

    return forward, reverse


@transform("plan_activity_detail")
def _plan_activity_detail():
    """Reverse only: activity.detail -> [kind, topic, measure]. The kind from the bridge's own
    coding, a SNOMED CT code of the vocabulary, a measurement's LOINC code (a monitoring
    activity), the text, then detail.kind; "other" if none. The topic is the code's text (or
    display, or the description)."""
    def reverse(v, a, c):
        code = v.get("code") or {}
        codings = code.get("coding") or []
        own_system = c.terminology.local_system("care-plan-activity")
        kind = next((x.get("code") for x in codings if x.get("system") == own_system), None)
        vocab = vocabulary("care-plan-activity")
        measure = _measure(c, [x for x in codings if x.get("system") != own_system])
        if kind is None:
            kind = vocab.from_codings(codings) or ("monitoring" if measure else None) or \
                vocab.from_text(code.get("text"), *(x.get("display") for x in codings)) or \
                vocab.detail_kind.get(v.get("kind")) or "other"
        if kind != "monitoring":
            measure = None
        topic = code.get("text") or next((x["display"] for x in codings if x.get("display")),
                                         None) or (v.get("description") or "")[:200] or \
            _label(kind)
        return kind, topic, measure

    return (lambda v, a, c: None), reverse


def _measure(c, codings: list[dict]) -> str | None:
    if not codings:
        return None
    key = decoded(c, ["measurements"], "measurement", {"coding": codings})
    return next((k.key for k in measurement_kinds().values() if k.code == key), None)
