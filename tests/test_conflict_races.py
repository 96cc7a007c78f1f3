"""Two operators act on the same sync problem at the same moment: exactly one acts.

A conflict resolved from the console and from the CLI at once, or the same dead letters
retried twice at once, on SQLite and on PostgreSQL. Each pair is released together: a barrier
holds both resolutions right after they read the conflict as open (the moment the old code
went on to resolve it twice), then lets them race for it. Of each pair one succeeds and the
other gets 409 with the reason, never a 500; the resource goes to the target once, its outbox
row stays one row, and one AuditEvent records the resolution. Two retries of the same pull
reject at once take the resource in once and leave no reject behind.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.cli import main
from fhir_bridge.errors import Conflict
from fhir_bridge.store import tables as t
from fhir_bridge.sync import conflicts, operator, remote_map, service

from .console_support import CSRF
from .conftest import FullAccessClient, token_for
from .live_server import serving

PAIRS = 12


class FhirTarget:
    """A FHIR server on 127.0.0.1 that takes every transaction (200 for each entry) and keeps
    the request of each entry it was sent (what the bridge pushed, in order), and answers a
    read of the resources in ``held`` (by id)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.held: dict[str, dict] = {}
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                found = target.held.get(self.path.rsplit("/", 1)[-1])
                body = json.dumps(found).encode() if found else b""
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                bundle = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answers = []
                with target._lock:
                    for entry in bundle["entry"]:
                        target.received.append(entry["request"])
                        rtype, _, rest = entry["request"]["url"].partition("/")
                        rid = rest or f"new-{len(target.received)}"
                        answers.append({"response": {
                            "status": "200 OK", "location": f"{rtype}/{rid}/_history/4"}})
                body = json.dumps({"resourceType": "Bundle", "type": "transaction-response",
                                   "entry": answers}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def pushes_of(self, remote_id: str) -> int:
        with self._lock:
            return sum(1 for r in self.received if r["url"].endswith("/" + remote_id))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def ehr():
    target = FhirTarget()
    yield target
    target.close()


@pytest.fixture
def bridge_app(database_url, ehr, monkeypatch):
    """The app (and, through the environment, the CLI) on one database, syncing with ``ehr``,
    holding PAIRS patients, every outbox row done."""
    monkeypatch.setenv("FHIR_BRIDGE_DATABASE_URL", database_url)
    monkeypatch.setenv("FHIR_BRIDGE_SYNC__TARGETS", json.dumps({"ehr": {"base_url": ehr.base}}))
    monkeypatch.setenv("FHIR_BRIDGE_SYNC__TARGET", "ehr")
    app = create_app({"database_url": database_url})
    app.test_client_class = FullAccessClient
    client = app.test_client()
    document = {"patients": [{"id": f"cr{i}", "mrn": f"SYN-C{i:04d}", "name": {
        "family": "Conflicttest", "given": ["Pat"]}, "birth_date": "1980-01-01",
        "gender": "female"} for i in range(PAIRS)]}
    answer = client.post("/api/v1/documents", json=document)
    assert answer.status_code == 200, answer.json
    with app.extensions["fhir_bridge"].engine.begin() as conn:
        conn.execute(t.outbox.update().values(status="done"))
    yield app
    app.extensions["fhir_bridge"].engine.dispose()


def open_conflict(bridge, i: int, ehr: FhirTarget) -> tuple[int, str]:
    """Patient cr<i> in conflict, as the pusher leaves one after the target (holding version 2,
    as pushed, and a version 3 changed there) refused its If-Match: the outbox row in state
    conflict, the conflict open. (conflict id, remote id)"""
    o = t.outbox.c
    remote_id = f"ehr-{i}"
    with bridge.engine.begin() as conn:
        rid = conn.execute(sa.select(o.resource_id).where(
            o.resource_type == "Patient", o.resource_id.like(f"%cr{i}"))).scalar_one()
        remote_map.remember(conn, "ehr", "Patient", rid, remote_id, "2", None)
        conn.execute(t.outbox.update().where(o.resource_id == rid).values(
            status="conflict", last_error="412 Precondition Failed"))
        content = json.loads(conn.execute(sa.select(t.resources.c.content).where(
            t.resources.c.resource_type == "Patient", t.resources.c.id == rid)).scalar_one())
    remote = {**content, "id": remote_id, "meta": {"versionId": "3"}, "gender": "male"}
    ehr.held[remote_id] = remote
    return conflicts.record_conflict(bridge.engine, None, "ehr", "Patient", rid, remote_id,
                                     content, remote), remote_id


@pytest.fixture
def held_after_reading(monkeypatch):
    """Each resolution waits, once it has read its conflict as open, until the other of its
    pair has too (``holder["barrier"]``: a new one per pair); the thread named
    ``holder["late"]`` then waits a moment longer, so that the other one claims first."""
    holder: dict = {"late": None}
    read = service.get_open

    def get_open_then_wait(engine, conflict_id):
        row = read(engine, conflict_id)
        holder["barrier"].wait(timeout=60)
        if threading.current_thread().name == holder["late"]:
            time.sleep(0.3)
        return row

    monkeypatch.setattr(service, "get_open", get_open_then_wait)
    return holder


def at_once(*calls):
    """Run the calls in threads started together; what each returned or raised."""
    start = threading.Barrier(len(calls))
    out: list = [None] * len(calls)

    def run(slot, call):
        start.wait(timeout=60)
        try:
            out[slot] = call()
        except Exception as exc:  # noqa: BLE001 - the test looks at what was raised
            out[slot] = exc

    threads = [threading.Thread(target=run, args=(slot, call), name=f"call-{slot}")
               for slot, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return out


def audited(bridge, subtype: str) -> list[tuple[str, str]]:
    with bridge.engine.connect() as conn:
        return [(row.outcome, json.loads(row.content).get("outcomeDesc", ""))
                for row in conn.execute(sa.select(t.audit_events).where(
                    t.audit_events.c.subtype == subtype))]


def outbox_rows(bridge, remote_id_of_local: str) -> list[str]:
    with bridge.engine.connect() as conn:
        return list(conn.execute(sa.select(t.outbox.c.status).where(
            t.outbox.c.resource_id == remote_id_of_local)).scalars())


def console_session(base: str, app) -> tuple[requests.Session, str]:
    """An operator signed in to the console over HTTP, and the CSRF token of its forms."""
    web = requests.Session()
    login = web.get(f"{base}/console/login", timeout=30).text
    signed = web.post(f"{base}/console/login", data={
        "token": token_for(app, "system/*.cruds"), "csrf_token": CSRF.search(login).group(1)},
        allow_redirects=False, timeout=30)
    assert signed.status_code == 302, signed.text
    page = web.get(f"{base}/console/sync", timeout=30).text
    return web, CSRF.search(page).group(1)


def test_console_and_cli_resolving_one_conflict_at_once_resolve_it_once(
        bridge_app, ehr, held_after_reading, capsys):
    bridge = bridge_app.extensions["fhir_bridge"]
    outcomes = []
    with serving(bridge_app) as base:
        web, csrf = console_session(base, bridge_app)
        for i in range(PAIRS):
            conflict_id, remote_id = open_conflict(bridge, i, ehr)
            local_id = conflicts.get_open(bridge.engine, conflict_id).local_id
            held_after_reading["barrier"] = threading.Barrier(2)
            console, cli = at_once(
                lambda: web.post(f"{base}/console/sync/conflicts/{conflict_id}",
                                 data={"keep": "local", "csrf_token": csrf},
                                 allow_redirects=False, timeout=60),
                lambda: main(["sync", "conflicts", "--resolve", str(conflict_id),
                              "--keep", "local"]))
            printed = capsys.readouterr()
            assert isinstance(console, requests.Response), console
            if console.status_code == 302:  # the console won: the CLI says why it did not
                assert cli == 2
                assert f"conflict {conflict_id} is already kept-local" in printed.err
                outcomes.append("console")
            else:
                assert console.status_code == 409, console.text
                assert f"conflict {conflict_id} not resolved: conflict {conflict_id} is " \
                       f"already kept-local" in console.text
                assert (cli, printed.out.strip()) == (0, "kept-local")
                outcomes.append("cli")
            assert ehr.pushes_of(remote_id) == 1
            assert outbox_rows(bridge, local_id) == ["done"]
            assert conflicts.list_conflicts(bridge.engine, "kept-local")[-1]["id"] == conflict_id
    resolutions = audited(bridge, "sync-resolve")
    assert len(resolutions) == PAIRS
    assert {outcome for outcome, _ in resolutions} == {"0"}
    assert len(outcomes) == PAIRS


def test_keep_local_and_take_remote_at_once_do_one_of_them(bridge_app, ehr, held_after_reading):
    """Two different answers to one conflict: only the one that claims it happens."""
    bridge = bridge_app.extensions["fhir_bridge"]
    client = bridge_app.test_client()
    won = []
    for i in range(PAIRS):
        conflict_id, remote_id = open_conflict(bridge, i, ehr)
        held_after_reading["barrier"] = threading.Barrier(2)
        held_after_reading["late"] = "call-0" if i % 2 else None  # every other: remote first
        results = at_once(
            lambda: operator.resolve_conflict(bridge, conflict_id, "local", "console:a"),
            lambda: operator.resolve_conflict(bridge, conflict_id, "remote", "cli"))
        [result] = [r for r in results if isinstance(r, str)]
        [lost] = [r for r in results if isinstance(r, Exception)]
        assert isinstance(lost, conflicts.AlreadyResolved), lost
        assert (lost.status, lost.message) == (409, f"conflict {conflict_id} is already "
                                                    f"{result}")
        gender = client.get(f"/api/v1/patients/cr{i}").json["gender"]
        if result == "kept-local":
            assert (ehr.pushes_of(remote_id), gender) == (1, "female")
        else:
            assert (result, ehr.pushes_of(remote_id), gender) == ("took-remote", 0, "male")
        won.append(result)
    assert len(audited(bridge, "sync-resolve")) == PAIRS
    assert set(won) == {"kept-local", "took-remote"}  # both orders were raced


def dead_letters(bridge, count: int) -> list[int]:
    o = t.outbox.c
    with bridge.engine.begin() as conn:
        seqs = list(conn.execute(sa.select(o.seq).order_by(o.seq).limit(count)).scalars())
        conn.execute(t.outbox.update().where(o.seq.in_(seqs)).values(
            status="dead", last_error="422 Unprocessable Entity"))
    return seqs


def test_two_retries_of_the_same_dead_letters_at_once_requeue_them_once(bridge_app):
    bridge = bridge_app.extensions["fhir_bridge"]
    for i in range(PAIRS):
        seqs = dead_letters(bridge, 2)
        results = at_once(lambda: operator.retry_dead(bridge, seqs, "console:a"),
                          lambda: operator.retry_dead(bridge, seqs, "cli"))
        assert 2 in results, results
        [lost] = [r for r in results if isinstance(r, Conflict)]
        assert lost.status == 409
        assert lost.message == (f"none of these outbox rows is dead (seq {seqs[0]} is pending, "
                                f"seq {seqs[1]} is pending)")
        with bridge.engine.connect() as conn:
            assert conn.execute(sa.select(t.outbox.c.status).where(
                t.outbox.c.seq.in_(seqs))).scalars().all() == ["pending", "pending"]
            conn.rollback()
        with bridge.engine.begin() as conn:
            conn.execute(t.outbox.update().values(status="done"))
    retries = audited(bridge, "sync-retry")
    assert len(retries) == PAIRS
    assert {description for _, description in retries} == {"2 dead outbox rows requeued"}


def test_retrying_all_dead_letters_twice_at_once_requeues_each_once(bridge_app):
    bridge = bridge_app.extensions["fhir_bridge"]
    for i in range(PAIRS):
        dead_letters(bridge, 3)
        results = sorted(at_once(lambda: operator.retry_dead(bridge, None, "console:a"),
                                 lambda: operator.retry_dead(bridge, None, "cli")))
        assert results == [0, 3]
        with bridge.engine.begin() as conn:
            conn.execute(t.outbox.update().values(status="done"))
    assert len(audited(bridge, "sync-retry")) == PAIRS


def test_two_retries_of_the_same_pull_reject_at_once_take_it_in_once(bridge_app, ehr,
                                                                      monkeypatch):
    """Retrying pull rejects writes through the pull's own save, which is atomic and takes
    the same remote version in once; both retries read the resource, neither is refused."""
    from fhir_bridge.sync import rejects
    from fhir_bridge.sync.pull import Puller

    bridge = bridge_app.extensions["fhir_bridge"]
    holder: dict = {}
    pull_one = Puller.pull_one

    def pull_one_together(self, resource):
        holder["barrier"].wait(timeout=60)
        return pull_one(self, resource)

    monkeypatch.setattr(Puller, "pull_one", pull_one_together)
    for i in range(PAIRS):
        remote = {"resourceType": "Patient", "id": f"ehr-new-{i}", "meta": {"versionId": "1"},
                  "identifier": [{"system": "http://hospital.example.org/fhir/sid/mrn",
                                  "value": f"E{i}"}],
                  "name": [{"family": "Rejecttest", "given": ["Pat"]}], "gender": "female",
                  "birthDate": "1970-01-01"}
        ehr.held[remote["id"]] = remote
        rejects.record(bridge.engine, "ehr", remote, "no mapping reads this Patient")
        holder["barrier"] = threading.Barrier(2)
        results = at_once(lambda: operator.retry_rejects(bridge, "console:a"),
                          lambda: operator.retry_rejects(bridge, "cli"))
        assert [(r.tried, r.still_rejected) for r in results] == [(1, 0), (1, 0)], results
        with bridge.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(t.sync_rejects)
                                ).scalar() == 0
            assert conn.execute(sa.select(t.remote_resources.c.local_id).where(
                t.remote_resources.c.remote_id == remote["id"])).scalars().all() == \
                [f"pat-ehr-new-{i}"]
            assert conn.execute(sa.select(t.records.c.version).where(
                t.records.c.concept == "patient",
                t.records.c.id == f"ehr-new-{i}")).scalars().all() == [1]
