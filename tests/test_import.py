"""`fhir-bridge import`: an initial load of internal-record documents, one document at a time,
that adds only what the store does not hold, so a second run after a crash doubles nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import sqlalchemy as sa

from fhir_bridge.importing import import_documents, sources
from fhir_bridge.mapping.document import load_document
from fhir_bridge.progress import Progress
from fhir_bridge.store import tables as t

from .conftest import FIXTURES, fixture_documents, read_json


def counts(bridge) -> tuple[int, int]:
    with bridge.engine.connect() as conn:
        records = conn.execute(sa.select(sa.func.count()).select_from(t.records)).scalar()
        outbox = conn.execute(sa.select(sa.func.count()).select_from(t.outbox)).scalar()
    return records, outbox


def test_a_folder_is_imported_and_a_second_run_adds_nothing(app):
    bridge = app.extensions["fhir_bridge"]
    first = import_documents(bridge.store, sources([FIXTURES / "internal"]))
    assert first.documents == len(fixture_documents()) and not first.failed
    after_first = counts(bridge)
    assert first.records_added > 0
    assert after_first[0] >= first.records_added  # and what saving them derived (issues)
    second = import_documents(bridge.store, sources([FIXTURES / "internal"]))
    assert second.records_added == 0 and not second.failed
    assert second.already_stored >= first.records_added
    assert counts(bridge) == after_first  # no record, no outbox row twice


def test_an_import_cut_short_and_run_again_ends_as_one_run(app, tmp_path):
    """A crash after some documents: the rerun stores the rest, and the result is the same
    as an import that ran through."""
    bridge = app.extensions["fhir_bridge"]
    documents = list(sources([FIXTURES / "internal"]))
    before_crash = import_documents(bridge.store, documents[:2])
    rerun = import_documents(bridge.store, documents)
    assert not rerun.failed
    from fhir_bridge.app import create_app

    fresh = create_app({"database_url": f"sqlite:///{tmp_path / 'fresh.db'}"})
    whole = import_documents(fresh.extensions["fhir_bridge"].store, documents)
    assert before_crash.records_added + rerun.records_added == whole.records_added
    assert counts(bridge) == counts(fresh.extensions["fhir_bridge"])


def test_a_document_partly_stored_adds_exactly_its_missing_records(app):
    bridge = app.extensions["fhir_bridge"]
    path = fixture_documents()[0]
    pairs = load_document(read_json(path))
    bridge.store.save(pairs[:3])  # its first three records, as if saved through the API
    _, outbox_before = counts(bridge)
    report = import_documents(bridge.store, sources([path]))
    assert not report.failed
    assert report.already_stored == 3
    assert report.records_added == len(pairs) - 3
    assert all(bridge.store.exists(c.name, r["id"]) for c, r in pairs)
    assert bridge.store.get(pairs[0][0], pairs[0][1]["id"]).version == 1  # not rewritten
    assert counts(bridge)[1] > outbox_before


def test_no_query_of_an_import_reads_a_whole_concept_of_records(sqlite_app):
    """Regression (bench/scale_bench.py): saving a record lists its patient's records of a
    concept, which SQLite answered from the primary key (concept, id), reading every record of
    the concept, so each document cost more the more the store held. Every query on records
    while importing must search by an index that narrows to the patient or to one id."""
    bridge = sqlite_app.extensions["fhir_bridge"]
    queries = []

    def on_records(conn, cursor, statement, params, *_):
        if statement.lstrip().startswith("SELECT") and "FROM records" in statement:
            queries.append((statement, params))

    sa.event.listen(bridge.engine, "before_cursor_execute", on_records)
    import_documents(bridge.store, sources([FIXTURES / "internal"]))
    sa.event.remove(bridge.engine, "before_cursor_execute", on_records)
    assert any("patient_id" in statement for statement, _ in queries)
    with bridge.engine.connect() as conn:
        for statement, params in queries:
            plan = " ".join(row[-1] for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, params))
            assert "(concept=?)" not in plan and "SCAN records" not in plan, (statement, plan)


def test_ndjson_lines_are_documents_and_a_bad_one_is_reported_by_line(app, tmp_path):
    bridge = app.extensions["fhir_bridge"]
    good = [json.loads(p.read_text()) for p in fixture_documents()[:2]]
    bad = {"patients": [{"id": "syn-bad", "mrn": "SYN-0", "birth_date": "not-a-date"}]}
    load = tmp_path / "load.ndjson"
    load.write_text("\n".join(json.dumps(d) for d in (good[0], bad, good[1])) + "\n\n")
    report = import_documents(bridge.store, sources([load]))
    assert report.documents == 3
    assert [f["document"] for f in report.failed] == [f"{load}:2"]
    assert any(issue.startswith("patients[0].") for issue in report.failed[0]["issues"])
    assert "not-a-date" not in json.dumps(report.failed)  # paths and rules, not the values
    assert not bridge.store.exists("patient", "syn-bad")
    assert report.records_added > 0
    assert bridge.store.exists("patient", good[1]["patients"][0]["id"])


def test_a_line_that_is_not_json_is_reported_and_the_rest_imported(app, tmp_path):
    bridge = app.extensions["fhir_bridge"]
    load = tmp_path / "load.ndjson"
    load.write_text('{"patients": [\n' + fixture_documents()[0].read_text().replace("\n", " ")
                    + "\n")
    report = import_documents(bridge.store, sources([load]))
    assert [f["document"] for f in report.failed] == [f"{load}:1"]
    assert report.records_added > 0


def test_the_command_prints_its_report_and_exits_1_on_a_failed_document(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.json").write_text(fixture_documents()[0].read_text())
    (folder / "b.json").write_text('{"patients": 3}')
    env = dict(os.environ, FHIR_BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}")
    result = subprocess.run([sys.executable, "-m", "fhir_bridge.cli", "import", str(folder)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["documents"] == 2 and report["records_added"] > 0
    assert [f["document"] for f in report["failed"]] == [str(folder / "b.json")]
    assert result.stderr == ""  # not a terminal: no progress line


def test_a_missing_path_is_a_usage_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fhir_bridge.cli", "import",
                             str(tmp_path / "nowhere")], capture_output=True, text=True,
                            env=dict(os.environ, FHIR_BRIDGE_DATABASE_URL=f"sqlite:///"
                                     f"{tmp_path / 'x.db'}"), timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no such file or folder")


def test_progress_draws_counts_and_a_rate_on_a_terminal_only():
    ticks = iter([0.0, 2.0, 4.0])
    out = io.StringIO()
    bar = Progress("push", "rows", stream=out, enabled=True, clock=lambda: next(ticks))
    bar.update(100, "2 dead")
    bar.finish(200)
    assert out.getvalue() == "\rpush: 100 rows (50/s), 2 dead\rpush: 200 rows (50/s)        \n"
    quiet = io.StringIO()  # StringIO is not a terminal
    Progress("push", "rows", stream=quiet).finish(10)
    assert quiet.getvalue() == ""
