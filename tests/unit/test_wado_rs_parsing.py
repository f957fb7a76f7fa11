"""WADO-RS request parameters: frame lists, byte ranges, rendering parameters, transcoding reasons."""
from __future__ import annotations

import pytest

from app.codec import render, transcode
from app.dicomweb import negotiation as n
from app.errors import BadRequest, RangeNotSatisfiable
from app.wado_rs import service


@pytest.mark.parametrize("text,expected", [("1", [1]), ("1,3,5", [1, 3, 5]), (" 2 , 2", [2, 2]),
                                           ("0010", [10])])
def test_frame_lists(text, expected):
    assert service.parse_frame_list(text) == expected


@pytest.mark.parametrize("text", ["", "0", "-1", "1,", ",1", "1..2", "a", "1;2", "1 2", "1,0"])
def test_bad_frame_lists(text):
    with pytest.raises(BadRequest):
        service.parse_frame_list(text)


@pytest.mark.parametrize("header,expected", [
    (None, None), ("bytes=0-9", (0, 10)), ("bytes=5-", (5, 95)), ("bytes=-10", (90, 10)),
    ("bytes=90-200", (90, 10)), ("bytes=0-1,5-6", None), ("items=0-1", None), ("bytes=-200", (0, 100)),
])
def test_ranges(header, expected):
    assert service.parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-2", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable) as refused:
        service.parse_range(header, 100)
    assert refused.value.headers["Content-Range"] == "bytes */100"


def test_render_parameters():
    assert render.parse_window("40,400") == render.Window(40, 400, "linear")
    assert render.parse_window("40,400,SIGMOID") == render.Window(40, 400, "sigmoid")
    assert render.parse_viewport("64,32") == render.Viewport(64, 32)
    assert render.parse_viewport("64,32,1,2,-10,10") == render.Viewport(64, 32, 1, 2, -10, 10)
    assert render.parse_quality("75") == 75
    assert render.parse_annotation("technique, patient") == ("technique", "patient")
    assert render.parse_window(None) is None and render.parse_quality("") is None


def test_transcode_reasons():
    assert transcode.transcode_reason(n.EXPLICIT_LE, n.RLE_LOSSLESS) is None
    assert transcode.transcode_reason(n.JPEG_2000, n.EXPLICIT_LE) is None
    assert "lossy" in transcode.transcode_reason(n.JPEG_BASELINE, n.JPEG_LS_LOSSLESS)
    assert "no encoder" in transcode.transcode_reason(n.EXPLICIT_LE, n.JPEG_BASELINE)
    assert "no pixel data" in transcode.transcode_reason(n.EXPLICIT_LE, n.RLE_LOSSLESS, has_pixels=False)
    info = transcode.PixelInfo(rows=2, columns=2, bits_allocated=32, bits_stored=32)
    assert "32-bit" in transcode.transcode_reason(n.EXPLICIT_LE, n.JPEG_LS_LOSSLESS, info=info)


def test_missing_codec_is_named(monkeypatch):
    class Missing:
        is_available = False
        missing_dependencies = ["pyjpegls - requires pyjpegls>=1.0"]

    monkeypatch.setattr(transcode, "get_encoder", lambda uid: Missing())
    reason = transcode.encoder_reason(n.JPEG_LS_LOSSLESS)
    assert "codec plugin missing" in reason and "pyjpegls" in reason

    class MissingDecoder:
        is_available = False
        missing_dependencies = ["pylibjpeg - requires pylibjpeg-openjpeg"]

    monkeypatch.setattr(transcode, "get_decoder", lambda uid: MissingDecoder())
    assert "pylibjpeg-openjpeg" in transcode.decoder_reason(n.JPEG_2000_LOSSLESS)
