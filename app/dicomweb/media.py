"""Media types as DICOMweb clients really send them (PS3.18 8.7).

Content-Type and Accept values come quoted and unquoted (``type="application/dicom"`` or
``type=application/dicom``), several per header, with q-values, or not at all. Everything here is a pure
function over header strings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
JSON = "application/json"
MULTIPART_RELATED = "multipart/related"
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True)
class MediaType:
    type: str                       # lower-case "type/subtype"
    params: dict = field(default_factory=dict)   # lower-case names, unquoted values
    q: float = 1.0

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name.lower(), default)

    @property
    def main(self) -> str:
        return self.type.split("/", 1)[0]

    def __str__(self) -> str:
        return self.type + "".join(f'; {k}="{v}"' for k, v in self.params.items())


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse_media_type(text: str | None) -> MediaType | None:
    """Parse one media type with parameters; None when empty or malformed (no ``/``)."""
    if not text or not text.strip():
        return None
    pieces = _split_outside_quotes(text, ";")
    main = pieces[0].strip().lower()
    if "/" not in main or " " in main:
        return None
    params: dict[str, str] = {}
    q = 1.0
    for piece in pieces[1:]:
        if not piece.strip():
            continue
        name, _, value = piece.partition("=")
        name = name.strip().lower()
        value = _unquote(value)
        if name == "q":
            try:
                q = max(0.0, min(1.0, float(value)))
            except ValueError:
                q = 0.0
            continue
        params[name] = value
    return MediaType(main, params, q)


def _accept_ranges(header: str | None) -> list[MediaType]:
    if header is None or not header.strip():
        return [MediaType("*/*")]
    return [m for m in (parse_media_type(p) for p in _split_outside_quotes(header, ",")) if m]


def parse_accept(header: str | None) -> list[MediaType]:
    """The acceptable media ranges of an Accept header, best first (stable for equal q; q=0 left out).

    A missing header means ``*/*``.
    """
    return sorted((m for m in _accept_ranges(header) if m.q > 0), key=lambda m: -m.q)


def matches(media_range: MediaType, media_type: str) -> bool:
    """Does ``media_range`` (``*/*``, ``image/*`` or exact) admit ``media_type``?"""
    if media_range.type == "*/*":
        return True
    if media_range.type.endswith("/*"):
        return media_type.split("/", 1)[0] == media_range.main
    return media_range.type == media_type


def _admits(media_range: MediaType, offer: str) -> int:
    """0 when ``media_range`` does not admit ``offer``, else its specificity (higher = more specific).

    ``multipart/related; type=X`` admits X: clients ask for XML search results that way.
    """
    inner = media_range.param("type") if media_range.type == MULTIPART_RELATED else None
    if inner and inner.lower() == offer:
        return 4
    if media_range.type == offer:
        return 3
    if media_range.type.endswith("/*") and media_range.type != "*/*" and matches(media_range, offer):
        return 2
    return 1 if media_range.type == "*/*" else 0


def choose(accept_header: str | None, offers: list[str]) -> str | None:
    """The offer the client prefers, or None when the Accept header admits none (RFC 9110 12.5.1).

    Each offer takes the q of the most specific range that admits it, so ``x;q=0, */*`` refuses x.
    Ties go to the range the client listed first, then to the server's order of ``offers``.
    """
    ranges = _accept_ranges(accept_header)
    best = None
    for offer_index, offer in enumerate(offers):
        admitting = [(_admits(r, offer), -position, r) for position, r in enumerate(ranges)]
        admitting = [entry for entry in admitting if entry[0]]
        if not admitting:
            continue
        _, negative_position, media_range = max(admitting, key=lambda entry: (entry[0], entry[1]))
        if media_range.q <= 0:
            continue
        rank = (-media_range.q, -negative_position, offer_index)
        if best is None or rank < best[0]:
            best = (rank, offer)
    return best[1] if best else None
