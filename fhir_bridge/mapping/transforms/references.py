"""Identity and references: identifiers, references to the bridge's resources and to people."""

from __future__ import annotations

from .registry import transform


@transform("identifier")
def _identifier():
    """The internal id <-> Identifier list [{system: <base>/<concept>, value: id}]."""
    def forward(v, a, c):
        return [{"system": c.mapper.identifier_system(a["concept"]), "value": v}]

    def reverse(v, a, c):
        system = c.mapper.identifier_system(a["concept"])
        for identifier in v or []:
            if identifier.get("system") == system:
                return identifier.get("value")
        if a.get("or_first_foreign"):  # an EHR's own identifier (e.g. its MRN) stands in
            bridge_systems = c.mapper.identifier_system("")
            for identifier in v or []:
                if not str(identifier.get("system", "")).startswith(bridge_systems) \
                        and identifier.get("value"):
                    return identifier["value"]
        return None

    return forward, reverse


@transform("reference")
def _reference():
    """An internal id of concept args.kind <-> Reference to the resource it maps to."""
    def forward(v, a, c):
        return {"reference": c.mapper.reference(a["kind"], v)}

    def reverse(v, a, c):
        return c.mapper.internal_id(a["kind"], v.get("reference"), c)

    return forward, reverse


@transform("references")
def _references():
    def forward(v, a, c):
        return [{"reference": c.mapper.reference(a["kind"], x)} for x in v] or None

    def reverse(v, a, c):
        ids = [c.mapper.internal_id(a["kind"], r.get("reference"), c) for r in v]
        return [i for i in ids if i is not None]  # external ones: kept as sent (foreign)

    return forward, reverse


PERSON_KINDS = {"patient": "patient", "practitioner": "practitioner", "caregiver": "caregiver"}


def _person_forward(v, c):
    return {"reference": c.mapper.reference(PERSON_KINDS[v["type"]], v["id"])}


def _person_reverse(ref, c):
    reference = ref.get("reference") or ""
    for person_type, kind in PERSON_KINDS.items():
        if reference.startswith(c.mapper.resource_type(kind) + "/"):
            found = c.mapper.internal_id(kind, reference, c)
            return {"type": person_type, "id": found} if found is not None else None
    c.unmapped.append(("reference", f"{reference!r} is not a patient, practitioner or caregiver"))
    return None


@transform("person_ref")
def _person_ref():
    """{type: patient|practitioner|caregiver, id} <-> Reference."""
    return (lambda v, a, c: _person_forward(v, c)), (lambda v, a, c: _person_reverse(v, c))


@transform("person_refs")
def _person_refs():
    def reverse(v, a, c):
        return [p for p in (_person_reverse(r, c) for r in v) if p is not None]

    return (lambda v, a, c: [_person_forward(x, c) for x in v] or None), reverse
