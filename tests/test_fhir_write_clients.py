"""/fhir writes over real HTTP: a maintained third-party FHIR client (fhirpy) creates,
updates and deletes, and two clients updating the same version at once: one wins (200), the
other gets 412, never a 500 or a lost update; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest
import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome as FhirpyOutcome

from .conftest import FIXTURES, read_json, token_for
from .fhir_write_support import bridge_resources, stored_record
from .live_server import serving
from .test_races import race

P01 = FIXTURES / "internal" / "p01-depression-ssri-titration.json"
PAIRS = 15


@pytest.fixture
def live(app):
    """(base URL, bearer header) of the app over real HTTP, holding fixture p01."""
    headers = {"Authorization": "Bearer " + token_for(app, ttl_seconds=3600)}
    with serving(app) as base:
        loaded = requests.post(f"{base}/api/v1/documents", json=read_json(P01),
                               headers=headers, timeout=120)
        assert loaded.status_code == 200, loaded.text
        yield base, headers


def test_fhirpy_creates_updates_and_deletes_through_fhir(app, live):
    base, headers = live
    client = SyncFHIRClient(f"{base}/fhir", authorization=headers["Authorization"])
    effect = {k: v for k, v in bridge_resources()["Observation/se-p01-se1"].items()
              if k not in ("id", "identifier")}
    resource = client.resource("Observation", **effect)
    resource.save()  # POST
    assert resource.id and resource.id.startswith("se-")
    assert resource["meta"]["versionId"] == "1"
    record_id = resource.id.removeprefix("se-")
    assert stored_record(app, "side-effect", record_id)["patient_id"] == "p01"

    resource["effectivePeriod"] = {"start": "2025-03-06"}
    resource.save()  # PUT
    assert resource["meta"]["versionId"] == "2"
    again = client.reference("Observation", resource.id).to_resource()
    assert again["effectivePeriod"]["start"] == "2025-03-06"
    assert stored_record(app, "side-effect", record_id)["onset_date"] == "2025-03-06"

    found = client.resources("Observation").search(_id=resource.id).fetch_all()
    assert [r.id for r in found] == [resource.id]
    resource.delete()  # DELETE
    assert stored_record(app, "side-effect", record_id) is None
    assert client.resources("Observation").search(_id=resource.id).fetch_all() == []
    gone = requests.get(f"{base}/fhir/Observation/{resource.id}", headers=headers, timeout=30)
    assert gone.status_code == 410

    patient = client.reference("Patient", "pat-p01").to_resource()
    with pytest.raises(FhirpyOutcome):
        patient.delete()  # a patient is never deleted: 405 with the reason
    assert stored_record(app, "patient", "p01") is not None


def test_two_puts_with_the_same_if_match_one_wins_the_other_gets_412(app, live):
    base, headers = live
    sessions = (requests.Session(), requests.Session())
    for s in sessions:
        s.headers.update({**headers, "Content-Type": "application/fhir+json"})
    url = f"{base}/fhir/Observation/se-p01-se1"
    seen = Counter()
    for i in range(PAIRS):
        current = sessions[0].get(url, timeout=30)
        version = current.headers["ETag"]
        bodies = [{**current.json(), "effectivePeriod": {"start": f"2025-03-{day:02d}"}}
                  for day in (1 + i % 14, 15 + i % 14)]
        answers = race(*[("PUT", url, {"json": body, "headers": {"If-Match": version}})
                         for body in bodies], sessions)
        codes = tuple(sorted(a.status_code for a in answers))
        seen[codes] += 1
        assert codes == (200, 412), [a.text for a in answers]
        winner = next(a for a in answers if a.status_code == 200)
        loser = next(a for a in answers if a.status_code == 412)
        assert loser.json()["issue"][0]["expression"] == ["If-Match"]
        now = sessions[0].get(url, timeout=30)
        assert now.headers["ETag"] == winner.headers["ETag"]
        won = bodies[answers.index(winner)]["effectivePeriod"]["start"]
        assert now.json()["effectivePeriod"]["start"] == won  # the winner's change, not lost
    assert seen == {(200, 412): PAIRS}
