"""Named transforms used by the mapping files: each converts one value both ways.

A transform is a pair of functions ``forward(value, args, ctx) -> fhir`` and
``reverse(fhir, args, ctx) -> value``. ``None`` means "nothing to write". When a rule names
several internal fields, ``value`` is a tuple and ``reverse`` returns a tuple of the same length.
These are the shared partials of the mapping language; mapping files say which one to use.
The modules of this package hold them by subject; importing the package registers them all.
"""

from __future__ import annotations

from . import (activities, adherence, answers, codes, datatypes, medication,  # noqa: F401
               observations, plans, quantities, references, responses, scalars,
               scoring, values, vocabulary)
from .codes import coded, decoded
from .quantities import internal_unit, ucum_quantity
from .registry import TRANSFORMS, UCUM, Transform, get_transform, transform

__all__ = ["TRANSFORMS", "UCUM", "Transform", "coded", "decoded", "get_transform",
           "internal_unit", "transform", "ucum_quantity"]
