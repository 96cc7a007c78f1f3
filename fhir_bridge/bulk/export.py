"""Write one export job's NDJSON files, streaming from the database in bounded memory.

Resources are read a page at a time (``page_size`` rows, keyset paging on the primary key:
``resource_type = T AND id > last``), filtered (``_since``, ``_typeFilter`` through the /fhir
search engine's ``Search.matches``), and appended to ``<Type>-<n>.ndjson`` in the job's
directory, a new file every ``max_resources_per_file``. Nothing holds more than one page.
Only resources last updated up to the job's transactionTime are exported.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import sqlalchemy as sa

from ..facade.query import Search, parse_criteria
from ..fhir import jsonio
from ..store import tables as t
from ..store.records import as_utc, with_meta
from . import groups
from .jobs import Job

R = t.resources
PATIENT_CHUNK = 500


class Cancelled(Exception):
    """The job was cancelled (or taken over) while it ran."""


@dataclass
class Written:
    """The files of one job: [{type, file, count}], in the order written."""

    files: list[dict] = field(default_factory=list)
    total: int = 0
    sample: list[str] = field(default_factory=list)  # the first references, for the audit
    patients: set[str] = field(default_factory=set)


def job_dir(root: Path, job_id: str) -> Path:
    return root / job_id


def remove_files(root: Path, job_id: str) -> None:
    shutil.rmtree(job_dir(root, job_id), ignore_errors=True)


def _filters(job: Job) -> dict[str, list[Search]]:
    out: dict[str, list[Search]] = {}
    for text in job.params.get("type_filters", []):
        search = parse_criteria(text)
        out.setdefault(search.resource_type, []).append(search)
    return out


def _pages(conn: sa.Connection, rtype: str, job: Job, patients: list[str] | None,
           page_size: int) -> Iterator[list]:
    since = job.params.get("since")
    base = sa.select(R.c.id, R.c.version_id, R.c.last_updated, R.c.patient_id, R.c.content) \
        .where(R.c.resource_type == rtype, R.c.deleted.is_(False),
               R.c.last_updated <= job.transaction_time)
    if since:
        base = base.where(R.c.last_updated > dt.datetime.fromisoformat(since))
    chunks: Iterable[list[str] | None] = [None] if patients is None else (
        patients[i:i + PATIENT_CHUNK] for i in range(0, len(patients), PATIENT_CHUNK))
    for chunk in chunks:
        query = base if chunk is None else base.where(R.c.patient_id.in_(chunk))
        last = None
        while True:
            page_query = query if last is None else query.where(R.c.id > last)
            rows = conn.execute(page_query.order_by(R.c.id).limit(page_size)).all()
            if not rows:
                break
            yield rows
            last = rows[-1].id
            if len(rows) < page_size:
                break


def write_export(engine: sa.Engine, job: Job, root: Path, page_size: int, per_file: int,
                 still_mine: Callable[[str], bool]) -> Written:
    """Write the job's files under ``root/<job id>``; ``still_mine(progress)`` is asked after
    every page (it renews the lease) and Cancelled raised when it says no."""
    directory = job_dir(root, job.id)
    remove_files(root, job.id)  # a job run again after a crash starts from nothing
    directory.mkdir(parents=True)
    filters = _filters(job)
    written = Written()
    with engine.connect() as conn:
        patients = groups.patient_ids(conn, job.params)
    for rtype in job.params["types"]:
        counter = _FileCounter(directory, rtype, per_file, written)
        try:
            with engine.connect() as conn:
                for rows in _pages(conn, rtype, job, patients, page_size):
                    for row in rows:
                        resource = jsonio.loads(row.content)
                        if rtype in filters and not any(s.matches(resource)
                                                        for s in filters[rtype]):
                            continue
                        counter.write(jsonio.dumpb(with_meta(resource, row.version_id,
                                                             as_utc(row.last_updated))))
                        if len(written.sample) < 200:
                            written.sample.append(f"{rtype}/{row.id}")
                        if row.patient_id is not None and len(written.patients) < 2:
                            written.patients.add(row.patient_id)
                    if not still_mine(f"{rtype}: {written.total} resources written"):
                        raise Cancelled()
        finally:
            counter.close()
    return written


class _FileCounter:
    """Appends NDJSON lines to ``<Type>-<n>.ndjson``, starting a new file every ``per_file``
    resources; records each finished file in ``written``."""

    def __init__(self, directory: Path, rtype: str, per_file: int, written: Written):
        self.directory, self.rtype, self.per_file, self.written = directory, rtype, per_file, \
            written
        self.handle = None
        self.count = 0
        self.number = 0

    def write(self, line: bytes) -> None:
        if self.handle is None or self.count >= self.per_file:
            self.close()
            self.number += 1
            self.handle = open(self.directory / self._name(), "wb")
            self.count = 0
        self.handle.write(line + b"\n")
        self.count += 1
        self.written.total += 1

    def _name(self) -> str:
        return f"{self.rtype}-{self.number}.ndjson"

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.written.files.append({"type": self.rtype, "file": self._name(),
                                       "count": self.count})
            self.handle = None
