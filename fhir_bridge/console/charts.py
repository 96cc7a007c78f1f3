"""The patient timeline as one SVG, drawn on the server (no script, nothing fetched): the
medication course as bars with dose steps, rating-scale totals over their shaded severity
bands, each monitored result over its shaded target range, monitoring items due and overdue
on the time axis.

Readable without colour: bands and ranges carry their names as text, each series has its own
marker shape, every point is labelled with its value, stopped courses end in a cross with
the word "stopped". Every drawn datum is an element with ``data-*`` attributes (series, date,
value) and a ``<title>``, which the browser tests read back."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from markupsafe import escape

from .timeline import Course, Series, Timeline

WIDTH = 960
LEFT = 190  # room for row labels
RIGHT = 30
PLOT = WIDTH - LEFT - RIGHT
ROW = 30  # one medication course
SCALE_HEIGHT = 170
RESULT_HEIGHT = 96
AXIS = 34
GAP = 26
#: Marker per series (shape, not colour, tells them apart); results are diamonds.
MARKERS = {"phq-9": "circle", "gad-7": "square"}
#: Shades for bands, lightest for the mildest (also told apart by their labels).
BAND_SHADES = ("#f4f7f4", "#e6efe6", "#d6e4d6", "#c4d6c4", "#b0c7b0")


def el(tag: str, attrs: dict[str, Any], title: str | None = None,
       text: str | None = None) -> str:
    """One SVG element; attributes whose value is None are left out."""
    rendered = " ".join(f'{k}="{escape(str(v))}"' for k, v in attrs.items() if v is not None)
    inner = (f"<title>{escape(title)}</title>" if title else "") + \
        (str(escape(text)) if text is not None else "")
    return f"<{tag} {rendered}>{inner}</{tag}>" if inner else f"<{tag} {rendered}/>"


def label(x: float, y: float, text: str, css: str, anchor: str | None = None) -> str:
    return el("text", {"x": x, "y": y, "class": css, "text-anchor": anchor}, text=text)


class Axis:
    def __init__(self, first: dt.date, last: dt.date):
        pad = max((last - first).days // 20, 3)
        self.first = first - dt.timedelta(days=pad)
        self.last = last + dt.timedelta(days=pad)
        self.days = max((self.last - self.first).days, 1)

    def x(self, when: dt.date | dt.datetime) -> float:
        day = when.date() if isinstance(when, dt.datetime) else when
        offset = (day - self.first).days + (when.hour / 24 if isinstance(when, dt.datetime)
                                            else 0)
        return round(LEFT + PLOT * offset / self.days, 1)

    def ticks(self) -> list[dt.date]:
        """First days of months (fewer on a long span)."""
        step = 1 if self.days <= 400 else 2 if self.days <= 800 else 6
        day, out = dt.date(self.first.year, self.first.month, 1), []
        while day <= self.last:
            if day >= self.first and (day.month - 1) % step == 0:
                out.append(day)
            day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return out


def marker(shape: str, x: float, y: float, attrs: dict, title: str) -> str:
    if shape == "square":
        return el("rect", {"x": x - 4.5, "y": y - 4.5, "width": 9, "height": 9, **attrs}, title)
    if shape == "diamond":
        points = f"{x},{y - 6} {x + 6},{y} {x},{y + 6} {x - 6},{y}"
        return el("polygon", {"points": points, **attrs}, title)
    return el("circle", {"cx": x, "cy": y, "r": 5, **attrs}, title)


def medications(courses: list[Course], axis: Axis, top: float) -> list[str]:
    out = [label(8, top - 8, "Medication course", "panel-title")]
    for index, course in enumerate(courses):
        y = top + index * ROW
        out.append(label(8, y + 18, course.drug, "row-label"))
        peak = max((s.dose_value or 0 for s in course.steps), default=0) or 1
        for step in course.steps:
            x0 = axis.x(step.start)
            x1 = axis.x(step.end or axis.last)
            height = round(8 + 14 * (step.dose_value or peak) / peak, 1)  # higher dose, taller
            until = f" to {step.end}" if step.end else ""
            out.append(el("rect", {
                "class": "dose-step", "x": x0, "y": y + 24 - height,
                "width": max(round(x1 - x0, 1), 2), "height": height,
                "data-course": course.drug, "data-prescription": step.prescription_id,
                "data-dose": step.dose, "data-start": step.start.isoformat(),
                "data-end": step.end.isoformat() if step.end else None},
                f"{course.drug} {step.dose} from {step.start}{until}"))
            out.append(label(x0 + 3, y + 22 - height, step.dose, "dose-label"))
        last = course.steps[-1]
        if course.stopped and last.end:
            x = axis.x(last.end)
            out.append(el("path", {"class": "stop-mark", "data-course": course.drug,
                                   "d": f"M{x - 5},{y + 8} l10,10 m0,-10 l-10,10"},
                          f"{course.drug} stopped {last.end}"))
            out.append(label(x + 8, y + 18, "stopped", "stop-label"))
    return out


def frame(series: Series, top: float, height: float, low: float,
          high: float) -> tuple[list[str], Callable[[float], float]]:
    span = (high - low) or 1

    def y(value: float) -> float:
        return round(top + height - height * (value - low) / span, 1)

    out = [el("rect", {"class": "frame", "x": LEFT, "y": top, "width": PLOT, "height": height}),
           label(8, top + 14, series.title, "panel-title"),
           label(8, top + 30, series.unit, "unit-label"),
           label(LEFT - 6, top + 10, f"{high:g}", "tick-label", "end"),
           label(LEFT - 6, top + height, f"{low:g}", "tick-label", "end")]
    return out, y


def points(series: Series, axis: Axis, y: Callable[[float], float], shape: str) -> list[str]:
    coords = [(axis.x(p.date), y(p.value)) for p in series.points]
    out = []
    if len(coords) > 1:
        out.append(el("polyline", {"class": "series-line", "data-series": series.key,
                                   "points": " ".join(f"{a},{b}" for a, b in coords)}))
    for point, (px, py) in zip(series.points, coords):
        day = point.date.date().isoformat()
        out.append(marker(shape, px, py, {"class": "point", "data-series": series.key,
                                          "data-date": day, "data-value": f"{point.value:g}",
                                          "data-band": point.band},
                          f"{series.title} {day}: {point.label}"))
        out.append(label(px + 7, py - 6, f"{point.value:g}", "value-label"))
    return out


def shaded(css: str, y0: float, y1: float, data: dict, text: str) -> list[str]:
    return [el("rect", {"class": css, "x": LEFT, "y": y0, "width": PLOT,
                        "height": round(max(y1 - y0, 0), 1), **data}),
            label(WIDTH - RIGHT - 4, max(y1 - 3, y0 + 11), text, "band-label", "end")]


def scales(series_list: list[Series], axis: Axis, top: float) -> list[str]:
    out = []
    for series in series_list:
        high = max([b["max"] for b in series.bands] or [p.value for p in series.points])
        drawn, y = frame(series, top, SCALE_HEIGHT, 0, high)
        out += drawn
        for index, band in enumerate(series.bands):
            upper = min(band["max"] + 1, high)  # a band covers whole scores up to the next
            out += shaded("band", y(upper), y(band["min"]),
                          {"fill": BAND_SHADES[index % len(BAND_SHADES)],
                           "data-series": series.key, "data-band": band["band"]},
                          f'{band["text"]} ({band["min"]}-{band["max"]})')
        out += points(series, axis, y, MARKERS.get(series.key, "circle"))
        top += SCALE_HEIGHT + GAP
    return out


def results(series_list: list[Series], axis: Axis, top: float) -> list[str]:
    out = []
    for series in series_list:
        target = series.target or {}
        bounds = [p.value for p in series.points] + \
            [v for v in (target.get("low"), target.get("high")) if v is not None]
        low, high = min(bounds), max(bounds)
        margin = (high - low) * 0.15 or abs(high) * 0.1 or 1
        low, high = low - margin, high + margin
        drawn, y = frame(series, top, RESULT_HEIGHT, round(low, 2), round(high, 2))
        out += drawn
        if target:
            out += shaded("target-range", y(target.get("high", high)), y(target.get("low", low)),
                          {"data-low": target.get("low"), "data-high": target.get("high")},
                          f'target: {target["text"]}')
        out += points(series, axis, y, "diamond")
        top += RESULT_HEIGHT + GAP
    return out


def monitoring(items: list[dict], axis: Axis, top: float) -> list[str]:
    out = [label(8, top + 14, "Monitoring due", "panel-title")]
    for index, item in enumerate(i for i in items if i["state"] != "done"):
        x = axis.x(dt.date.fromisoformat(item["due_by"]))
        y = top + 4 + (index % 3) * 15
        state, topic = item["state"], item["topic"]
        out.append(el("polygon", {"class": f"due-mark {state}", "data-item": item["id"],
                                  "data-state": state, "data-due": item["due_by"],
                                  "points": f"{x},{y} {x + 6},{y + 10} {x - 6},{y + 10}"},
                      f"{topic}: {state} (due by {item['due_by']})"))
        text = f"{state}: {topic}"[:48]
        if x > LEFT + PLOT * 0.6:  # near the right edge: the label goes to the left
            out.append(label(x - 8, y + 10, text, f"due-label {state}", "end"))
        else:
            out.append(label(x + 8, y + 10, text, f"due-label {state}"))
    return out


def grid(axis: Axis, top: float, bottom: float) -> list[str]:
    out = []
    for day in axis.ticks():
        x = axis.x(day)
        out.append(el("line", {"class": "grid", "x1": x, "x2": x, "y1": top, "y2": bottom}))
        out.append(label(x, bottom + 14, day.strftime("%b %Y"), "tick-label", "middle"))
    return out


def render(timeline: Timeline) -> str:
    axis = Axis(timeline.first, timeline.last)
    top, body = 30.0, []
    body += medications(timeline.courses, axis, top)
    top += max(len(timeline.courses), 1) * ROW + GAP
    body += scales(timeline.scales, axis, top)
    top += len(timeline.scales) * (SCALE_HEIGHT + GAP)
    body += results(timeline.results, axis, top)
    top += len(timeline.results) * (RESULT_HEIGHT + GAP)
    body += monitoring(timeline.monitoring, axis, top)
    top += 56
    height = int(top + AXIS)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" '
            f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
            f'aria-labelledby="timeline-title"><title id="timeline-title">Course of patient '
            f'{escape(timeline.patient_id)}</title>'
            + "".join(grid(axis, 20, top)) + "".join(body) + "</svg>")
