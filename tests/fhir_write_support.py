"""What the /fhir write tests share: the resources clients send (the bridge's own FHIR of the
fixtures, and the hand-made foreign EHR resources of fixtures/foreign/), the pull's parse of
the same resource, and the record the store holds."""

from __future__ import annotations

import copy

import sqlalchemy as sa

from fhir_bridge.fhir import jsonio, references
from fhir_bridge.mapping.foreign import parse_foreign
from fhir_bridge.store import tables as t

from .conftest import FIXTURES, read_json

FHIR_JSON = {"Content-Type": "application/fhir+json"}
#: Types the bridge derives or writes itself: not sent by clients.
DERIVED = ("DetectedIssue", "Flag", "Provenance")
#: Dependency order of the foreign fixtures (what a resource names comes first).
ORDER = ("Patient", "Practitioner", "RelatedPerson", "Condition", "MedicationRequest",
         "Observation", "CareTeam", "CarePlan")


def client_copy(resource: dict) -> dict:
    """The resource as a client sends it: no server-owned meta or generated narrative."""
    out = copy.deepcopy(resource)
    out.pop("text", None)
    meta = {k: v for k, v in (out.pop("meta", None) or {}).items()
            if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    return out


def bridge_resources(name: str = "p01-depression-ssri-titration") -> dict[str, dict]:
    """"Type/id" -> resource of a fixture's FHIR Bundle, as a client would send it back."""
    bundle = read_json(FIXTURES / "fhir" / f"{name}.json")
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}": client_copy(e["resource"])
            for e in bundle["entry"] if e["resource"]["resourceType"] not in DERIVED}


def foreign_resources() -> list[dict]:
    """fixtures/foreign/ (the types the bridge stores), in dependency order."""
    found = [read_json(path) for path in sorted((FIXTURES / "foreign").glob("*.json"))]
    return sorted((r for r in found if r["resourceType"] in ORDER),
                  key=lambda r: ORDER.index(r["resourceType"]))


def is_panel_part(resource: dict) -> bool:
    """A panel of fixtures/foreign/ or one of its members (they are written together)."""
    return resource["id"].startswith(("ehr-phq9-", "ehr-auditc-"))


def second_ssri() -> dict:
    """The EHR's fluoxetine order beside fixtures/foreign/'s sertraline (RxNorm 4493,
    ../shared/reference/codes.csv): a duplicate SSRI therapy."""
    rx = read_json(FIXTURES / "foreign" / "MedicationRequest-ehr-rx-1.json")
    rx.update(id="ehr-rx-2", identifier=[{"system": "http://hospital.example.org/fhir/sid/order",
                                          "value": "ORD-5532"}])
    rx["medicationCodeableConcept"] = {"coding": [{
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "4493",
        "display": "fluoxetine"}], "text": "fluoxetine 20 MG Oral Capsule"}
    rx["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 20
    return rx


def localized(resource: dict, ids: dict[str, str]) -> dict:
    """The resource with its references moved to the ids the bridge gave ("Type/id" ->
    "Type/local-id"), as the pull localizes what it reads."""
    out = copy.deepcopy(resource)
    references.rewrite(out, lambda ref: ids.get(ref, ref))
    return out


def pull_parse(app, resource: dict, resolve=None) -> tuple[str, dict]:
    """(concept, record) the pull's parser makes of a localized resource with its local id."""
    mapper = app.extensions["fhir_bridge"].mapper
    mapping = mapper.classify(resource)
    record_id = resource["id"].removeprefix(f"{mapping.id_prefix}-")
    found = parse_foreign(mapper, resource, resolve=resolve, record_id=record_id)
    return found.concept, found.record


def stored_record(app, concept: str, record_id: str) -> dict | None:
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        return conn.execute(sa.select(t.records.c.data).where(
            t.records.c.concept == concept, t.records.c.id == record_id)).scalar()


def served_key(location: str) -> str:
    """"Type/id" of a Location (…/fhir/Type/id/_history/n)."""
    path = location.split("/fhir/", 1)[1]
    return "/".join(path.split("/")[:2])


def outbox_rows(app, resource_type: str, resource_id: str) -> list[str]:
    o = t.outbox
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        return list(conn.execute(sa.select(o.c.operation).where(
            o.c.resource_type == resource_type, o.c.resource_id == resource_id)
            .order_by(o.c.seq)).scalars())


def dumps(body) -> bytes:
    return jsonio.dumpb(body)
