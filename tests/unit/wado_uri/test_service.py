"""app.wado_uri.service without HTTP: parameter parsing (400 naming the parameter), media type choice,
charsets; and the codec helpers it uses for SR text, documents and video."""
from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate

from app.codec import documents, sr_text
from app.errors import BadRequest, NotAcceptable
from app.wado_uri import service

BASE = {"requestType": "WADO", "studyUID": "1.2.3", "seriesUID": "1.2.3.4", "objectUID": "1.2.3.4.5"}


def parse(**params):
    return service.parse_request(dict(BASE, **params))


def test_minimal_request():
    request = parse()
    assert (request.study, request.series, request.sop) == ("1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert request.content_type is None and not request.anonymize and request.given == ()


def test_every_parameter_parsed():
    request = parse(contentType="image/png", charset="utf-8", annotation="patient,technique", rows="10",
                    columns="20", region="0.1,0.2,0.3,0.4", windowCenter="40", windowWidth="400", frameNumber="2",
                    imageQuality="70")
    assert request.annotations == ("patient", "technique")
    assert (request.rows, request.columns, request.frame_number, request.quality) == (10, 20, 2, 70)
    assert request.region == (0.1, 0.2, 0.3, 0.4)
    assert (request.window.center, request.window.width) == (40.0, 400.0)
    with_ps = parse(presentationUID="1.9", presentationSeriesUID="1.8")
    assert with_ps.presentation == ("1.8", "1.9")
    dicom = parse(contentType="application/dicom", anonymize="YES", transferSyntax="1.2.840.10008.1.2.4.80")
    assert dicom.anonymize and dicom.transfer_syntax == "1.2.840.10008.1.2.4.80"


def test_empty_values_count_as_absent_and_names_are_case_insensitive():
    request = service.parse_request({"REQUESTTYPE": "WADO", "studyuid": "1.2", "SeriesUID": "1.3",
                                     "objectUID": "1.4", "rows": "", "contentType": " "})
    assert request.rows is None and request.content_type is None


@pytest.mark.parametrize("params,word", [
    ({"requestType": None}, "requestType"), ({"requestType": "wado"}, "requestType"),
    ({"studyUID": None}, "studyUID"), ({"objectUID": "abc"}, "objectUID"), ({"seriesUID": "1..2"}, "seriesUID"),
    ({"rows": "0"}, "rows"), ({"columns": "+3"}, "columns"), ({"frameNumber": "-1"}, "frameNumber"),
    ({"windowCenter": "1"}, "windowWidth"), ({"windowWidth": "1"}, "windowCenter"),
    ({"windowCenter": "1", "windowWidth": "0.5"}, "windowWidth"), ({"region": "a,b,c,d"}, "region"),
    ({"imageQuality": "200"}, "imageQuality"), ({"anonymize": "true"}, "anonymize"),
    ({"contentType": "image/jpeg", "anonymize": "yes"}, "anonymize"),
    ({"contentType": "image/jpeg", "transferSyntax": "1.2.840.10008.1.2.1"}, "transferSyntax"),
    ({"contentType": "application/dicom", "region": "0,0,1,1"}, "region"),
    ({"anonymize": "yes", "annotation": "patient"}, "annotation"),
    ({"contentType": ","}, "contentType"),
    ({"presentationUID": "1.2", "presentationSeriesUID": "1.3", "windowCenter": "1", "windowWidth": "2"},
     "presentationUID"),
])
def test_bad_parameters(params, word):
    query = dict(BASE, **params)
    query = {k: v for k, v in query.items() if v is not None}
    with pytest.raises(BadRequest) as caught:
        service.parse_request(query)
    assert word in caught.value.message


def test_content_type_choice():
    image = service._Kind("image", service.IMAGE_TYPES + [service.DICOM])
    assert service._choose(parse(), image, None) == "image/jpeg"
    assert service._choose(parse(contentType="image/gif, image/png"), image, None) == "image/gif"
    assert service._choose(parse(contentType="*/*"), image, None) == "image/jpeg"
    assert service._choose(parse(anonymize="yes"), image, None) == "application/dicom"
    assert service._choose(parse(contentType="*/*", rows="3"), image, "application/dicom, image/png") == "image/png"
    assert service._choose(parse(), image, "application/dicom") == "application/dicom"
    with pytest.raises(NotAcceptable):
        service._choose(parse(contentType="video/mp4"), image, None)
    sr = service._Kind("structured report", service.SR_TYPES + [service.DICOM])
    assert service._choose(parse(), sr, None) == "text/html"
    with pytest.raises(BadRequest):
        service._choose(parse(rows="3"), sr, None)


def test_charsets():
    assert service._charsets(None) == [("utf-8", "utf-8")]
    assert service._charsets("ISO-8859-1, utf-8;q=0.5, nonsense, latin1") == [("iso-8859-1", "iso8859-1"),
                                                                             ("utf-8", "utf-8")]
    assert service._charsets("utf-8;q=0, latin1") == [("latin1", "iso8859-1")]
    assert service._charsets("*") == [("utf-8", "utf-8")]
    assert service._encode("é", "us-ascii, latin-1", html=False) == ("é".encode("latin-1"), "latin-1")
    assert service._encode("é", "us-ascii", html=True) == (b"&#233;", "us-ascii")
    with pytest.raises(NotAcceptable):
        service._encode("é", "us-ascii", html=False)
    with pytest.raises(NotAcceptable):
        service._encode("x", "nonsense", html=False)


def test_sr_text_of_the_bundled_report():
    ds = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    assert sr_text.is_structured_report(ds.SOPClassUID)
    lines = sr_text.content_lines(ds)
    assert (1, "HAS OBS CONTEXT", "Some UID", "1.2.3.4.5") in lines
    assert any(name == "Diameter" and value == "3 cm" for _, _, name, value in lines)
    assert "<script" not in sr_text.to_html(ds) and "&lt;" in sr_text.to_html(ds)
    assert sr_text.to_text(ds).startswith("Diagnosis\n=========\n")


def test_documents_and_video():
    ds = Dataset()
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1\n%%EOF\x00"
    assert documents.encapsulated_document(ds) == b"%PDF-1\n%%EOF"
    ds.EncapsulatedDocumentLength = 5
    assert documents.encapsulated_document(ds) == b"%PDF-"
    with pytest.raises(documents.DocumentError):
        documents.encapsulated_document(Dataset())
    video = Dataset()
    video.PixelData = encapsulate([b"abcd", b"efgh"], has_bot=True)
    assert documents.video_stream(video) == b"abcdefgh"
    assert documents.VIDEO_TYPES["1.2.840.10008.1.2.4.100"] == "video/mpeg"
    assert documents.VIDEO_TYPES["1.2.840.10008.1.2.4.102"] == "video/mp4"
