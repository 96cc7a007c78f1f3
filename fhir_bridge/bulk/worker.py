"""Run export jobs: ``run_once`` takes the next waiting job (or one a dead worker left) and
writes its files; ``run_forever`` loops, and also removes the files of cancelled and expired
jobs. ``start_background`` runs the loop in a daemon thread of ``fhir-bridge serve``."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any, Mapping

import sqlalchemy as sa

from ..audit.events import AuditEntry, record
from . import jobs
from .export import Cancelled, remove_files, write_export

log = logging.getLogger(__name__)

DEFAULTS = {"output_dir": "bulk-exports", "file_ttl_seconds": 3600,
            "max_resources_per_file": 10000, "page_size": 500, "lease_seconds": 120,
            "poll_seconds": 1, "retry_after_seconds": 2, "run_in_serve": True}


def settings_of(config: Mapping[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **(config.get("bulk") or {})}


def output_root(config: Mapping[str, Any]) -> Path:
    """Where the files go: ``bulk.output_dir``, a relative one from the working directory."""
    return Path(settings_of(config)["output_dir"]).resolve()


class Exporter:
    def __init__(self, engine: sa.Engine, config: Mapping[str, Any]):
        self.engine = engine
        self.settings = settings_of(config)
        self.root = output_root(config)
        self.name = f"bulk-{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def run_once(self) -> str | None:
        """Run one job to its end; its id, or None when none was waiting."""
        self.sweep()
        lease = float(self.settings["lease_seconds"])
        job = jobs.claim(self.engine, self.name, lease)
        if job is None:
            return None

        def still_mine(progress: str) -> bool:
            return jobs.renew(self.engine, job.id, self.name, lease, progress)

        ttl = float(self.settings["file_ttl_seconds"])
        try:
            written = write_export(self.engine, job, self.root, int(self.settings["page_size"]),
                                   int(self.settings["max_resources_per_file"]), still_mine)
        except Cancelled:
            remove_files(self.root, job.id)
            jobs.removed(self.engine, job.id)
            return job.id
        except Exception as exc:  # noqa: BLE001 - the job fails; the worker goes on
            log.error("bulk export %s failed: %s", job.id, type(exc).__name__)
            remove_files(self.root, job.id)
            jobs.fail(self.engine, job.id, self.name, "the export could not be written", ttl)
            return job.id
        if not jobs.finish(self.engine, job.id, self.name, written.files, ttl):
            remove_files(self.root, job.id)  # cancelled at the last moment
            jobs.removed(self.engine, job.id)
            return job.id
        self._audit(job, written)
        return job.id

    def _audit(self, job: jobs.Job, written) -> None:
        _, subject, client_id = json.loads(job.owner_client)
        patient = next(iter(written.patients)) if len(written.patients) == 1 else None
        record(self.engine, AuditEntry(
            action="E", subtype="operation", agent=subject, client_id=client_id,
            patient_id=patient, entities=written.sample,
            query=job.request_url.partition("?")[2] or None,
            description=f"bulk export {job.id}: {written.total} resources in "
                        f"{len(written.files)} files"))

    def sweep(self) -> None:
        """Remove the files of expired and cancelled jobs that no worker is writing."""
        for job_id in jobs.expire(self.engine) + jobs.idle_ids(self.engine,
                                                               ("cancelled", "expired")):
            remove_files(self.root, job_id)
            jobs.removed(self.engine, job_id)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                ran = self.run_once()
            except sa.exc.SQLAlchemyError as exc:
                log.error("bulk export loop: %s", type(exc).__name__)
                ran = None
            if ran is None:
                stop.wait(float(self.settings["poll_seconds"]))


def start_background(bridge) -> tuple[threading.Thread, threading.Event]:
    """Run the export loop in a daemon thread; set the returned Event to stop it."""
    stop = threading.Event()
    exporter = Exporter(bridge.engine, bridge.config)
    thread = threading.Thread(target=exporter.run_forever, args=(stop,), name="bulk-export",
                              daemon=True)
    thread.start()
    return thread, stop
