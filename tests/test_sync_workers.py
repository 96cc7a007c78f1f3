"""Several sync workers share one outbox on PostgreSQL without sending any row twice."""

import threading
from collections import Counter

import pytest

from fhir_bridge.app import create_app
from fhir_bridge.cli import load_demo
from fhir_bridge.store import outbox

from .test_sync_durability import drain
from .test_sync_push_hapi import local_counts, make_pusher, remote_counts

pytestmark = pytest.mark.hapi


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_two_workers_against_postgresql_send_each_row_once(database_url, hapi_url):
    setup = create_app({"database_url": database_url})
    load_demo(setup)
    sent: list[Counter] = [Counter(), Counter()]
    pushers = []
    for index in range(2):
        # each worker its own app and connection pool, as separate processes would have
        bridge = create_app({"database_url": database_url}).extensions["fhir_bridge"]
        pusher = make_pusher(bridge, hapi_url, worker=f"worker-{index}", batch_size=10)
        real = pusher.client.transaction

        def recording(bundle, real=real, seen=sent[index]):
            answer = real(bundle)  # a refused transaction writes nothing: count only answers
            for entry in bundle["entry"]:
                seen[entry["request"]["url"]] += 1
            return answer

        pusher.client.transaction = recording
        pushers.append(pusher)
    threads = [threading.Thread(target=drain, args=(p,)) for p in pushers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    both = sent[0] + sent[1]
    assert sent[0] and sent[1], "both workers took part"
    assert [url for url, n in both.items() if n > 1] == []
    bridge = setup.extensions["fhir_bridge"]
    assert outbox.status_counts(bridge.engine) == {"done": sum(local_counts(bridge).values())}
    assert remote_counts(hapi_url) == local_counts(bridge)
    for pusher in pushers:
        pusher.engine.dispose()
    bridge.engine.dispose()
