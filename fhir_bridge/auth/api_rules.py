"""Which scopes each internal-API endpoint needs.

A concept's FHIR resource type is the ``resource`` of its mapping (prescription ->
MedicationRequest, assessment -> Observation, ...). Reading one record is ``r``, listing ``s``,
creating ``c``, updating ``u``; a dose change needs ``c`` and ``u`` on MedicationRequest, a
discontinuation ``u``; score trends ``r`` and ``s`` on Observation and ``s`` on
MedicationRequest (they weigh the prescriptions too). Writing an adherence report also updates
its prescription (the adherence extension), so it needs ``u`` on MedicationRequest as well.
Importing a document needs ``c`` and ``u`` on the type of every collection it holds (records
may be new or replace stored ones); that is checked by the view once the body is read.

An endpoint of the records blueprint that is not listed here is refused (403): a new view
must be given its rule.
"""

from __future__ import annotations

from flask import current_app, request

from ..errors import Forbidden, MappingError
from ..model import Concept, concept_by_collection
from .principal import Principal

#: endpoint -> interactions on the collection's resource type.
COLLECTION_RULES = {"records.list_records": "s", "records.read": "r", "records.as_fhir": "r",
                    "records.create": "c", "records.update": "u"}
#: endpoint -> (resource type, interactions) that do not depend on the URL.
FIXED_RULES = {
    "records.create_dose_change": (("MedicationRequest", "cu"),),
    "records.create_discontinuation": (("MedicationRequest", "u"),),
    "records.score_trends": (("Observation", "rs"), ("MedicationRequest", "s")),
}
#: Checked in the view, which reads the body first.
IN_VIEW = frozenset({"records.import_document"})
#: Writing a record of this concept also updates records of these types.
ALSO_WRITES = {"adherence": ("MedicationRequest",)}


def resource_type(concept: Concept) -> str:
    """The concept's FHIR resource type; a concept without a mapping is refused (403)."""
    try:
        return current_app.extensions["fhir_bridge"].mapper.resource_type(concept.name)
    except MappingError:
        raise Forbidden(f"no resource type for {concept.collection}, so no scope allows "
                        "it") from None


def require_write(principal: Principal, concept: Concept, interactions: str) -> None:
    principal.require(resource_type(concept), *interactions)
    for other in ALSO_WRITES.get(concept.name, ()):
        principal.require(other, "u")


def check_request(principal: Principal) -> None:
    """The scope check of a records-API request (other blueprints check in their views)."""
    endpoint = request.endpoint
    if endpoint is None or not endpoint.startswith("records."):
        return
    if endpoint in IN_VIEW:
        return
    if endpoint in COLLECTION_RULES:
        concept = concept_by_collection((request.view_args or {}).get("collection_name", ""))
        if concept is None:
            return  # the view answers 404 for an unknown collection
        interactions = COLLECTION_RULES[endpoint]
        if interactions in ("c", "u"):
            require_write(principal, concept, interactions)
        else:
            principal.require(resource_type(concept), *interactions)
        return
    if endpoint in FIXED_RULES:
        for resource, interactions in FIXED_RULES[endpoint]:
            principal.require(resource, *interactions)
        return
    raise Forbidden(f"no access rule for {endpoint}")


def check_document(principal: Principal, document: object) -> None:
    """c and u on the resource type of every collection a document holds."""
    if not isinstance(document, dict):
        return  # the loader reports it
    for collection in document:
        concept = concept_by_collection(collection)
        if concept is not None:
            require_write(principal, concept, "cu")
