"""JSON Patch on /fhir: ``PATCH [type]/[id]`` with ``application/json-patch+json``.

The patch (RFC 6902) is applied to the resource as served and saved as an update of exactly
that version, through the update path of PUT: If-Match (412 when stale), validation, the
records' save (outbox, audit, subscriptions). A patch that is not one answers 400, one that
cannot be applied 422, each naming the operation by its index, and nothing is stored. fhirpy's
``patch()`` (a merge-style body as application/json, not a JSON Patch) gets 415 with the reason.
"""

from __future__ import annotations

import json
import threading

import pytest
import requests
import sqlalchemy as sa

from fhir_bridge.facade.json_patch import apply, equal
from fhir_bridge.errors import BadRequest, InvalidInput
from fhir_bridge.store import tables as t

from .conftest import FIXTURES, read_json, snapshot, token_for
from .fhir_write_support import FHIR_JSON, bridge_resources, outbox_rows, stored_record
from .live_server import serving

P01 = FIXTURES / "internal" / "p01-depression-ssri-titration.json"
P02 = FIXTURES / "internal" / "p02-bipolar-lithium.json"
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
RX = "MedicationRequest/rx-p01-rx2"
INSTRUCTION = "/dosageInstruction/0/patientInstruction"


def load(client, *documents):
    for path in documents:
        assert client.post("/api/v1/documents", json=read_json(path)).status_code == 200


def patch(client, path: str, operations, **headers):
    return client.patch(f"/fhir/{path}", data=json.dumps(operations),
                        headers={**JSON_PATCH, **headers})


def without_server_parts(resource: dict) -> dict:
    """What a client wrote: no meta (version, time) and no generated narrative."""
    return {k: v for k, v in resource.items() if k not in ("meta", "text")}


def history_length(app, rtype: str, rid: str) -> int:
    h = t.resource_history
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(h).where(
            h.c.resource_type == rtype, h.c.id == rid)).scalar()


# -- RFC 6902 itself --------------------------------------------------------------------------

DOC = {"name": "x", "list": ["a", "b"], "nested": {"n": 1, "a/b": 2, "m~n": 3}}


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("operations, expected", [
    ([{"op": "add", "path": "/new", "value": {"k": None}}], {**DOC, "new": {"k": None}}),
    ([{"op": "add", "path": "/list/1", "value": "ins"}], {**DOC, "list": ["a", "ins", "b"]}),
    ([{"op": "add", "path": "/list/-", "value": "end"}], {**DOC, "list": ["a", "b", "end"]}),
    ([{"op": "add", "path": "/name", "value": "y"}], {**DOC, "name": "y"}),  # add replaces
    ([{"op": "remove", "path": "/list/0"}], {**DOC, "list": ["b"]}),
    ([{"op": "replace", "path": "/nested/a~1b", "value": 20}],
     {**DOC, "nested": {"n": 1, "a/b": 20, "m~n": 3}}),
    ([{"op": "remove", "path": "/nested/m~0n"}], {**DOC, "nested": {"n": 1, "a/b": 2}}),
    ([{"op": "move", "from": "/name", "path": "/list/0"}],
     {"list": ["x", "a", "b"], "nested": DOC["nested"]}),
    ([{"op": "copy", "from": "/list", "path": "/again"}], {**DOC, "again": ["a", "b"]}),
    ([{"op": "test", "path": "/nested/n", "value": 1.0}, {"op": "test", "path": "/list",
                                                         "value": ["a", "b"]}], DOC),
    ([{"op": "replace", "path": "", "value": {"whole": True}}], {"whole": True}),
    ([], DOC),
])
def test_each_operation_does_what_rfc_6902_says(operations, expected):
    before = json.dumps(DOC)
    assert apply(DOC, operations) == expected
    assert json.dumps(DOC) == before  # the input is never changed


