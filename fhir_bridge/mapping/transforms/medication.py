"""Medications: the drug of a prescription <-> medicationCodeableConcept, and its notes."""

from __future__ import annotations

from .. import drugs
from .codes import coded
from .registry import transform

_CODING_FIELDS = ("system", "code", "display")


@transform("medication")
def _medication():
    """[drug, product, drug_codings] <-> medicationCodeableConcept.

    Forward: the sender's codings as sent, then the bridge's: the RxNorm ingredient when our
    table holds the drug, else a local code (system ``medication``) with the ingredient's name;
    the product, when given, is the concept's text (else the drug's name, for a local code).
    Reverse: the ingredient the codings and the text name (fhir_bridge/mapping/drugs.py), so a
    pulled "Escitalopram 10 mg tablet" or an RxNorm SCD coding is escitalopram for the rules;
    codings other than ours are kept as the sender's."""
    def forward(v, a, c):
        drug, product, sent = v
        known = drugs.known(drug)
        ours = coded(c, ["rxnorm-drugs"], drug, "medication", text=False,
                     display=drugs.display(drug) if known else None)["coding"][0]
        theirs = [{k: s[k] for k in _CODING_FIELDS if s.get(k)} for s in sent or []
                  if (s.get("system"), s.get("code")) != (ours["system"], ours["code"])]
        concept: dict = {"coding": [*theirs, ours]}
        if product:
            concept["text"] = product
        elif ours["system"] != drugs.RXNORM:
            concept["text"] = drug
        return concept

    def reverse(v, a, c):
        codings = v.get("coding") or []
        text = v.get("text")
        local = c.terminology.local_system("medication")
        theirs = [{k: s[k] for k in _CODING_FIELDS if s.get(k)} for s in codings
                  if s.get("system") != local and not drugs.is_ours(s)]
        try:
            key = drugs.recognise(text, codings)
        except drugs.ConflictingDrug:
            key = None  # read as written: loading the record reports the conflict
        if key is None:
            mine = next((s for s in codings if s.get("system") == local), None)
            key = (mine.get("display") or mine.get("code")) if mine else None
            key = key or text or next((s.get("display") or s.get("code") for s in theirs),
                                      None)
        if key is None:
            return None, None, None
        product = text if text and text != key else None
        return key, product, theirs or None

    return forward, reverse


@transform("prescription_notes")
def _prescription_notes():
    """[change_reason, drug_note] <-> note: a dose change's reason, then the unknown-drug note.
    Reverse: the first note that is not the unknown-drug note is the change reason (the
    unknown-drug note is derived again when the record is loaded)."""
    def forward(v, a, c):
        notes = [{"text": text} for text in v if text]
        return notes or None

    def reverse(v, a, c):
        reason = next((n.get("text") for n in v or [] if n.get("text")
                       and n.get("text") != drugs.UNKNOWN_DRUG_NOTE), None)
        return reason, None

    return forward, reverse
