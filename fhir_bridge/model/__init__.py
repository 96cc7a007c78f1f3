"""The internal medication-management model: one marshmallow schema per concept."""

from .registry import CONCEPTS, Concept, concept_by_collection, concept_by_name

__all__ = ["CONCEPTS", "Concept", "concept_by_collection", "concept_by_name"]
