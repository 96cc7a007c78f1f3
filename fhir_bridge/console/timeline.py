"""A patient's course for the console timeline, gathered from the stored records: the
medication course (prescriptions chained by dose changes), rating-scale totals with their
bands, monitored results with their target ranges (mappings/lab-ranges.yaml), monitoring
items due and overdue, the care team and the plan's activities."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

import yaml

from ..clinical.scoring import read
from ..mapping.catalogs import instruments
from ..mapping.valuemaps import MAPPINGS_DIR
from ..model.registry import concept_by_name

#: Instruments drawn on the scores panel (others are listed, not drawn).
CHARTED_SCALES = ("phq-9", "gad-7")
#: Results drawn, each in its own panel, in this order (when the patient has any).
CHARTED_RESULTS = ("lithium", "anc", "valproate", "hba1c", "glucose", "total-cholesterol",
                   "ldl-cholesterol", "hdl-cholesterol", "triglycerides", "body-weight", "bmi")
MAX_RECORDS = 2000  # per kind: a patient's whole history, bounded


@lru_cache(maxsize=1)
def lab_ranges() -> dict[str, dict]:
    with open(MAPPINGS_DIR / "lab-ranges.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@dataclass
class Step:
    prescription_id: str
    start: dt.date
    end: dt.date | None
    dose: str  # "100 mg"
    dose_value: float | None
    status: str


@dataclass
class Course:
    drug: str
    steps: list[Step]

    @property
    def stopped(self) -> bool:
        return self.steps[-1].status in ("stopped", "completed", "cancelled")


@dataclass
class Point:
    date: dt.datetime
    value: float
    label: str  # what a reader sees beside the point
    band: str | None = None


@dataclass
class Series:
    key: str
    title: str
    unit: str
    points: list[Point]
    bands: list[dict] = field(default_factory=list)  # {min, max, band, text}
    target: dict | None = None  # {low, high, text}


@dataclass
class Timeline:
    patient_id: str
    courses: list[Course]
    scales: list[Series]
    results: list[Series]
    monitoring: list[dict]
    team: list[dict]
    activities: list[dict]
    first: dt.date
    last: dt.date


def _records(store, concept: str, patient_id: str) -> list[dict]:
    return [r.data for r in store.list(concept_by_name(concept), patient_id, limit=MAX_RECORDS)]


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value[:10])


def _moment(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _dose(rx: dict) -> tuple[str, float | None]:
    dose = rx.get("dose") or {}
    if "value" in dose:
        return f"{dose['value']:g} {dose.get('unit', '')}".strip(), float(dose["value"])
    return rx.get("sig") or "", None


def courses(prescriptions: list[dict]) -> list[Course]:
    """Chains of prescriptions joined by prior_prescription_id (a dose change is a new
    prescription that names the one it replaces), oldest first."""
    by_id = {rx["id"]: rx for rx in prescriptions}
    successors = {rx.get("prior_prescription_id") for rx in prescriptions}
    chains = []
    for rx in prescriptions:
        if rx["id"] in successors:
            continue  # not the newest of its chain
        chain, seen = [], set()
        while rx is not None and rx["id"] not in seen:
            seen.add(rx["id"])
            chain.append(rx)
            rx = by_id.get(rx.get("prior_prescription_id"))
        chain.reverse()
        steps = []
        for rx in chain:
            text, value = _dose(rx)
            steps.append(Step(rx["id"], _date(rx["start_date"]),
                              _date(rx["end_date"]) if rx.get("end_date") else None,
                              text, value, rx["status"]))
        drug = chain[-1].get("drug") or chain[-1].get("product") or chain[-1]["id"]
        chains.append(Course(drug.replace("-", " "), steps))
    return sorted(chains, key=lambda c: (c.steps[0].start, c.drug))


def scales(assessments: list[dict]) -> list[Series]:
    catalog = instruments()
    out = []
    for key in CHARTED_SCALES:
        instrument = catalog[key]
        points = []
        for a in sorted((a for a in assessments if a["instrument"] == key),
                        key=lambda a: a["effective"]):
            if a.get("total") is None:
                continue
            answers = {i["number"]: i["value"] for i in a.get("items", [])}
            reading = read(instrument, answers, a["total"])
            points.append(Point(_moment(a["effective"]), float(a["total"]),
                                f"{a['total']} {reading.band_text or ''}".strip(),
                                reading.band))
        if points:
            bands = list(instrument.scoring.bands) if instrument.scoring else []
            short = instrument.title.split(" (")[0]  # "PHQ-9 (Patient Health ...)" -> PHQ-9
            out.append(Series(key, short, "total score", points, bands))
    return out


def results(measurements: list[dict]) -> list[Series]:
    from ..mapping.catalogs import measurement_kinds

    kinds = measurement_kinds()
    out = []
    for key in CHARTED_RESULTS:
        points = [Point(_moment(m["effective"]), float(m["value"]),
                        f"{m['value']:g} {m.get('unit') or kinds[key].unit}")
                  for m in sorted((m for m in measurements if m["kind"] == key
                                   and isinstance(m.get("value"), (int, float))),
                                  key=lambda m: m["effective"])]
        if points:
            out.append(Series(key, key.replace("-", " "), kinds[key].unit, points,
                              target=lab_ranges().get(key)))
    return out


def monitoring_items(plans: list[dict], today: dt.date) -> list[dict]:
    items = []
    for plan in plans:
        for act in plan.get("activities", []):
            if act.get("kind") != "monitoring" or not act.get("due_by"):
                continue
            done = bool(act.get("result_measurement_id"))
            due_by = _date(act["due_by"])
            state = "done" if done else "overdue" if act.get("overdue_since") or \
                due_by < today else "due"
            items.append({"id": act["id"], "topic": act.get("topic") or act.get("measure"),
                          "due_from": act.get("due_from"), "due_by": act["due_by"],
                          "state": state, "result": act.get("result_measurement_id")})
    order = {"overdue": 0, "due": 1, "done": 2}
    return sorted(items, key=lambda i: (order[i["state"]], i["due_by"]))


def build(store, patient_id: str, today: dt.date) -> Timeline:
    prescriptions = _records(store, "prescription", patient_id)
    plans = _records(store, "care-plan", patient_id)
    timeline = Timeline(
        patient_id, courses(prescriptions), scales(_records(store, "assessment", patient_id)),
        results(_records(store, "measurement", patient_id)), monitoring_items(plans, today),
        [p for team in _records(store, "care-team", patient_id)
         for p in team.get("participants", [])],
        [a for plan in plans for a in plan.get("activities", [])
         if a.get("kind") != "monitoring" or not a.get("due_by")],
        today, today)
    dates = [s.start for c in timeline.courses for s in c.steps] + \
        [s.end for c in timeline.courses for s in c.steps if s.end] + \
        [p.date.date() for s in timeline.scales + timeline.results for p in s.points] + \
        [_date(i["due_by"]) for i in timeline.monitoring]
    if dates:
        timeline.first, timeline.last = min(dates), max(dates)
    return timeline
