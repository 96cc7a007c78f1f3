"""Field types shared by the internal record schemas."""

from __future__ import annotations

import datetime as dt
import math
import re

from marshmallow import Schema, ValidationError, fields, missing, post_load, validate

from ..fhir import jsonio
from ..mapping.terminology import local_code, table_keys
from .ranges import bounds, plain

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,47}$"
ID_MESSAGE = ("must be 1-48 characters: letters, digits, '-' and '.', starting with a letter or "
              "digit")



class String(fields.String):
    """Every string of a record: no control characters and not blank (only whitespace).
    These checks run before the field's validators, so a pattern ending in ``$`` cannot let a
    trailing newline through."""

    control = jsonio.CONTROL_ANY  # C0, DEL, C1
    control_message = "must not contain control characters (found U+{code:04X})"

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        found = self.control.search(text)
        if found:
            raise ValidationError(self.control_message.format(code=ord(found.group())))
        if not text.strip():
            raise ValidationError("must not be blank")
        return text


class FreeText(String):
    """Text as people write it: tabs and line breaks allowed, other control characters not."""

    control = jsonio.CONTROL  # all but tab, LF and CR
    control_message = ("must not contain control characters other than tab and line breaks "
                       "(found U+{code:04X})")


def Id(**kwargs) -> fields.String:  # noqa: N802 - reads like a field type
    """An internal record id. FHIR ids are '<prefix>-<id>', so ids stay within 64 characters."""
    return String(validate=validate.Regexp(ID_PATTERN, error=ID_MESSAGE), **kwargs)


def Pattern(pattern: str, error: str, **kwargs) -> fields.String:  # noqa: N802
    return String(validate=validate.Regexp(pattern, error=error), **kwargs)


def EmailAddress(**kwargs) -> fields.String:  # noqa: N802
    return String(validate=validate.Email(), **kwargs)


class _Ranged:
    """A number from a JSON number only (not a string, not a boolean), within its range from
    ``ranges.RANGES``."""

    range_name: str

    def _checked(self, value) -> int | float:
        limits = bounds(self.range_name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("must be a whole number" if limits.integer
                                  else "must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError("must be a finite number")
        if limits.integer and isinstance(value, float):
            if not value.is_integer():
                raise ValidationError("must be a whole number")
        if not limits.low <= value <= limits.high:
            raise ValidationError(f"must be between {plain(limits.low)} and "
                                  f"{plain(limits.high)}")
        return int(value) if limits.integer else float(value)


def _range_validator(range_name: str) -> validate.Range:
    """The range as a marshmallow validator, so the OpenAPI document shows it (apispec reads
    minimum and maximum from it); ``_checked`` has enforced it already."""
    limits = bounds(range_name)
    return validate.Range(min=limits.low, max=limits.high)


class Int(_Ranged, fields.Integer):
    """A whole number within a named range (2 and 2.0 are 2; 1.5 and "2" are refused)."""

    def __init__(self, range_name: str, **kwargs):
        super().__init__(validate=_range_validator(range_name), **kwargs)
        self.range_name = range_name

    def _deserialize(self, value, attr, data, **kwargs):
        return self._checked(value)


class Number(_Ranged, fields.Float):
    """A decimal number within a named range ("50" and true are refused)."""

    def __init__(self, range_name: str, **kwargs):
        super().__init__(allow_nan=False, validate=_range_validator(range_name), **kwargs)
        self.range_name = range_name

    def _deserialize(self, value, attr, data, **kwargs):
        return self._checked(value)


class Flag(fields.Boolean):
    """true or false, only (not "yes", 1 or "true")."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


_PARTIAL_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")


class AwareDateTime(fields.DateTime):
    """An ISO 8601 date-time that must carry a timezone offset (FHIR requires one on times),
    or a date without a time (FHIR dateTime allows 2025, 2025-03 and 2025-03-01; records from
    EHRs often have only the day).

    Normalized to ``YYYY-MM-DDThh:mm:ss[.ffffff]+hh:mm``; dates are kept as written.
    """

    default_error_messages = {
        "invalid": "Not a valid date-time.",
        "naive": "must include a timezone offset, e.g. 2025-03-01T09:30:00-05:00",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and _PARTIAL_DATE.match(value):
            padded = value + "-01-01"[len(value) - 4:]  # 2025 -> 2025-01-01, 2025-03 -> -03-01
            try:
                dt.date.fromisoformat(padded)
            except ValueError:
                raise self.make_error("invalid") from None
            return value
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise self.make_error("naive")
        return parsed.isoformat()

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value.isoformat()
        return value


class IsoDate(fields.Date):
    """A calendar date kept as 'YYYY-MM-DD'."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).isoformat()

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.isoformat() if isinstance(value, dt.date) else value


def Text(max_len: int = 1000, **kwargs) -> fields.String:  # noqa: N802
    """Free text (a note, a reason, directions): tabs and line breaks allowed."""
    return FreeText(validate=validate.Length(min=1, max=max_len), **kwargs)


def Line(max_len: int = 200, **kwargs) -> fields.String:  # noqa: N802
    """One line of text (a name, a title, a unit): no control characters at all."""
    return String(validate=validate.Length(min=1, max=max_len), **kwargs)


class TermKey(String):
    """A concept named by the key of a terminology table (e.g. "lithium-carbonate") or by free
    text. Text that names a table key in other words ("Lithium carbonate") becomes that key, so
    it gets its verified code; anything else stays as written and gets a local code."""

    def __init__(self, table: str, max_len: int = 200, **kwargs):
        super().__init__(validate=validate.Length(min=1, max=max_len), **kwargs)
        self.table = table

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        key = local_code(text)
        return key if key in table_keys(self.table) else text


def Choice(values, **kwargs) -> fields.String:  # noqa: N802
    return String(validate=validate.OneOf(list(values)), **kwargs)


class BaseSchema(Schema):
    """Unknown fields are errors, so a misspelt field is never silently dropped. An empty
    optional list means the same as no list (FHIR has no empty arrays), so it is dropped."""

    class Meta:
        ordered = True

    @post_load
    def _drop_empty_lists(self, data, **_):
        for name, field in self.fields.items():
            if data.get(name) == [] and field.load_default is missing:
                del data[name]
        return data


class NameSchema(BaseSchema):
    family = Line(100, required=True)
    given = fields.List(Line(100), validate=validate.Length(min=1, max=5), required=True)


class PeriodSchema(BaseSchema):
    start = IsoDate(required=True)
    end = IsoDate()


PERSON_TYPES = ("patient", "practitioner", "caregiver")


class PersonRefSchema(BaseSchema):
    """A pointer to a person record: who reported, who is a team member."""

    type = Choice(PERSON_TYPES, required=True)
    id = Id(required=True)


def check_period(start: str | None, end: str | None, field: str) -> None:
    if start and end and end < start:
        raise ValidationError("must not be before the start", field)
