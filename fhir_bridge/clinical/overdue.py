"""The overdue check: run the monitoring rule ``mark_overdue`` over every active care plan in
the store (``fhir-bridge monitoring check``, daily). An item newly past its due date gets
``overdue_since``, which the mapping turns into an active Flag."""

from __future__ import annotations

import datetime as dt
from typing import Callable

from ..model import concept_by_name
from ..store.records import RecordStore
from .monitoring import mark_overdue


def check_overdue(store: RecordStore, today: dt.date,
                  progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Mark the open monitoring items of every active care plan that are past their due date
    on ``today`` (overdue_since, and so an active Flag); all plans in one transaction. Returns
    the newly overdue items with their plan and patient. ``progress`` gets (plans read, items
    found) after each page of plans."""
    plans = concept_by_name("care-plan")
    changed, found, after, read = [], [], None, 0
    while True:
        page = store.list(plans, limit=500, after=after)
        read += len(page)
        for stored in page:
            if stored.data["status"] != "active":
                continue
            updated, newly = mark_overdue(stored.data, today)
            if newly:
                changed.append((plans, updated))
                found += [{"care_plan_id": stored.id, "patient_id": stored.data["patient_id"],
                           "activity_id": a["id"], "topic": a["topic"], "due_by": a["due_by"],
                           "overdue_since": a["overdue_since"]} for a in newly]
        if progress is not None:
            progress(read, len(found))
        if len(page) < 500:
            break
        after = page[-1].id
    if changed:
        store.save(changed, source="monitoring-check")
    return found
