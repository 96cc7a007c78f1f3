"""Console test helpers: sign in through the login form, read a page's CSRF token, make a
dead letter the way the outbox makes one (a push to a server that is not there)."""

from __future__ import annotations

import re
import socket

import sqlalchemy as sa

from fhir_bridge.store import tables as t
from fhir_bridge.sync.client import FhirClient
from fhir_bridge.sync.push import Pusher
from fhir_bridge.sync.targets import target_from_config

from .conftest import token_for

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    return CSRF.search(page).group(1)


def sign_in(client, app, *scopes: str) -> None:
    page = client.get("/console/login").get_data(as_text=True)
    response = client.post("/console/login", data={
        "token": token_for(app, *scopes), "csrf_token": csrf_of(page)})
    assert response.status_code == 302, response.get_data(as_text=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_dead_letters(bridge) -> list[int]:
    """One push of one batch to a closed loopback port with max_attempts 1: its rows are
    dead-lettered with the reason (the connection refused)."""
    base = f"http://127.0.0.1:{closed_port()}/fhir"
    config = dict(bridge.config)
    config["sync"] = dict(config["sync"], targets={"gone": {"base_url": base}}, target="gone",
                          max_attempts=1, batch_size=6)
    client = FhirClient(base, backoff_base=0.01, backoff_max=0.02, max_retries=0)
    try:
        Pusher(bridge.engine, client, target_from_config(config), "console-test",
               transactions=True).push_all(max_batches=1)
    finally:
        client.close()
    with bridge.engine.connect() as conn:
        return [seq for (seq,) in conn.execute(sa.select(t.outbox.c.seq).where(
            t.outbox.c.status == "dead").order_by(t.outbox.c.seq))]
