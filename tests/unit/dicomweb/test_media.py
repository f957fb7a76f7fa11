"""Media type parsing and content negotiation (app.dicomweb.media) with headers as real clients send them."""
from __future__ import annotations

import pytest

from app.dicomweb.media import (
    DICOM,
    DICOM_JSON,
    DICOM_XML,
    JSON,
    MULTIPART_RELATED,
    OCTET_STREAM,
    MediaType,
    choose,
    matches,
    parse_accept,
    parse_media_type,
)

# --------------------------------------------------------------------------------------------------------
# parse_media_type
# --------------------------------------------------------------------------------------------------------


def test_plain_media_type():
    media = parse_media_type("application/dicom+json")
    assert media == MediaType("application/dicom+json", {}, 1.0)
    assert media.main == "application"


@pytest.mark.parametrize("text", [
    'multipart/related; type="application/dicom+xml"',
    "multipart/related; type=application/dicom+xml",
    'multipart/related;type="application/dicom+xml"',
    "multipart/related;type=application/dicom+xml",
    '  multipart/related ;   type = "application/dicom+xml"  ',
    "multipart/related\t;\ttype=application/dicom+xml\t",
    'Multipart/Related; TYPE="application/dicom+xml"',
    "MULTIPART/RELATED; Type=application/dicom+xml;",
])
def test_type_parameter_quoted_unquoted_spaces_and_case(text):
    media = parse_media_type(text)
    assert media is not None
    assert media.type == "multipart/related"
    assert media.params == {"type": "application/dicom+xml"}
    assert media.param("type") == "application/dicom+xml"
    assert media.param("TYPE") == "application/dicom+xml"
    assert media.q == 1.0


def test_several_parameters_and_values_keep_their_case():
    media = parse_media_type('multipart/related; type="application/dicom"; '
                             "transfer-syntax=1.2.840.10008.1.2.4.50; Boundary=AbC-123")
    assert media.type == MULTIPART_RELATED
    assert media.params == {"type": "application/dicom", "transfer-syntax": "1.2.840.10008.1.2.4.50",
                            "boundary": "AbC-123"}


def test_quoted_value_may_contain_separators():
    media = parse_media_type('multipart/related; type="application/dicom; x=1, y"; boundary="a,b;c"')
    assert media.params == {"type": "application/dicom; x=1, y", "boundary": "a,b;c"}


def test_quoted_value_with_escaped_quote_and_backslash():
    media = parse_media_type(r'text/plain; title="say \"hi\" \\ bye"')
    assert media.param("title") == 'say "hi" \\ bye'


def test_parameter_without_value_and_missing_parameter():
    media = parse_media_type("application/dicom; charset")
    assert media.params == {"charset": ""}
    assert media.param("transfer-syntax") is None
    assert media.param("transfer-syntax", "*") == "*"


@pytest.mark.parametrize("text, q", [
    ("application/json;q=0.5", 0.5),
    ("application/json; q=0.25", 0.25),
    ("application/json; Q = 0.7", 0.7),
    ('application/json; q="0.3"', 0.3),
    ("application/json; q=1", 1.0),
    ("application/json; q=0", 0.0),
    ("application/json; q=2", 1.0),         # clamped
    ("application/json; q=-1", 0.0),        # clamped
    ("application/json; q=high", 0.0),      # unparseable: treated as not acceptable
    ("application/json", 1.0),
])
def test_q_value(text, q):
    media = parse_media_type(text)
    assert media.type == JSON
    assert media.q == q
    assert "q" not in media.params


def test_q_is_not_kept_as_a_parameter_and_other_parameters_survive():
    media = parse_media_type('multipart/related; type="application/dicom+xml"; q=0.4; transfer-syntax=*')
    assert media.q == 0.4
    assert media.params == {"type": "application/dicom+xml", "transfer-syntax": "*"}


@pytest.mark.parametrize("text", [None, "", "   ", "json", "application", "application /json",
                                  "; type=application/dicom"])
def test_empty_or_malformed_gives_none(text):
    assert parse_media_type(text) is None


def test_str_round_trips_through_the_parser():
    original = parse_media_type('Multipart/Related; Type=application/dicom; transfer-syntax="1.2.840.10008.1.2.1"')
    text = str(original)
    assert text == 'multipart/related; type="application/dicom"; transfer-syntax="1.2.840.10008.1.2.1"'
    assert parse_media_type(text) == original


# --------------------------------------------------------------------------------------------------------
# parse_accept
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_accept_means_anything(header):
    ranges = parse_accept(header)
    assert [m.type for m in ranges] == ["*/*"]
    assert ranges[0].q == 1.0


def test_accept_is_sorted_by_q_best_first():
    ranges = parse_accept("a/a;q=0.5, b/b, c/c;q=0.8, d/d;q=0.9")
    assert [(m.type, m.q) for m in ranges] == [("b/b", 1.0), ("d/d", 0.9), ("c/c", 0.8), ("a/a", 0.5)]


def test_equal_q_keeps_the_client_order():
    ranges = parse_accept("z/z;q=0.5, y/y, x/x;q=0.5, w/w, v/v;q=0.5")
    assert [m.type for m in ranges] == ["y/y", "w/w", "z/z", "x/x", "v/v"]


def test_q_zero_ranges_are_dropped():
    assert [m.type for m in parse_accept("application/json;q=0, application/dicom+json")] == [DICOM_JSON]
    assert parse_accept("application/json;q=0, */*;q=0.0") == []


