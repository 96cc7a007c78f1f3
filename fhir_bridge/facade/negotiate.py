"""Content negotiation for /fhir by the FHIR R4 rules (http.html#mime-type, versioning.html):
``_format`` wins over ``Accept``; media types may carry ``fhirVersion``, ``charset`` and ``q``
parameters; only a format this server does not serve (XML, Turtle, HTML, another FHIR
version, a charset other than UTF-8) answers 406. ``_pretty=true`` indents the JSON.

The same rules hold for every interaction (metadata, read, vread, history, search)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadRequest, Issue, NotAcceptable

FHIR_JSON = "application/fhir+json"
#: Media types answered with JSON, and the Content-Type each is answered with.
JSON_TYPES = {FHIR_JSON: FHIR_JSON, "application/json": "application/json",
              "application/json+fhir": FHIR_JSON}
#: ``_format`` short forms (FHIR R4 http.html: json, xml, ttl) and the JSON media types.
FORMAT_ALIASES = {"json": FHIR_JSON, "text/json": "application/json", **JSON_TYPES}
FHIR_VERSIONS = ("4.0", "4.0.1")
PRETTY = ("true", "false")
NOT_SERVED = "this server answers FHIR R4 JSON only (application/fhir+json, application/json)"


@dataclass(frozen=True)
class MediaRange:
    type: str  # "application/fhir+json", "application/*", "*/*"
    params: dict[str, str]
    quality: float


@dataclass(frozen=True)
class Answer:
    content_type: str  # e.g. "application/fhir+json; charset=utf-8"
    pretty: bool


def parse_media_ranges(header: str) -> list[MediaRange]:
    """An Accept header (RFC 9110 12.5.1) as media ranges; unreadable parts are dropped."""
    out = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if media.count("/") != 1:
            continue
        params, quality = {}, 1.0
        for piece in pieces[1:]:
            name, sep, value = piece.partition("=")
            if not sep:
                continue
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
            else:
                params[name] = value
        out.append(MediaRange(media, params, quality))
    return out


def _served(media: MediaRange) -> str | None:
    """The JSON media type a range is answered with, or None when it asks for another
    format, FHIR version or charset."""
    version = media.params.get("fhirversion")
    if version is not None and version not in FHIR_VERSIONS:
        return None
    charset = media.params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        return None
    if media.type in JSON_TYPES:
        return JSON_TYPES[media.type]
    if media.type in ("*/*", "application/*"):
        return FHIR_JSON
    return None


def from_accept(header: str | None) -> tuple[str, bool] | None:
    """(media type, named a fhirVersion) for an Accept header; None when nothing served is
    acceptable. No header (or an empty one) accepts anything."""
    if header is None or not header.strip():
        return FHIR_JSON, False
    best: tuple[float, int, str, bool] | None = None
    for index, media in enumerate(parse_media_ranges(header)):
        served = _served(media)
        if served is None or media.quality <= 0:
            continue
        specific = 0 if "*" in media.type else 1  # an exact type beats a wildcard at equal q
        candidate = (media.quality, specific, served, "fhirversion" in media.params)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return None if best is None else (best[2], best[3])


def from_format(value: str) -> tuple[str, bool] | None:
    """``_format``: a short form or a media type, parameters allowed. A query string's raw
    ``+`` arrives as a space (``application/fhir json``): read it back as ``+``."""
    if "/" not in value:
        alias = FORMAT_ALIASES.get(value.strip().lower())
        return (alias, False) if alias else None
    media_type, sep, rest = value.partition(";")
    ranges = parse_media_ranges(media_type.strip().replace(" ", "+") + sep + rest)
    if len(ranges) != 1:
        return None
    media = ranges[0]
    media = MediaRange(FORMAT_ALIASES.get(media.type, media.type), media.params, 1.0)
    if "*" in media.type:
        return None
    served = _served(media)
    return None if served is None else (served, "fhirversion" in media.params)


def negotiate(accept: str | None, fmt: list[str], pretty: list[str]) -> Answer:
    """What to answer with, or NotAcceptable (406) / BadRequest (400, bad ``_pretty``)."""
    if len(pretty) > 1 or (pretty and pretty[0] not in PRETTY):
        raise BadRequest("_pretty is true or false",
                         [Issue("_pretty", "must be true or false (once)")])
    if fmt:
        if len(fmt) > 1:
            raise BadRequest("_format is given once", [Issue("_format", "given more than once")])
        chosen = from_format(fmt[0])
        if chosen is None:
            raise NotAcceptable(NOT_SERVED, [Issue("_format", f"{fmt[0]!r} is not served; "
                                                   "use json", "not-supported")])
    else:
        chosen = from_accept(accept)
        if chosen is None:
            raise NotAcceptable(NOT_SERVED)
    media, versioned = chosen
    content_type = media + ("; fhirVersion=4.0" if versioned else "") + "; charset=utf-8"
    return Answer(content_type, bool(pretty) and pretty[0] == "true")
