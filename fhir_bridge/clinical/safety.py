"""Medication safety checks (``mappings/medication-safety.yaml``): maximum daily dose,
duplicate therapy within a class, and dangerous combinations; a drug the bridge does not
recognise is not checked, and that is a finding too. Each finding becomes a DetectedIssue
record; the API returns them as OperationOutcome warnings. They never block a save: the
prescriber decides."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ..mapping.drugs import UNKNOWN_DRUG_NOTE
from ..mapping.valuemaps import MAPPINGS_DIR
from .drugs import class_text, drug_key, members, recognised
from .monitoring import derived_id

#: Prescriptions that count as taken now or soon (a draft is a planned prescription).
CHECKED_STATUSES = ("active", "on-hold", "draft")
MG_PER_UNIT = {"mg": 1.0, "mcg": 0.001, "g": 1000.0}
DAYS_PER_PERIOD = {"hour": 1 / 24, "day": 1.0, "week": 7.0, "month": 30.0}
ORAL = (None, "oral", "sublingual")


@lru_cache(maxsize=4)
def rules(directory: Path = MAPPINGS_DIR) -> dict[str, Any]:
    with open(directory / "medication-safety.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@dataclass(frozen=True)
class Finding:
    rule: str  # e.g. max-dose.sertraline, duplicate.ssri, interaction.lithium-nsaid
    severity: str  # high | moderate | low
    text: str  # what the rule says
    detail: str  # this case, in words
    source: str
    prescription_ids: tuple[str, ...]  # the checked prescription first


def daily_mg(prescription: dict) -> float | None:
    """The most the prescription allows in one day, in mg; None when the dose is not in a
    mass unit (tablets, capsules, patches)."""
    factor = MG_PER_UNIT.get(prescription["dose"]["unit"])
    if factor is None:
        return None
    days = prescription.get("period", 1.0) * DAYS_PER_PERIOD[prescription.get("period_unit",
                                                                               "day")]
    return prescription["dose"]["value"] * factor * prescription["frequency"] / days


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def check(prescription: dict, others: list[dict]) -> list[Finding]:
    """Findings for one prescription against the patient's other prescriptions."""
    if prescription["status"] not in CHECKED_STATUSES:
        return []
    config = rules()
    drug = drug_key(prescription["drug"])
    pid = prescription["id"]
    if not recognised(drug):
        unknown = config["unknown_drug"]
        return [Finding("unchecked.unknown-drug", unknown["severity"], UNKNOWN_DRUG_NOTE,
                        f"{prescription['drug']} ({pid}) is not a drug the bridge recognises: "
                        f"{UNKNOWN_DRUG_NOTE}", unknown["source"], (pid,))]
    current = [p for p in others if p["id"] != pid and p["status"] in CHECKED_STATUSES
               and p["id"] != prescription.get("prior_prescription_id")]
    findings: list[Finding] = []
    limit = config["max_daily_dose"].get(drug)
    daily = daily_mg(prescription)
    if limit is not None and daily is not None and prescription.get("route") in ORAL \
            and daily > limit["mg"] + 1e-9:
        findings.append(Finding(
            f"max-dose.{drug}", "high",
            f"{prescription['drug']} above the maximum daily dose of {_fmt(limit['mg'])} mg",
            f"{prescription['drug']} {_fmt(daily)} mg/day (prescription {pid}) exceeds the "
            f"maximum daily dose of {_fmt(limit['mg'])} mg/day",
            limit["source"], (pid,)))
    for rule in config["duplicate_therapy"]:
        group = members(rule["class"])
        if drug not in group:
            continue
        same = [p for p in current if drug_key(p["drug"]) in group]
        if same:
            names = ", ".join(f"{p['drug']} ({p['id']})" for p in same)
            findings.append(Finding(
                f"duplicate.{rule['class']}", rule["severity"], rule["text"],
                f"{prescription['drug']} ({pid}) with {names}: two or more "
                f"{class_text(rule['class'])}", rule["source"],
                (pid, *[p["id"] for p in same])))
    for rule in config["interactions"]:
        a, b = members(rule["a"]), members(rule["b"])
        for mine, theirs in ((a, b), (b, a)):
            if drug not in mine:
                continue
            partners = [p for p in current if drug_key(p["drug"]) in theirs]
            if partners:
                names = ", ".join(f"{p['drug']} ({p['id']})" for p in partners)
                findings.append(Finding(
                    f"interaction.{rule['id']}", rule["severity"], rule["text"],
                    f"{prescription['drug']} ({pid}) with {names}", rule["source"],
                    (pid, *[p["id"] for p in partners])))
                break
    return findings


def detected_issue(prescription: dict, finding: Finding,
                   authored: dict[str, str] | None = None) -> dict:
    """A finding as a DetectedIssue record. The id comes from the rule and the implicated
    prescriptions, so the same finding is one record whichever of them is saved (again), and
    it was identified when the newest of them was written (``authored``: id -> authored_on)."""
    ids = sorted(finding.prescription_ids)
    times = [(authored or {}).get(i) for i in ids] + [prescription["authored_on"]]
    return {"id": derived_id("", ".".join(ids) + "." + finding.rule),
            "patient_id": prescription["patient_id"], "status": "final",
            "severity": finding.severity, "rule": finding.rule, "text": finding.text,
            "detail": finding.detail, "source": finding.source,
            "identified": max((t for t in times if t), key=_instant),
            "prescription_ids": ids}


def _instant(value: str):
    import datetime as dt

    if "T" not in value:
        value = (value + "-01-01"[len(value) - 4:]) + "T00:00:00+00:00"
    return dt.datetime.fromisoformat(value)


def warning_path(rule: str) -> str:
    """The prescription field a finding is about (for OperationOutcome.issue.expression)."""
    return "dose" if rule.startswith("max-dose.") else "drug"