@pytest.mark.parametrize("operations, error, where", [
    ({"op": "add"}, BadRequest, "patch"),
    (["add"], BadRequest, "patch[0]"),
    ([{"path": "/name"}], BadRequest, "patch[0].op"),
    ([{"op": "test", "path": "/name", "value": "x"}, {"op": "merge", "path": "/name"}],
     BadRequest, "patch[1].op"),
    ([{"op": "add", "value": 1}], BadRequest, "patch[0].path"),
    ([{"op": "add", "path": "name", "value": 1}], BadRequest, "patch[0].path"),
    ([{"op": "add", "path": "/~2", "value": 1}], BadRequest, "patch[0].path"),
    ([{"op": "replace", "path": "/name"}], BadRequest, "patch[0].value"),
    ([{"op": "copy", "path": "/name"}], BadRequest, "patch[0].from"),
    ([{"op": "remove", "path": "/missing"}], InvalidInput, "patch[0].path"),
    ([{"op": "add", "path": "/missing/child", "value": 1}], InvalidInput, "patch[0].path"),
    ([{"op": "add", "path": "/list/3", "value": 1}], InvalidInput, "patch[0].path"),
    ([{"op": "remove", "path": "/list/01"}], InvalidInput, "patch[0].path"),
    ([{"op": "replace", "path": "/list/-", "value": 1}], InvalidInput, "patch[0].path"),
    ([{"op": "move", "from": "/nested", "path": "/nested/inner"}], InvalidInput,
     "patch[0].from"),
    ([{"op": "remove", "path": "/name"}, {"op": "test", "path": "/list/0", "value": "b"}],
     InvalidInput, "patch[1].value"),
    # beyond int()'s 4,300 digits and Python's recursion: a 4xx, never a 500
    ([{"op": "remove", "path": "/list/" + "1" * 5000}], InvalidInput, "patch[0].path"),
    ([{"op": "add", "path": "/deep", "value": _nested(900)}], BadRequest, "patch[0].value"),
])
def test_a_bad_operation_is_named_by_its_index(operations, error, where):
    with pytest.raises(error) as raised:
        apply(DOC, operations)
    assert [i.path for i in raised.value.issues] == [where]


def test_test_compares_json_values_not_python_ones():
    assert equal(1, 1.0) and equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not equal(True, 1) and not equal(0, False) and not equal("1", 1)
    assert not equal([1, 2], [2, 1]) and not equal({"a": 1}, {"a": 1, "b": 2})


def test_copies_that_outgrow_the_body_limit_are_refused():
    doubling = [{"op": "copy", "from": "", "path": f"/c{i}"} for i in range(40)]
    with pytest.raises(Exception) as raised:
        apply({"x": "y" * 100}, doubling, max_bytes=100_000)
    assert raised.value.status == 413


# -- PATCH on /fhir ---------------------------------------------------------------------------

def test_a_patch_is_saved_as_the_update_of_the_version_it_was_applied_to(app, client):
    load(client, P01)
    before = client.get(f"/fhir/{RX}")
    outbox_before = outbox_rows(app, "MedicationRequest", "rx-p01-rx2")
    answer = patch(client, RX, [
        {"op": "test", "path": "/status", "value": "active"},
        {"op": "add", "path": INSTRUCTION, "value": "Take with breakfast."},
        {"op": "add", "path": "/note", "value": [{"text": "Patched by the EHR"}]}])
    assert answer.status_code == 200, answer.json
    assert answer.headers["ETag"] == 'W/"2"' != before.headers["ETag"]
    assert answer.headers["Location"].endswith(f"/fhir/{RX}/_history/2")
    expected = without_server_parts(before.json)
    expected["dosageInstruction"][0]["patientInstruction"] = "Take with breakfast."
    expected["note"] = [{"text": "Patched by the EHR"}]
    assert without_server_parts(answer.json) == expected
    # the bridge's narrative of version 1 is not taken for the client's: it is not kept as
    # sent (no note), and version 1's description is not served for version 2
    assert "X-FHIR-Outcome" not in answer.headers
    assert answer.json.get("text") != before.json["text"]
    assert without_server_parts(client.get(f"/fhir/{RX}").json) == expected
    assert stored_record(app, "prescription", "p01-rx2")["instructions"] == \
        "Take with breakfast."
    assert history_length(app, "MedicationRequest", "rx-p01-rx2") == 2
    assert len(outbox_rows(app, "MedicationRequest", "rx-p01-rx2")) == len(outbox_before) + 1
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        audited = conn.execute(sa.select(t.audit_events.c.action, t.audit_events.c.content)
                               .where(t.audit_events.c.subtype == "patch")).all()
    assert [a.action for a in audited] == ["U"] and "rx-p01-rx2" in audited[0].content


def test_a_senders_own_narrative_stays_through_a_patch(sqlite_app):
    client = sqlite_app.test_client()
    load(client, P01)
    theirs = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                                            "Problem list entry from the EHR</div>"}
    sent = {**bridge_resources()["Condition/cond-p01-dx1"], "identifier": [], "text": theirs}
    created = client.post("/fhir/Condition", data=json.dumps(sent), headers=FHIR_JSON)
    assert created.status_code == 201, created.json
    answer = patch(client, f"Condition/{created.json['id']}",
                   [{"op": "add", "path": "/note", "value": [{"text": "Reviewed"}]}])
    assert answer.status_code == 200, answer.json
    assert answer.json["text"] == theirs and answer.json["note"] == [{"text": "Reviewed"}]


