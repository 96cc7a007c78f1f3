"""Scoring: score bands, risk levels and alerts of assessments."""

from __future__ import annotations

from ..catalogs import instruments
from .registry import transform


def _reading(record: dict):
    from ...clinical.scoring import read

    parent = record.get("_parent", record)
    instrument = instruments()[parent["instrument"]]
    return read(instrument, {a["number"]: a["value"] for a in parent["items"]},
                parent.get("total"))


@transform("score_band")
def _score_band():
    """Forward only: the band of a total as Observation.interpretation: the standard HL7 code
    when the band names one (instruments.yaml ``interpretation``, a key into
    terminology/interpretations.csv: POS / NEG), else local code "<instrument>.<band>"; the
    band's text from the scoring rules either way."""
    def forward(v, a, c):
        instrument, band = v
        if band is None:
            return None
        text = _reading(c.record).band_text
        scoring = instruments()[instrument].scoring
        spec = next((b for b in (scoring.bands if scoring else ()) if b["band"] == band), {})
        standard = c.terminology.table("interpretations").get(spec.get("interpretation", ""))
        coding = standard.coding() if standard is not None else \
            {"system": c.terminology.local_system("score-band"), "code": f"{instrument}.{band}",
             "display": text}
        return [{"coding": [coding], "text": text}]

    return forward, (lambda v, a, c: None)


@transform("risk_level")
def _risk_level():
    """Forward only: a screener's risk level as a CodeableConcept (local code, rule text)."""
    def forward(v, a, c):
        text = _reading(c.record).risk_text
        return {"coding": [{"system": c.terminology.local_system("suicide-risk-level"),
                            "code": v, "display": text}], "text": text}

    return forward, (lambda v, a, c: None)


@transform("alert_code")
def _alert_code():
    """Forward only: an alert as a CodeableConcept (local code, the rule's text)."""
    def forward(v, a, c):
        text = next(x.text for x in _reading(c.record).alerts if x.alert == v)
        return {"coding": [{"system": c.terminology.local_system("clinical-alert"), "code": v,
                            "display": text}], "text": text}

    return forward, (lambda v, a, c: None)
