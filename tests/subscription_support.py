"""Helpers for the subscription tests: the app with an allow-list for 127.0.0.1, a receiver,
a clock the tests move, subscriptions and dose changes through the APIs."""

from __future__ import annotations

import datetime as dt
import random

import pytest
import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.store import tables as t
from fhir_bridge.subscriptions.worker import Deliverer

from .conftest import FIXTURES, FullAccessClient, read_json
from .subscription_receiver import Receiver

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
MEDICATION_CHANGE = "urn:fhir-bridge:topic:medication-change"
SETTINGS = {"allowed_endpoints": ["http://127.0.0.1:*/hook"], "retry_base_seconds": 2,
            "retry_cap_seconds": 60}


def make_app(database_url: str, **settings):
    app = create_app({"database_url": database_url,
                      "subscriptions": dict(SETTINGS, **settings)})
    app.test_client_class = FullAccessClient
    return app


@pytest.fixture
def app(database_url):
    """Overrides conftest's app: the same, with notifications allowed to 127.0.0.1."""
    app = make_app(database_url)
    yield app
    app.extensions["fhir_bridge"].engine.dispose()


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


class Clock:
    """The delivery worker's clock: starts now, moves only when a test says so."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def deliverer(app, clock: Clock, worker: str = "worker-1", seed: int = 7) -> Deliverer:
    bridge = app.extensions["fhir_bridge"]
    return Deliverer(bridge.engine, bridge.config, worker=worker, clock=clock,
                     rng=random.Random(seed))


def load(client, *names: str) -> None:
    for name in names:
        path = next((FIXTURES / "internal").glob(f"{name}-*.json"))
        response = client.post("/api/v1/documents", json=read_json(path))
        assert response.status_code == 200, response.json


def topic_subscription(endpoint: str, topic: str = MEDICATION_CHANGE,
                       filters: tuple[str, ...] = ("MedicationRequest?patient=Patient/pat-p01",),
                       content: str | None = "id-only", headers: tuple[str, ...] = (),
                       heartbeat: int | None = None, max_count: int | None = None) -> dict:
    channel: dict = {"type": "rest-hook", "endpoint": endpoint,
                     "payload": "application/fhir+json"}
    extensions = []
    if heartbeat is not None:
        extensions.append({"url": BACKPORT + "backport-heartbeat-period",
                           "valueUnsignedInt": heartbeat})
    if max_count is not None:
        extensions.append({"url": BACKPORT + "backport-max-count", "valuePositiveInt": max_count})
    if extensions:
        channel["extension"] = extensions
    if content is not None:
        channel["_payload"] = {"extension": [{"url": BACKPORT + "backport-payload-content",
                                              "valueCode": content}]}
    if headers:
        channel["header"] = list(headers)
    sub = {"resourceType": "Subscription",
           "meta": {"profile": [BACKPORT + "backport-subscription"]},
           "status": "requested", "reason": "Dr. Okafor's practice follows this patient",
           "criteria": topic, "channel": channel}
    if filters:
        sub["_criteria"] = {"extension": [{"url": BACKPORT + "backport-filter-criteria",
                                           "valueString": f} for f in filters]}
    return sub


def subscribe(client, body: dict) -> dict:
    response = client.post("/fhir/Subscription", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json




def dose_change(client, prior: str, new: str, dose: float = 150) -> None:
    response = client.post(f"/api/v1/prescriptions/{prior}/dose-changes", json={
        "id": new, "dose": {"value": dose, "unit": "mg"}, "effective_date": "2025-04-28",
        "reason": "Partial response", "changed_by_id": "dr-lindqvist",
        "authored_on": "2025-04-28T09:00:00-04:00"})
    assert response.status_code == 201, response.json


def dose_changes(client, count: int, start: int = 2, patient: str = "p01") -> list[str]:
    """Titrate p01's sertraline ``count`` times: rx2 -> rx3 -> ... Returns the new ids."""
    ids = []
    for step in range(count):
        prior, new = f"{patient}-rx{start + step}", f"{patient}-rx{start + step + 1}"
        dose_change(client, prior, new, 100 + 25 * (step + 1))
        ids.append(new)
    return ids


def delivery_row(app, sub_id: str):
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        return conn.execute(sa.select(t.subscription_delivery).where(
            t.subscription_delivery.c.subscription_id == sub_id)).one()


def audit_rows(app, subtype: str = "notify") -> list:
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        return conn.execute(sa.select(t.audit_events).where(
            t.audit_events.c.subtype == subtype).order_by(t.audit_events.c.recorded)).all()
