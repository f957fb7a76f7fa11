"""WADO-RS content negotiation (PS3.18 8.7): Accept -> (media type, transfer syntax), per resource kind.

The tables below are PS3.18 Table 8.7.3-2 (DICOM resources, ``application/dicom``), Table 8.7.3-4 /
8.7.3-5 (bulk data and pixel data media types with their transfer syntaxes), Table 8.7.3-3 (metadata) and
Table 8.7.4-1 (rendered media types). Pure functions over header strings; whether a conversion can really
be done is asked through a ``can_produce(stored_ts, target_ts) -> reason | None`` callback, so the codec
side stays out of this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from app.dicomweb import media
from app.dicomweb.media import MediaType
from app.errors import NotAcceptable

# Transfer syntaxes (PS3.5 Annex A; PS3.6 Table A-1)
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
JPEG_2000_MC_LOSSLESS = "1.2.840.10008.1.2.4.92"
JPEG_2000_MC = "1.2.840.10008.1.2.4.93"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_RPCL_LOSSLESS = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
ANY_TS = "*"

NATIVE = frozenset({IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, EXPLICIT_BE})
# Syntaxes whose pixel data may have lost information: never relabelled as a lossless syntax.
LOSSY = frozenset({JPEG_BASELINE, JPEG_EXTENDED, JPEG_LS_NEAR_LOSSLESS, JPEG_2000, JPEG_2000_MC, HTJ2K,
                   "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.102",
                   "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105",
                   "1.2.840.10008.1.2.4.106", "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"})
# Syntaxes that promise the decoded pixels are exactly the original ones.
LOSSLESS_COMPRESSED = frozenset({RLE_LOSSLESS, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS,
                                 JPEG_2000_LOSSLESS, JPEG_2000_MC_LOSSLESS, HTJ2K_LOSSLESS,
                                 HTJ2K_RPCL_LOSSLESS})

RENDERED_TYPES = ["image/jpeg", "image/png", "image/gif"]          # PS3.18 Table 8.7.4-1
METADATA_TYPES = [media.DICOM_JSON, media.JSON, media.DICOM_XML]   # PS3.18 Table 8.7.3-3

# PS3.18 Table 8.7.3-5 (pixel data media types) -> (default transfer syntax, allowed transfer syntaxes)
PIXEL_MEDIA_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    media.OCTET_STREAM: (EXPLICIT_LE, (EXPLICIT_LE,)),
    "image/jpeg": (JPEG_BASELINE, (JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1)),
    "image/dicom-rle": (RLE_LOSSLESS, (RLE_LOSSLESS,)),
    "image/jls": (JPEG_LS_LOSSLESS, (JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS)),
    "image/jp2": (JPEG_2000_LOSSLESS, (JPEG_2000_LOSSLESS, JPEG_2000)),
    "image/jpx": (JPEG_2000_MC_LOSSLESS, (JPEG_2000_MC_LOSSLESS, JPEG_2000_MC)),
    "image/jphc": (HTJ2K_LOSSLESS, (HTJ2K_LOSSLESS, HTJ2K_RPCL_LOSSLESS, HTJ2K)),
}
# PS3.18 Table 8.7.3-2: application/dicom in any of these (the default is Explicit VR Little Endian).
DICOM_TRANSFER_SYNTAXES = (EXPLICIT_LE, IMPLICIT_LE, DEFLATED_LE, EXPLICIT_BE, *LOSSLESS_COMPRESSED,
                           *sorted(LOSSY))


def media_type_of_syntax(transfer_syntax: str) -> str | None:
    """The compressed pixel data media type whose table lists ``transfer_syntax`` (None for native)."""
    for media_type, (_, allowed) in PIXEL_MEDIA_TYPES.items():
        if media_type != media.OCTET_STREAM and transfer_syntax in allowed:
            return media_type
    return None


@dataclass(frozen=True)
class Choice:
    media_type: str
    transfer_syntax: str | None     # the syntax the response will be in (never "*": resolved to one)
    multipart: bool                 # the client asked for multipart/related (else a single part)


# Names clients still send for registered types.
_ALIASES = {"image/x-jls": "image/jls", "image/x-dicom-rle": "image/dicom-rle"}


def _ranges(accept: str | None, default_inner: str) -> list[tuple[MediaType, str, bool]]:
    """(range, inner media range, multipart?) per Accept value, best first."""
    result = []
    for media_range in media.parse_accept(accept):
        if media_range.type == media.MULTIPART_RELATED:
            inner = (media_range.param("type") or default_inner).lower()
            result.append((media_range, _ALIASES.get(inner, inner), True))
        else:
            result.append((media_range, _ALIASES.get(media_range.type, media_range.type), False))
    return result


def _admits(inner: str, offer: str) -> bool:
    return media.matches(MediaType(inner), offer)


CanProduce = Callable[[str, str], "str | None"]


ZIP = "application/zip"


def negotiate_dicom(accept: str | None, stored_ts: str, can_produce: CanProduce) -> Choice:
    """Instance resources (study, series, instance): ``application/dicom`` in a transfer syntax, in a
    multipart/related body, or in an ``application/zip`` archive when that is asked for by name."""
    reasons: list[str] = []
    for media_range, inner, multipart in _ranges(accept, media.DICOM):
        container = media.DICOM
        if not multipart and inner == ZIP:
            container = ZIP
        elif not _admits(inner, media.DICOM):
            continue
        wanted = media_range.param("transfer-syntax")
        if wanted == ANY_TS:
            return Choice(container, stored_ts, multipart)
        if not wanted:
            # Default: Explicit VR Little Endian, unless only lossy data exists (then as stored).
            wanted = stored_ts if stored_ts in LOSSY else EXPLICIT_LE
        if wanted not in DICOM_TRANSFER_SYNTAXES:
            reasons.append(f"transfer syntax {wanted} is not one of application/dicom (PS3.18 Table 8.7.3-2)")
            continue
        reason = None if wanted == stored_ts else can_produce(stored_ts, wanted)
        if reason is None:
            return Choice(container, wanted, multipart)
        reasons.append(reason)
    raise _not_acceptable([media.DICOM, ZIP], reasons)


def negotiate_pixels(accept: str | None, stored_ts: str, can_produce: CanProduce,
                     default_inner: str = "*/*") -> Choice:
    """Frames and Pixel Data bulk data: octet-stream (native) or a compressed pixel data media type.

    A wildcard prefers the stored form (no transcoding): the stored compressed media type, else
    uncompressed octet-stream.
    """
    stored_type = media_type_of_syntax(stored_ts)
    order = list(PIXEL_MEDIA_TYPES)
    if stored_type:
        order.remove(stored_type)
        order.insert(0, stored_type)
    reasons: list[str] = []
    for media_range, inner, multipart in _ranges(accept, default_inner):
        wanted = media_range.param("transfer-syntax")
        for offer in order:
            if not _admits(inner, offer):
                continue
            default, allowed = PIXEL_MEDIA_TYPES[offer]
            if wanted == ANY_TS:
                if offer == media.OCTET_STREAM or stored_ts in allowed:
                    return Choice(offer, stored_ts if stored_ts not in NATIVE else EXPLICIT_LE, multipart)
                continue
            target = wanted or (stored_ts if stored_ts in allowed else default)
            if target not in allowed:
                if inner == offer:
                    reasons.append(f"transfer syntax {target} does not belong to {offer} "
                                   "(PS3.18 Table 8.7.3-5)")
                continue
            if target == stored_ts or (target == EXPLICIT_LE and stored_ts in NATIVE):
                return Choice(offer, target, multipart)
            reason = can_produce(stored_ts, target)
            if reason is None:
                return Choice(offer, target, multipart)
            reasons.append(reason)
    raise _not_acceptable(list(PIXEL_MEDIA_TYPES), reasons)


def negotiate_bulk(accept: str | None) -> Choice:
    """Bulk data other than Pixel Data: application/octet-stream, as stored (little endian)."""
    for media_range, inner, multipart in _ranges(accept, "*/*"):
        wanted = media_range.param("transfer-syntax")
        if _admits(inner, media.OCTET_STREAM) and wanted in (None, "", ANY_TS, EXPLICIT_LE):
            # multipart/related is the form of PS3.18 10.4.3; a single body only when asked for by name.
            return Choice(media.OCTET_STREAM, EXPLICIT_LE, multipart or inner != media.OCTET_STREAM)
    raise _not_acceptable([media.OCTET_STREAM], [])


def negotiate_plain(accept: str | None, offers: list[str]) -> str:
    """Metadata and rendered resources: the first offer the Accept header admits (406 otherwise)."""
    chosen = media.choose(accept, offers)
    if chosen is None:
        raise _not_acceptable(offers, [])
    return chosen


def _not_acceptable(offers: list[str], reasons: list[str]) -> NotAcceptable:
    message = "this resource is available as " + ", ".join(offers)
    if reasons:
        unique = list(dict.fromkeys(reasons))
        message = "; ".join(unique) + " (" + message + ")"
    return NotAcceptable(message)