def test_commas_inside_quoted_parameters_do_not_split_ranges():
    ranges = parse_accept('multipart/related; type="application/dicom"; transfer-syntax="a,b", application/json')
    assert [m.type for m in ranges] == [MULTIPART_RELATED, JSON]
    assert ranges[0].params == {"type": "application/dicom", "transfer-syntax": "a,b"}


def test_malformed_and_empty_ranges_are_skipped():
    ranges = parse_accept("garbage, , application/json,,text/html ,")
    assert [m.type for m in ranges] == [JSON, "text/html"]


def test_browser_accept_header():
    ranges = parse_accept("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8")
    assert [m.type for m in ranges] == ["text/html", "application/xhtml+xml", "image/avif",
                                       "application/xml", "*/*"]


# --------------------------------------------------------------------------------------------------------
# matches
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("media_range, media_type, expected", [
    ("*/*", DICOM_JSON, True),
    ("application/*", DICOM_JSON, True),
    ("application/*", "multipart/related", False),
    ("multipart/*", MULTIPART_RELATED, True),
    (DICOM_JSON, DICOM_JSON, True),
    (DICOM_JSON, JSON, False),
    (JSON, DICOM_JSON, False),
    ("APPLICATION/DICOM+JSON", DICOM_JSON, True),
])
def test_matches(media_range, media_type, expected):
    assert matches(parse_media_type(media_range), media_type) is expected


# --------------------------------------------------------------------------------------------------------
# choose: real-world Accept headers against the offers of a QIDO-RS / WADO-RS endpoint
# --------------------------------------------------------------------------------------------------------

QIDO_OFFERS = [DICOM_JSON, JSON, DICOM_XML]


@pytest.mark.parametrize("accept, expected", [
    ("application/dicom+json", DICOM_JSON),
    ("application/json", JSON),
    ("*/*", DICOM_JSON),
    ("application/*", DICOM_JSON),
    (None, DICOM_JSON),
    ("", DICOM_JSON),
    ('multipart/related; type="application/dicom+xml"', DICOM_XML),
    ("multipart/related; type=application/dicom+xml", DICOM_XML),
    ("multipart/related;type=application/dicom+xml", DICOM_XML),
    ('Multipart/Related; Type="Application/DICOM+XML"', DICOM_XML),
    ("application/dicom+xml", DICOM_XML),
    ("APPLICATION/JSON", JSON),
    ("application/json, application/dicom+json", JSON),                       # equal q: client order
    ("application/json;q=0.5, application/dicom+json;q=0.9", DICOM_JSON),
    ("application/dicom+json;q=0.2, multipart/related; type=\"application/dicom+xml\"", DICOM_XML),
    ('multipart/related; type="application/dicom+xml"; q=0.1, application/json; q=0.3', JSON),
    ("application/json;q=0, application/dicom+xml", DICOM_XML),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", DICOM_JSON),  # a browser
    ("image/jpeg, */*;q=0.1", DICOM_JSON),
    ("image/jpeg;q=1, application/json;q=0.001", JSON),
])
def test_choose_for_qido(accept, expected):
    assert choose(accept, QIDO_OFFERS) == expected


@pytest.mark.parametrize("accept", [
    "image/jpeg",
    "text/html, text/plain;q=0.5",
    "multipart/related; type=application/octet-stream",   # inner type not offered
    'multipart/related; type="image/jpeg"',
    "application/dicom+json;q=0, application/json;q=0, application/dicom+xml;q=0",
    "*/*;q=0",
    "application/*;q=0",
    "not-a-media-type",
])
def test_choose_returns_none_when_nothing_fits(accept):
    assert choose(accept, QIDO_OFFERS) is None


def test_offer_order_decides_for_wildcards():
    assert choose("*/*", [JSON, DICOM_JSON]) == JSON
    assert choose("application/*", [MULTIPART_RELATED, DICOM_XML, DICOM_JSON]) == DICOM_XML


def test_wado_rs_multipart_accept_matches_the_multipart_offer():
    offers = [MULTIPART_RELATED, OCTET_STREAM]
    assert choose('multipart/related; type="application/dicom"; transfer-syntax=*', offers) == MULTIPART_RELATED
    assert choose("multipart/related", offers) == MULTIPART_RELATED
    assert choose("application/octet-stream", offers) == OCTET_STREAM
    assert choose(DICOM, offers) is None


def test_multipart_inner_type_can_select_the_part_type():
    # WADO-RS instance retrieval offering application/dicom as the part type.
    assert choose('multipart/related; type="application/dicom"', [DICOM, OCTET_STREAM]) == DICOM


def test_choose_with_no_offers_is_none():
    assert choose("*/*", []) is None


def test_choose_respects_q_zero_behind_a_wildcard():
    """RFC 9110 12.5.1: the most specific range decides an offer's q, so x;q=0 refuses x despite */*."""
    assert choose("application/dicom+json;q=0, */*", ["application/dicom+json", "application/dicom+xml"]) \
        == "application/dicom+xml"
    assert choose("application/dicom+json;q=0", ["application/dicom+json"]) is None
    assert choose("image/*;q=0.5, image/png", ["image/jpeg", "image/png"]) == "image/png"
    assert choose("image/*;q=0, image/png", ["image/jpeg", "image/png"]) == "image/png"