def test_if_match_must_name_the_current_version_or_gets_412(app, client):
    load(client, P01)
    change = [{"op": "add", "path": INSTRUCTION, "value": "Evening."}]
    first = patch(client, RX, change, **{"If-Match": 'W/"1"'})
    assert first.status_code == 200, first.json
    before = snapshot(app)
    stale = patch(client, RX, [{"op": "add", "path": INSTRUCTION, "value": "Noon."}],
                  **{"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json["issue"][0]["expression"] == ["If-Match"]
    assert snapshot(app) == before
    current = patch(client, RX, [{"op": "add", "path": INSTRUCTION, "value": "Noon."}],
                    **{"If-Match": first.headers["ETag"]})
    assert current.status_code == 200 and current.headers["ETag"] == 'W/"3"'


@pytest.fixture
def subscriber_app(database_url):
    """The app with subscriptions on, p01 loaded."""
    from .subscription_support import make_app

    app = make_app(database_url)
    load(app.test_client(), P01)
    yield app
    app.extensions["fhir_bridge"].engine.dispose()


def test_a_subscription_hears_of_a_patch_as_of_an_update(subscriber_app):
    from .subscription_support import subscribe, topic_subscription

    client = subscriber_app.test_client()
    sub = subscribe(client, topic_subscription("http://127.0.0.1:9/hook"))
    answer = patch(client, RX, [{"op": "replace", "path": "/status", "value": "on-hold"}])
    assert answer.status_code == 200, answer.json
    e = t.subscription_events.c
    with subscriber_app.extensions["fhir_bridge"].engine.connect() as conn:
        heard = conn.execute(sa.select(e.focus_type, e.focus_id, e.operation).where(
            e.subscription_id == sub["id"])).all()
    assert ("MedicationRequest", "rx-p01-rx2", "update") in [tuple(h) for h in heard]


@pytest.mark.parametrize("operations, status, where", [
    ([{"op": "replace", "path": "/status", "value": "active"}, {"op": "jump", "path": "/"}],
     400, "patch[1].op"),
    ([{"op": "replace", "path": "status", "value": "stopped"}], 400, "patch[0].path"),
    ({"status": "stopped"}, 400, "patch"),
    ([{"op": "remove", "path": "/nosuchelement"}], 422, "patch[0].path"),
    ([{"op": "add", "path": INSTRUCTION, "value": "Night."},
      {"op": "test", "path": "/status", "value": "stopped"}], 422, "patch[1].value"),
    ([{"op": "replace", "path": "/status", "value": "paused"}], 422,
     "MedicationRequest.status"),
    ([{"op": "replace", "path": "/id", "value": "rx-p01-rx1"}], 400, "MedicationRequest.id"),
    ([{"op": "remove", "path": "/subject"}], 422, "MedicationRequest.subject"),
])
def test_a_patch_that_cannot_be_made_says_where_and_changes_nothing(sqlite_app, operations,
                                                                      status, where):
    client = sqlite_app.test_client()
    load(client, P01)
    before = snapshot(sqlite_app)
    answer = patch(client, RX, operations)
    assert answer.status_code == status, answer.json
    assert answer.json["resourceType"] == "OperationOutcome"
    assert where in [e for i in answer.json["issue"] for e in i.get("expression", [])], \
        answer.json
    assert snapshot(sqlite_app) == before


@pytest.mark.parametrize("path, status", [
    ("Goal/goal-p01-goal-sleep", 405),  # part of its CarePlan
    ("Flag/nothing", 405),  # derived: never written through /fhir
    ("Observation/asmt-p01-phq9-w0.item-1", 405),  # a part of another resource
    ("MedicationRequest/rx-nobody", 404),
])
def test_what_cannot_be_updated_cannot_be_patched(sqlite_app, path, status):
    client = sqlite_app.test_client()
    load(client, P01)
    answer = patch(client, path, [{"op": "add", "path": "/note", "value": [{"text": "x"}]}])
    assert answer.status_code == status, answer.json
    assert answer.json["resourceType"] == "OperationOutcome"


def test_a_deleted_resource_is_gone_not_patched(sqlite_app):
    client = sqlite_app.test_client()
    load(client, P01)
    assert client.delete("/fhir/Observation/se-p01-se1").status_code == 204
    answer = patch(client, "Observation/se-p01-se1", [{"op": "remove", "path": "/note"}])
    assert answer.status_code == 410


def test_a_patch_needs_json_patch_and_the_update_scope(sqlite_app):
    client = sqlite_app.test_client()
    load(client, P01, P02)
    before = snapshot(sqlite_app)
    merge = client.patch(f"/fhir/{RX}", json={"status": "stopped"})
    assert merge.status_code == 415
    assert merge.json["issue"][0]["expression"] == ["Content-Type"]
    change = [{"op": "replace", "path": "/status", "value": "stopped"}]
    reader = {"Authorization": "Bearer " + token_for(sqlite_app, "system/*.rs")}
    assert patch(client, RX, change, **reader).status_code == 403
    other = {"Authorization": "Bearer " + token_for(
        sqlite_app, "patient/MedicationRequest.rus", patient="pat-p02")}
    assert patch(client, RX, change, **other).status_code == 404
    assert snapshot(sqlite_app) == before
    mine = {"Authorization": "Bearer " + token_for(
        sqlite_app, "patient/MedicationRequest.u", patient="pat-p01")}
    assert patch(client, RX, change, **mine).status_code == 200


def test_the_capability_statement_lists_patch_exactly_where_update_is(sqlite_app):
    rest = sqlite_app.test_client().get("/fhir/metadata").json["rest"][0]
    codes = {r["type"]: {i["code"] for i in r["interaction"]} for r in rest["resource"]}
    assert {rtype for rtype, c in codes.items() if "patch" in c} == \
        {rtype for rtype, c in codes.items() if "update" in c and rtype != "Subscription"}
    assert {"Patient", "MedicationRequest", "Observation", "CarePlan"} <= \
        {rtype for rtype, c in codes.items() if "patch" in c}
    for rtype in ("Goal", "Flag", "DetectedIssue", "Subscription"):
        assert "patch" not in codes.get(rtype, set()), rtype


# -- over real HTTP ---------------------------------------------------------------------------

@pytest.fixture
def served(app):
    client = app.test_client()
    load(client, P01)
    with serving(app) as base:
        yield base, token_for(app, ttl_seconds=3600)


def test_fhirpys_merge_style_patch_is_refused_with_the_reason(served):
    from fhirpy import SyncFHIRClient
    from fhirpy.base.exceptions import OperationOutcome

    base, token = served
    fhir = SyncFHIRClient(f"{base}/fhir", authorization=f"Bearer {token}")
    with pytest.raises(OperationOutcome) as raised:
        fhir.patch("MedicationRequest", "rx-p01-rx2", status="stopped")
    assert "application/json-patch+json" in str(raised.value)
    assert fhir.reference("MedicationRequest", "rx-p01-rx2").to_resource()["status"] == \
        "active"


def test_two_patches_at_once_lose_no_change(app, served):
    """Without If-Match each patch is applied to the version it read: of two at once either
    both land, one after the other, or the second is told to apply it again (409); no
    acknowledged change is ever lost."""
    base, token = served
    auth = {"Authorization": f"Bearer {token}"}
    sessions = [requests.Session() for _ in range(2)]
    for s in sessions:
        s.headers.update({**auth, **JSON_PATCH})
    url = f"{base}/fhir/{RX}"
    start = sessions[0].patch(url, timeout=30, data=json.dumps(
        [{"op": "add", "path": "/note", "value": [{"text": "start"}]}]))
    assert start.status_code == 200, start.text
    acknowledged, statuses = ["start"], []
    for i in range(15):
        barrier = threading.Barrier(2)
        answers: list = [None, None]
        texts = (f"pair {i} first", f"pair {i} second")

        def send(slot: int) -> None:
            body = json.dumps([{"op": "add", "path": "/note/-", "value": {"text": texts[slot]}}])
            barrier.wait(timeout=30)
            answers[slot] = sessions[slot].patch(url, data=body, timeout=60)

        threads = [threading.Thread(target=send, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        statuses.append(tuple(sorted(a.status_code for a in answers)))
        assert statuses[-1] in ((200, 200), (200, 409)), [a.text for a in answers]
        acknowledged += [text for text, a in zip(texts, answers) if a.status_code == 200]
    final = requests.get(url, headers=auth, timeout=30)
    assert sorted(n["text"] for n in final.json()["note"]) == sorted(acknowledged)
    version = int(final.headers["ETag"].removeprefix("W/").strip('"'))
    assert version == len(acknowledged) + 1  # the load, then one version per change
    assert history_length(app, "MedicationRequest", "rx-p01-rx2") == version
    print("pairs:", {k: statuses.count(k) for k in set(statuses)})


def test_a_value_nested_within_the_limit_is_added():
    assert apply(DOC, [{"op": "add", "path": "/deep", "value": _nested(60)}])["deep"] == \
        _nested(60)
