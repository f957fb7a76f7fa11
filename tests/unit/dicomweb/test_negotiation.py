"""WADO-RS negotiation tables (PS3.18 8.7.3): Accept headers as clients send them -> (media type, syntax)."""
from __future__ import annotations

import pytest

from app.dicomweb import negotiation as n
from app.errors import NotAcceptable


def anything(source, target):
    return None


def nothing(source, target):
    return f"cannot make {target} from {source}"


@pytest.mark.parametrize("accept,expected", [
    (None, n.EXPLICIT_LE),
    ("", n.EXPLICIT_LE),
    ("*/*", n.EXPLICIT_LE),
    ("application/dicom", n.EXPLICIT_LE),
    ("multipart/related", n.EXPLICIT_LE),
    ('multipart/related; type="application/dicom"', n.EXPLICIT_LE),
    ("multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2", n.IMPLICIT_LE),
    ('multipart/related; transfer-syntax="1.2.840.10008.1.2.5"; type="application/dicom"', n.RLE_LOSSLESS),
    ('multipart/related; type="application/dicom"; transfer-syntax=*', n.JPEG_LS_LOSSLESS),
    ('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.5; q=0.1, '
     'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90', n.JPEG_2000_LOSSLESS),
])
def test_dicom_resources(accept, expected):
    choice = n.negotiate_dicom(accept, n.JPEG_LS_LOSSLESS, anything)
    assert choice.media_type == "application/dicom"
    assert choice.transfer_syntax == expected


def test_dicom_default_for_lossy_data_is_as_stored():
    assert n.negotiate_dicom(None, n.JPEG_BASELINE, nothing).transfer_syntax == n.JPEG_BASELINE
    assert n.negotiate_dicom(None, n.JPEG_2000, nothing).transfer_syntax == n.JPEG_2000


def test_dicom_406_collects_the_reasons():
    with pytest.raises(NotAcceptable) as refused:
        n.negotiate_dicom('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.5',
                          n.JPEG_LS_LOSSLESS, nothing)
    assert "cannot make 1.2.840.10008.1.2.5" in refused.value.message
    with pytest.raises(NotAcceptable) as refused:
        n.negotiate_dicom("application/dicom+json, image/*", n.EXPLICIT_LE, anything)
    assert "application/dicom" in refused.value.message
    with pytest.raises(NotAcceptable):
        n.negotiate_dicom("multipart/related; type=application/dicom; transfer-syntax=1.2.3", n.EXPLICIT_LE,
                          anything)


@pytest.mark.parametrize("accept,stored,expected", [
    (None, n.EXPLICIT_LE, ("application/octet-stream", n.EXPLICIT_LE)),
    (None, n.IMPLICIT_LE, ("application/octet-stream", n.EXPLICIT_LE)),
    (None, n.JPEG_BASELINE, ("image/jpeg", n.JPEG_BASELINE)),
    ('multipart/related; type="*/*"', n.RLE_LOSSLESS, ("image/dicom-rle", n.RLE_LOSSLESS)),
    ('multipart/related; type="application/octet-stream"', n.RLE_LOSSLESS,
     ("application/octet-stream", n.EXPLICIT_LE)),
    ('multipart/related; type="application/octet-stream"; transfer-syntax=*', n.RLE_LOSSLESS,
     ("application/octet-stream", n.RLE_LOSSLESS)),
    ('multipart/related; type="image/jls"', n.EXPLICIT_LE, ("image/jls", n.JPEG_LS_LOSSLESS)),
    ('multipart/related; type=image/x-jls', n.EXPLICIT_LE, ("image/jls", n.JPEG_LS_LOSSLESS)),
    ('multipart/related; type="image/jpeg"', n.JPEG_LOSSLESS_SV1, ("image/jpeg", n.JPEG_LOSSLESS_SV1)),
    ('multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.91', n.JPEG_2000,
     ("image/jp2", n.JPEG_2000)),
    ('image/*', n.EXPLICIT_LE, ("image/jpeg", n.JPEG_BASELINE)),
])
def test_pixel_resources(accept, stored, expected):
    choice = n.negotiate_pixels(accept, stored, anything, "application/octet-stream")
    assert (choice.media_type, choice.transfer_syntax) == expected


def test_pixel_syntax_must_belong_to_its_media_type():
    with pytest.raises(NotAcceptable) as refused:
        n.negotiate_pixels(f'multipart/related; type="image/jp2"; transfer-syntax={n.JPEG_LS_LOSSLESS}',
                           n.EXPLICIT_LE, anything)
    assert "Table 8.7.3-5" in refused.value.message


def test_bulk_and_plain():
    assert n.negotiate_bulk(None) == n.Choice("application/octet-stream", n.EXPLICIT_LE, True)
    assert n.negotiate_bulk("application/octet-stream").multipart is False
    assert n.negotiate_bulk('multipart/related; type="application/octet-stream"').multipart is True
    with pytest.raises(NotAcceptable):
        n.negotiate_bulk("image/png")
    assert n.negotiate_plain(None, n.METADATA_TYPES) == "application/dicom+json"
    assert n.negotiate_plain('multipart/related; type="application/dicom+xml"', n.METADATA_TYPES) == \
        "application/dicom+xml"
    assert n.negotiate_plain("image/png;q=0.5, image/gif", n.RENDERED_TYPES) == "image/gif"
    with pytest.raises(NotAcceptable):
        n.negotiate_plain("text/html", n.RENDERED_TYPES)


def test_media_type_of_syntax():
    assert n.media_type_of_syntax(n.JPEG_LS_NEAR_LOSSLESS) == "image/jls"
    assert n.media_type_of_syntax(n.HTJ2K) == "image/jphc"
    assert n.media_type_of_syntax(n.EXPLICIT_LE) is None
