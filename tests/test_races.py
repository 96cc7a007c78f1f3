"""Two clients at once: every rule that reads before it writes holds under concurrency.

Each race sends a pair of requests from two threads released together by a barrier, over real
HTTP to the app served on 127.0.0.1, on SQLite and on PostgreSQL, 30 pairs per race. Of each
pair exactly one wins; the other gets 409 (or the first one's answer, or 422, for a shared
Idempotency-Key), never a 500; nothing is lost, forked or stored twice, and every record's
version equals the length of its FHIR resource's history.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import requests
import sqlalchemy as sa

from fhir_bridge.store import tables as t

from .conftest import token_for
from .live_server import serving

PAIRS = 30
PRESCRIBER = {"id": "dr-race", "name": {"family": "Racer-Synth", "given": ["Ada"]},
              "discipline": "psychiatrist"}


def patient(i: int) -> dict:
    return {"id": f"rp{i}", "mrn": f"SYN-R{i:04d}", "name": {"family": "Racetest",
            "given": ["Pat"]}, "birth_date": "1980-01-01", "gender": "female"}


def prescription(i: int, rx_id: str | None = None, dose: int = 50) -> dict:
    return {"id": rx_id or f"rp{i}-rx", "patient_id": f"rp{i}", "prescriber_id": "dr-race",
            "status": "active", "authored_on": "2025-03-03T10:00:00-05:00",
            "drug": "sertraline", "dose": {"value": dose, "unit": "mg"}, "route": "oral",
            "frequency": 1, "period": 1, "period_unit": "day", "start_date": "2025-03-03"}


def dose_change(new_id: str, dose: int) -> dict:
    return {"id": new_id, "dose": {"value": dose, "unit": "mg"}, "effective_date": "2025-04-01",
            "reason": "Partial response", "changed_by_id": "dr-race",
            "authored_on": "2025-04-01T09:00:00-04:00"}


@pytest.fixture
def live(app):
    """(base URL, an HTTP session factory) for the app served over real HTTP, holding the
    prescriber and PAIRS patients with one active prescription each."""
    headers = {"Authorization": "Bearer " + token_for(app, ttl_seconds=3600)}

    def session() -> requests.Session:
        s = requests.Session()
        s.headers.update(headers)
        return s

    with serving(app) as base:
        document = {"practitioners": [PRESCRIBER],
                    "patients": [patient(i) for i in range(PAIRS)],
                    "prescriptions": [prescription(i) for i in range(PAIRS)]}
        seeded = session().post(f"{base}/api/v1/documents", json=document, timeout=120)
        assert seeded.status_code == 200, seeded.text
        yield base, session


def race(first: tuple, second: tuple, sessions) -> list[requests.Response]:
    """Send two requests (method, url, kwargs) at the same moment; their answers in order."""
    barrier = threading.Barrier(2)
    answers: list = [None, None]

    def send(slot: int, method: str, url: str, kwargs: dict) -> None:
        barrier.wait()
        try:
            answers[slot] = sessions[slot].request(method, url, timeout=60, **kwargs)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            answers[slot] = error

    threads = [threading.Thread(target=send, args=(slot, *request))
               for slot, request in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(isinstance(a, requests.Response) for a in answers), answers
    return answers


def statuses(answers) -> tuple[int, ...]:
    return tuple(sorted(a.status_code for a in answers))


def is_outcome(answer: requests.Response, field: str) -> bool:
    body = answer.json()
    return body["resourceType"] == "OperationOutcome" and any(
        field in issue.get("expression", []) for issue in body["issue"])


def stored(app, concept: str, record_id: str):
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        return conn.execute(sa.select(t.records).where(t.records.c.concept == concept,
                                                       t.records.c.id == record_id)).first()


def history_lengths(app, concept: str, record_id: str) -> dict[tuple[str, str], tuple]:
    """(resource type, id) -> (current versionId, number of history rows) for every FHIR
    resource a record maps to."""
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        owned = conn.execute(sa.select(t.resources.c.resource_type, t.resources.c.id,
                                       t.resources.c.version_id).where(
            t.resources.c.concept == concept, t.resources.c.record_id == record_id)).all()
        out = {}
        for rtype, rid, version_id in owned:
            count = conn.execute(sa.select(sa.func.count()).select_from(t.resource_history)
                                 .where(t.resource_history.c.resource_type == rtype,
                                        t.resource_history.c.id == rid)).scalar()
            out[(rtype, rid)] = (version_id, count)
        return out


def medication_request_history(app, record_id: str) -> tuple[int, int]:
    [(version_id, count)] = [v for (rtype, _), v in history_lengths(
        app, "prescription", record_id).items() if rtype == "MedicationRequest"]
    return version_id, count


def test_two_puts_with_the_same_if_match_lose_no_update(app, live):
    base, session = live
    sessions = (session(), session())
    url = f"{base}/api/v1/prescriptions/rp0-rx"
    seen = Counter()
    for i in range(PAIRS):
        version = stored(app, "prescription", "rp0-rx").version
        headers = {"If-Match": f'W/"{version}"'}
        doses = (100 + i, 200 + i)
        answers = race(("PUT", url, {"json": prescription(0, dose=doses[0]),
                                     "headers": headers}),
                       ("PUT", url, {"json": prescription(0, dose=doses[1]),
                                     "headers": headers}), sessions)
        seen[statuses(answers)] += 1
        assert statuses(answers) == (200, 409), [a.text for a in answers]
        [winner] = [d for d, a in zip(doses, answers) if a.status_code == 200]
        [loser] = [a for a in answers if a.status_code == 409]
        assert is_outcome(loser, "If-Match")
        row = stored(app, "prescription", "rp0-rx")
        assert row.version == version + 1
        assert row.data["dose"]["value"] == winner  # the acknowledged write is the one kept
        assert medication_request_history(app, "rp0-rx") == (row.version, row.version)
    assert seen == {(200, 409): PAIRS}


def test_two_dose_changes_of_one_prescription_never_fork_it(app, live):
    base, session = live
    sessions = (session(), session())
    for i in range(PAIRS):
        url = f"{base}/api/v1/prescriptions/rp{i}-rx/dose-changes"
        answers = race(("POST", url, {"json": dose_change(f"rp{i}-a", 75)}),
                       ("POST", url, {"json": dose_change(f"rp{i}-b", 100)}), sessions)
        assert statuses(answers) == (201, 409), [a.text for a in answers]
        [winner] = [a.json()["id"] for a in answers if a.status_code == 201]
        [loser] = [a for a in answers if a.status_code == 409]
        assert loser.json()["resourceType"] == "OperationOutcome"
        successors = [rx for rx in (f"rp{i}-a", f"rp{i}-b")
                      if stored(app, "prescription", rx) is not None]
        assert successors == [winner]
        prior = stored(app, "prescription", f"rp{i}-rx")
        assert (prior.version, prior.data["status"]) == (2, "stopped")
        assert prior.data["status_reason"] == f"Replaced by dose change {winner}"
        assert medication_request_history(app, f"rp{i}-rx") == (2, 2)
        assert medication_request_history(app, winner) == (1, 1)


def test_two_discontinuations_of_one_prescription_stop_it_once(app, live):
    base, session = live
    sessions = (session(), session())
    for i in range(PAIRS):
        url = f"{base}/api/v1/prescriptions/rp{i}-rx/discontinuation"
        stops = [{"date": "2025-05-0" + day, "reason": reason, "by_id": "dr-race"}
                 for day, reason in (("1", "Remission"), ("2", "Patient preference"))]
        answers = race(("POST", url, {"json": stops[0]}), ("POST", url, {"json": stops[1]}),
                       sessions)
        assert statuses(answers) == (200, 409), [a.text for a in answers]
        [kept] = [s for s, a in zip(stops, answers) if a.status_code == 200]
        row = stored(app, "prescription", f"rp{i}-rx")
        assert (row.version, row.data["status"]) == (2, "stopped")
        assert row.data["discontinuation"] == kept
        assert medication_request_history(app, f"rp{i}-rx") == (2, 2)


def test_two_posts_of_one_new_id_store_it_once(app, live):
    base, session = live
    sessions = (session(), session())
    url = f"{base}/api/v1/prescriptions"
    for i in range(PAIRS):
        bodies = (prescription(i, f"rp{i}-new", 25), prescription(i, f"rp{i}-new", 150))
        answers = race(("POST", url, {"json": bodies[0]}), ("POST", url, {"json": bodies[1]}),
                       sessions)
        assert statuses(answers) == (201, 409), [a.text for a in answers]
        [loser] = [a for a in answers if a.status_code == 409]
        assert is_outcome(loser, "id")
        [winner] = [b for b, a in zip(bodies, answers) if a.status_code == 201]
        row = stored(app, "prescription", f"rp{i}-new")
        assert (row.version, row.data["dose"]) == (1, winner["dose"])
        assert medication_request_history(app, f"rp{i}-new") == (1, 1)


def key_rows(app, key: str) -> int:
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(t.idempotency_keys)
                            .where(t.idempotency_keys.c.key == key)).scalar()


def test_one_idempotency_key_with_one_body_twice_at_once_is_answered_once(app, live):
    base, session = live
    sessions = (session(), session())
    url = f"{base}/api/v1/prescriptions"
    for i in range(PAIRS):
        request = {"json": prescription(i, f"rp{i}-idem"),
                   "headers": {"Idempotency-Key": f"same-{i}"}}
        answers = race(("POST", url, request), ("POST", url, request), sessions)
        assert statuses(answers) == (201, 201), [a.text for a in answers]
        replayed = [a.headers.get("Idempotent-Replayed") for a in answers]
        assert sorted(replayed, key=str) == [None, "true"]  # the second one is a replay
        assert answers[0].json() == answers[1].json()
        assert answers[0].headers["Location"] == answers[1].headers["Location"]
        assert stored(app, "prescription", f"rp{i}-idem").version == 1
        assert key_rows(app, f"same-{i}") == 1
        assert medication_request_history(app, f"rp{i}-idem") == (1, 1)


def test_one_idempotency_key_with_two_bodies_at_once_stores_one_record(app, live):
    base, session = live
    sessions = (session(), session())
    url = f"{base}/api/v1/prescriptions"
    for i in range(PAIRS):
        ids = (f"rp{i}-ka", f"rp{i}-kb")
        headers = {"Idempotency-Key": f"other-{i}"}
        answers = race(("POST", url, {"json": prescription(i, ids[0]), "headers": headers}),
                       ("POST", url, {"json": prescription(i, ids[1]), "headers": headers}),
                       sessions)
        assert statuses(answers) == (201, 422), [a.text for a in answers]
        [loser] = [a for a in answers if a.status_code == 422]
        assert is_outcome(loser, "Idempotency-Key")
        [winner] = [rx for rx, a in zip(ids, answers) if a.status_code == 201]
        assert [rx for rx in ids if stored(app, "prescription", rx) is not None] == [winner]
        assert key_rows(app, f"other-{i}") == 1


def test_two_prescriptions_of_one_patient_at_once_each_see_the_other(app, live):
    """Saving a prescription checks it against the patient's others (duplicate therapy): of
    two saved at once, the second must see the first, so the finding is never missed."""
    base, session = live
    sessions = (session(), session())
    url = f"{base}/api/v1/prescriptions"
    for i in range(PAIRS):
        pair = [dict(prescription(i, f"rp{i}-{drug}", 5), drug=drug)
                for drug in ("aripiprazole", "lurasidone")]
        answers = race(("POST", url, {"json": pair[0]}), ("POST", url, {"json": pair[1]}),
                       sessions)
        assert statuses(answers) == (201, 201), [a.text for a in answers]
        with app.extensions["fhir_bridge"].engine.connect() as conn:
            issues = [data for data in conn.execute(sa.select(t.records.c.data).where(
                t.records.c.concept == "detected-issue",
                t.records.c.patient_id == f"rp{i}")).scalars()]
        both = sorted(rx["id"] for rx in pair)
        assert [d["prescription_ids"] for d in issues if d["prescription_ids"] == both] == [both]
