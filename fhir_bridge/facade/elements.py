"""``_summary`` and ``_elements`` (FHIR R4 search.html#summary, #elements): the parts of a
resource a client asked for, tagged SUBSETTED.

Which elements are "summary" and which are mandatory comes from the element definitions of the
FHIR models the bridge validates with (fhir.resources R4B: ``summary_element_property`` is the
base definition's ``isSummary``; a required field or ``element_required`` its ``min = 1``).
Backbone elements are walked (``Observation.component.referenceRange`` is not summary); data
types (HumanName, CodeableConcept, ...) are kept whole, as every child of a summary data type
element is summary.
``modifierExtension`` is always kept: dropping a modifier would change what the rest means.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.backboneelement import BackboneElement

from ..fhir.validate import element_class

#: The tag a subsetted resource carries: code SUBSETTED of the HL7 v3 ObservationValue code
#: system (THO 7.0.1, package/CodeSystem-v3-ObservationValue.json in
#: shared/reference/fhir-packages/hl7.terminology.r4-7.0.1.tgz).
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
             "code": "SUBSETTED", "display": "subsetted"}
SUMMARY_MODES = ("true", "text", "data", "count", "false")
ALWAYS = ("resourceType", "id", "meta", "modifierExtension")


@dataclass(frozen=True)
class Element:
    name: str          # the JSON name: effectiveDateTime
    base: str          # the name _elements uses: effective (for effective[x])
    summary: bool
    required: bool
    backbone: Any      # the model class of a backbone element, else None


@lru_cache(maxsize=None)
def shape(type_name: str, cls: Any = None) -> dict[str, Element]:
    """JSON name -> Element for a resource type (or a backbone element's model class)."""
    cls = cls or get_fhir_model_class(type_name)
    out = {}
    for field in cls.model_fields.values():
        extra = field.json_schema_extra or {}
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        name = field.alias
        out[name] = Element(name, extra.get("one_of_many") or name,
                            bool(extra.get("summary_element_property")),
                            bool(field.is_required() or extra.get("element_required")
                                 or extra.get("one_of_many_required")),
                            _backbone(field.annotation))
    return out


def _backbone(annotation: Any) -> Any:
    """The backbone element class behind a field's annotation, None for data types."""
    klass = element_class(annotation)
    return klass if isinstance(klass, type) and issubclass(klass, BackboneElement) else None


def element_names(resource_type: str) -> set[str]:
    """What ``_elements`` may name for a type: its top-level elements (choices by base)."""
    return {e.base for e in shape(resource_type).values()}


def _keep(resource: dict, wanted) -> dict:
    """The keys ``wanted(name)`` says yes to; a primitive's ``_name`` follows ``name``."""
    return {k: v for k, v in resource.items()
            if k in ALWAYS or wanted(k.removeprefix("_") if k.startswith("_") else k)}


def _summary_of(node: dict, elements: dict[str, Element]) -> dict:
    out = {}
    for key, value in node.items():
        name = key.removeprefix("_") if key.startswith("_") else key
        element = elements.get(name)
        if key in ALWAYS:
            out[key] = value
        elif element is None or not (element.summary or element.required):
            continue
        elif element.backbone is not None:
            inner = shape(element.backbone.__name__, element.backbone)
            out[key] = ([_summary_of(v, inner) for v in value] if isinstance(value, list)
                        else _summary_of(value, inner))
        else:
            out[key] = value
    return out


def _tagged(resource: dict) -> dict:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"
            or t.get("system") != SUBSETTED["system"]]
    meta["tag"] = [*tags, dict(SUBSETTED)]
    out = {"resourceType": resource["resourceType"]}
    if "id" in resource:
        out["id"] = resource["id"]
    out["meta"] = meta
    out.update((k, v) for k, v in resource.items() if k not in out)
    return out


@dataclass(frozen=True)
class Subset:
    """What a request asked for: ``summary`` (true|text|data, or None) or ``elements``
    (top-level names per type; ``None`` as the key means the searched/read type)."""

    summary: str | None = None
    elements: tuple[tuple[str | None, str], ...] = ()

    def __bool__(self) -> bool:
        return self.summary is not None or bool(self.elements)

    def apply(self, resource: dict, primary: bool = True) -> dict:
        """The resource as asked for, tagged SUBSETTED when anything was left out. Named
        ``_elements`` apply to the primary type (unqualified names) and to the types they
        name (``Practitioner.name``); other included resources come whole."""
        rtype = resource.get("resourceType")
        if self.summary == "true":
            return _mark(resource, _summary_of(resource, shape(rtype)))
        if self.summary == "data":
            return _mark(resource, {k: v for k, v in resource.items() if k != "text"})
        if self.summary == "text":
            required = {e.name for e in shape(rtype).values() if e.required}
            return _mark(resource, _keep(resource, lambda n: n == "text" or n in required))
        if not self.elements:
            return resource
        names = {name for qualifier, name in self.elements
                 if qualifier == rtype or (qualifier is None and primary)}
        if not names:
            return resource
        elements = shape(rtype)
        return _mark(resource, _keep(resource, lambda n: n in elements and (
            elements[n].base in names or elements[n].required)))


def _mark(original: dict, subset: dict) -> dict:
    """Tag what lost something; a resource that had nothing to leave out stays as it was."""
    return original if subset == original else _tagged(subset)


def parse_elements(value: str, resource_type: str,
                   known_type: typing.Callable[[str], bool]) -> list[tuple[str | None, str]]:
    """``_elements=status,code`` or ``Observation.status``; ValueError names a bad item."""
    out = []
    for item in (part.strip() for part in value.split(",")):
        qualifier, _, name = item.rpartition(".")
        target = qualifier or resource_type
        if name == "resourceType" and not qualifier:  # always there; some clients name it
            continue
        if item.startswith("-"):
            raise ValueError(f"{item!r}: leaving elements out (-name) is not supported; "
                             "name the ones wanted")
        if not name or (qualifier and ("." in qualifier or not known_type(qualifier))):
            raise ValueError(f"{item!r} is not an element or Type.element")
        if name not in element_names(target):
            raise ValueError(f"{target} has no top-level element {name!r}")
        out.append((qualifier or None, name))
    return out

