"""QIDO-RS end to end through HTTP on SQLite and PostgreSQL: data stored with STOW-RS first, then searched.

The app and its data are built once per module and database (searches only read); tests that need
settings of their own build their own app.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from lxml import etree
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset
from sqlalchemy import create_engine, event

from app import create_app
from app.index.schema import apply_schema
from tests.conftest import scratch_postgres_database
from tests.helpers import make_instance, multipart, stow_headers, uid

NATIVE = "{http://dicom.nema.org/PS3.19/models/NativeDICOM}"


def _request_attributes(sps: str, rp: str) -> list[Dataset]:
    item = Dataset()
    item.ScheduledProcedureStepID = sps
    item.RequestedProcedureID = rp
    return [item]


def _corpus() -> list[bytes]:
    """Study A: Doe^John, CT (2 instances) + MR series with request attributes; B: Müller^Anna in 2020,
    accession with LIKE wildcards; C: Smith^Jane with a timezone, US; D: Doe^Johnny; plus three pydicom
    character set files."""
    parts = [
        make_instance("A", "ct", "1", InstanceNumber=1, PatientAge="054Y", SeriesDescription="CT head"),
        make_instance("A", "ct", "2", InstanceNumber=2, PatientAge="054Y", SeriesDescription="CT head"),
        make_instance("A", "mr", "1", modality="MR", SeriesNumber=2, PatientAge="054Y",
                      RequestAttributesSequence=_request_attributes("SPS-1", "RP-1")),
        make_instance("B", "ct", "1", patient_name="Müller^Anna", patient_id="PID-2", study_date="20200101",
                      StudyTime="235900", AccessionNumber="AC%_B", ReferringPhysicianName="House^Gregory"),
        make_instance("C", "us", "1", modality="US", patient_name="Smith^Jane", patient_id="PID-3",
                      study_date="20221231", StudyTime="080000", TimezoneOffsetFromUTC="-0500",
                      AccessionNumber="ACXYC"),
        make_instance("D", "ct", "1", patient_name="Doe^Johnny", patient_id="PID-4", study_date="20240105"),
    ]
    for name in ("chrH31.dcm", "chrX1.dcm", "chrGerm.dcm"):
        parts.append(Path(next(f for f in get_charset_files() if f.endswith(name))).read_bytes())
    return parts


@contextmanager
def built_app(folder: Path, database: str, **overrides):
    settings = {"app:PacsStorageConnection": str(folder / "Storage"),
                "app:tempDirectory": str(folder / "tmp"),
                "app:PacsDataArchieve": f"sqlite:///{folder / 'pacs.sqlite3'}"}
    with ExitStack() as stack:
        if database == "postgresql":
            url = stack.enter_context(scratch_postgres_database("q_"))
            engine = create_engine(url)
            apply_schema(engine)
            engine.dispose()
            settings["app:PacsDataArchieve"] = url
        settings.update(overrides)
        app = create_app(None, overrides=settings, environ={})
        app.config["TESTING"] = True
        try:
            yield app
        finally:
            app.extensions["dicomcloud"].engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def qido(request, tmp_path_factory):
    with built_app(tmp_path_factory.mktemp("qido"), request.param) as app:
        client = app.test_client()
        response = client.post("/api/studies", data=multipart(_corpus()), headers=stow_headers())
        assert response.status_code == 200, response.get_json()
        client.database = request.param
        yield client


def get(client, url, status=200, **headers):
    response = client.get(url, headers=headers)
    assert response.status_code == status, (url, response.data[:500])
    return response


def search(client, url) -> list[dict]:
    body = get(client, url).get_json()
    assert isinstance(body, list)
    return body


def values(dataset: dict, tag: str) -> list:
    return dataset.get(tag, {}).get("Value", [])


def first(dataset: dict, tag: str):
    found = values(dataset, tag)
    return found[0] if found else None


def names(results) -> list[str]:
    return sorted(first(r, "00100010")["Alphabetic"] for r in results)


def study_uids(results) -> set[str]:
    return {first(r, "0020000D") for r in results}


A, B, C, D = (uid("study", s) for s in "ABCD")
A_CT, A_MR = uid("series", "A", "ct"), uid("series", "A", "mr")
H31_STUDY = "1.3.6.1.4.1.5962.1.2.0.1175775771.5702.0"


# --- resources and levels ---------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["/api", "/qidors"])
def test_every_resource_and_its_dicomcloud_alias(qido, prefix):
    assert len(search(qido, f"{prefix}/studies")) == 7
    assert len(search(qido, f"{prefix}/series")) == 8
    assert len(search(qido, f"{prefix}/instances")) == 9
    assert {first(r, "0020000E") for r in search(qido, f"{prefix}/studies/{A}/series")} == {A_CT, A_MR}
    assert len(search(qido, f"{prefix}/studies/{A}/instances")) == 3
    instances = search(qido, f"{prefix}/studies/{A}/series/{A_CT}/instances")
    assert [first(r, "00200013") for r in instances] == [1, 2]
    assert search(qido, f"{prefix}/studies/{uid('study', 'nothing')}/series") == []


def test_study_results_carry_the_default_attributes(qido):
    (study,) = search(qido, f"/api/studies?StudyInstanceUID={A}")
    assert first(study, "00080005") == "ISO_IR 192"
    assert first(study, "00080020") == "20240102"
    assert first(study, "00080030") == "101500"
    assert first(study, "00080050") == "ACC-A"
    assert first(study, "00080056") == "ONLINE"
    assert values(study, "00080061") == ["CT", "MR"]
    assert first(study, "00081190") == f"http://localhost/api/studies/{A}"
    assert first(study, "00100010") == {"Alphabetic": "Doe^John"}
    assert first(study, "00100020") == "PID-1"
    assert first(study, "00100030") == "19700101"
    assert first(study, "00100040") == "O"
    assert first(study, "0020000D") == A
    assert first(study, "00200010") == "A"
    assert first(study, "00201206") == 2     # NumberOfStudyRelatedSeries
    assert first(study, "00201208") == 3     # NumberOfStudyRelatedInstances
    assert study["00080090"] == {"vr": "PN"}  # ReferringPhysicianName: present, empty
    assert list(study) == sorted(study)
    assert "0020000E" not in study and "00080018" not in study


def test_series_and_instance_results_carry_their_defaults_and_parent_uids(qido):
    series = {first(r, "0020000E"): r for r in search(qido, f"/api/studies/{A}/series")}
    mr = series[A_MR]
    assert first(mr, "00080060") == "MR"
    assert first(mr, "00200011") == 2
    assert first(mr, "00201209") == 1        # NumberOfSeriesRelatedInstances
    assert first(mr, "0020000D") == A
    assert first(mr, "00081190") == f"http://localhost/api/studies/{A}/series/{A_MR}"
    (item,) = values(mr, "00400275")
    assert first(item, "00400009") == "SPS-1" and first(item, "00401001") == "RP-1"
    assert first(series[A_CT], "0008103E") == "CT head"
    assert "00400275" not in series[A_CT]
    assert first(series[A_CT], "00201209") == 2

    (instance,) = search(qido, f"/api/instances?SOPInstanceUID={uid('instance', 'A', 'ct', '2')}")
    assert first(instance, "0020000D") == A and first(instance, "0020000E") == A_CT
    assert first(instance, "00080016") == "1.2.840.10008.5.1.4.1.1.2"
    assert [first(instance, tag) for tag in ("00280010", "00280011", "00280100")] == [16, 16, 16]
    assert first(instance, "00200013") == 2
    assert first(instance, "00080056") == "ONLINE"
    assert first(instance, "00081190") == (f"http://localhost/api/studies/{A}/series/{A_CT}/instances/"
                                           f"{uid('instance', 'A', 'ct', '2')}")
    # a search of all instances also returns the study and series attributes
    assert first(instance, "00100020") == "PID-1" and first(instance, "00080060") == "CT"


def test_series_search_across_studies_returns_study_attributes_too(qido):
    (series,) = search(qido, "/api/series?PatientID=PID-2")
    assert first(series, "0020000D") == B
    assert first(series, "00100010") == {"Alphabetic": "Müller^Anna"}
    assert first(series, "00080020") == "20200101"


# --- matching: PS3.4 C.2.2.2 ------------------------------------------------------------------------------

def test_keyword_and_tag_are_the_same_key(qido):
    assert study_uids(search(qido, "/api/studies?PatientID=PID-1")) == {A}
    assert study_uids(search(qido, "/api/studies?00100020=PID-1")) == {A}
    assert study_uids(search(qido, "/api/studies?00100020=pid-1")) == set()     # LO: case-sensitive


def test_single_value_and_uid_lists(qido):
    assert study_uids(search(qido, f"/api/studies?StudyInstanceUID={A},{C}")) == {A, C}
    assert study_uids(search(qido, f"/api/studies?StudyInstanceUID={quote(A + chr(92) + B)}")) == {A, B}
    assert study_uids(search(qido, f"/api/studies?0020000D={B}")) == {B}
    assert study_uids(search(qido, "/api/studies?AccessionNumber=ACXYC")) == {C}
    assert study_uids(search(qido, "/api/series?Modality=CT,US")) == {A, B, C, D}
    assert len(search(qido, "/api/series?SeriesNumber=2")) == 1
    assert len(search(qido, f"/api/studies/{A}/instances?InstanceNumber=1,2")) == 3


def test_universal_matching_returns_everything_and_the_attribute(qido):
    results = search(qido, "/api/studies?PatientName=&StudyDescription=")
    assert len(results) == 7
    assert all("00100010" in r for r in results)
    assert search(qido, "/api/studies?AccessionNumber=*") == search(qido, "/api/studies")


def test_wildcards_and_escaped_like_characters(qido):
    assert study_uids(search(qido, "/api/studies?AccessionNumber=AC*")) == {A, B, C, D}
    assert study_uids(search(qido, "/api/studies?AccessionNumber=AC%25*")) == {B}     # % is literal
    assert study_uids(search(qido, "/api/studies?AccessionNumber=AC_*")) == set()      # _ is literal
    assert study_uids(search(qido, "/api/studies?AccessionNumber=AC?_B")) == {B}
    assert study_uids(search(qido, "/api/studies?AccessionNumber=*C")) == {C}
    assert study_uids(search(qido, "/api/studies?AccessionNumber=ac*")) == set()      # SH: case-sensitive
    assert names(search(qido, "/api/studies?PatientName=Doe*")) == ["Doe^John", "Doe^Johnny"]
    assert names(search(qido, "/api/studies?PatientName=D?e^John")) == ["Doe^John"]
    assert names(search(qido, "/api/studies?PatientName=*ohnn*")) == ["Doe^Johnny"]


def test_person_names_match_case_and_accent_insensitively(qido):
    assert names(search(qido, "/api/studies?PatientName=doe%5Ejohn")) == ["Doe^John"]
    assert names(search(qido, "/api/studies?PatientName=DOE^JOHN^^")) == ["Doe^John"]
    assert names(search(qido, "/api/studies?PatientName=muller^anna")) == ["Müller^Anna"]
    assert names(search(qido, "/api/studies?PatientName=MÜLLER*")) == ["Müller^Anna"]
    assert names(search(qido, "/api/studies?PatientName=Doe")) == []
    assert study_uids(search(qido, "/api/studies?ReferringPhysicianName=house*")) == {B}


def test_fuzzy_matching_of_person_names(qido):
    assert names(search(qido, "/api/studies?PatientName=joh&fuzzymatching=true")) == [
        "Doe^John", "Doe^Johnny"]
    assert names(search(qido, "/api/studies?PatientName=joh&fuzzymatching=false")) == []
    assert names(search(qido, "/api/studies?PatientName=john%20do&fuzzymatching=true")) == [
        "Doe^John", "Doe^Johnny"]
    assert names(search(qido, "/api/studies?PatientName=anna&fuzzymatching=true")) == ["Müller^Anna"]
    assert names(search(qido, "/api/studies?PatientName=ane&fuzzymatching=true")) == ["Äneas^Rüdiger"]
    assert study_uids(search(qido, "/api/studies?ReferringPhysicianName=greg&fuzzymatching=true")) == {B}
    get(qido, "/api/studies?fuzzymatching=maybe", 400)


def test_date_single_range_and_open_ranges(qido):
    assert study_uids(search(qido, "/api/studies?StudyDate=20240102")) == {A}
    assert study_uids(search(qido, "/api/studies?StudyDate=20200101-20221231")) == {B, C}
    assert study_uids(search(qido, "/api/studies?StudyDate=-20221231")) == {B, C}    # no date: no match
    assert study_uids(search(qido, "/api/studies?StudyDate=20221231-")) == {A, C, D}
    assert study_uids(search(qido, "/api/studies?00080020=20240101-20240104")) == {A}
    assert study_uids(search(qido, "/api/studies?PatientBirthDate=19700101")) == {A, B, C, D}


def test_time_ranges_and_combined_date_time_matching(qido):
    assert study_uids(search(qido, "/api/studies?StudyTime=1015")) == {A, D}
    assert study_uids(search(qido, "/api/studies?StudyTime=2300-")) == {B}
    assert study_uids(search(qido, "/api/studies?StudyTime=-0900")) == {C}
    # PS3.4 C.2.2.2.5.1: 2024-01-01 12:00 up to the end of 2024-01-02; separately, 10:15 < 12:00 would
    # exclude study A.
    assert study_uids(search(qido, "/api/studies?StudyDate=20240101-20240102&StudyTime=1200-")) == {A}
    assert study_uids(search(qido, "/api/studies?StudyDate=20191231-20200101&StudyTime=2300-2359")) == {B}
    assert study_uids(search(qido, "/api/studies?StudyDate=20200101&StudyTime=0000-1200")) == set()
    assert study_uids(search(qido, "/api/studies?StudyDate=-20240102&StudyTime=-1014")) == {B, C}


def test_timezone_offset_shifts_the_query_against_each_study_offset(qido):
    # Study C: 2022-12-31 08:00 at -0500 = 13:00 UTC.
    base = "/api/studies?StudyDate=20221231&StudyTime=1230-1330"
    assert study_uids(search(qido, base)) == set()
    assert study_uids(search(qido, base + "&TimezoneOffsetFromUTC=%2B0000")) == {C}
    one_hour_east = base.replace("1230-1330", "1330-1430") + "&TimezoneOffsetFromUTC=%2B0100"
    assert study_uids(search(qido, one_hour_east)) == {C}
    assert study_uids(search(qido, "/api/studies?StudyDate=20221231&StudyTime=0759-0801"
                                   "&TimezoneOffsetFromUTC=-0500")) == {C}
    # A date alone in a timezone is the whole day there: C is 2022-12-31 14:00 at +0100.
    assert study_uids(search(qido, "/api/studies?StudyDate=20221231&TimezoneOffsetFromUTC=%2B0100")) == {C}
    assert study_uids(search(qido, "/api/studies?StudyDate=20230101&TimezoneOffsetFromUTC=%2B1400")) == {C}
    assert study_uids(search(qido, "/api/studies?StudyDate=20221231&TimezoneOffsetFromUTC=%2B1400")) == set()
    # Studies without an offset are compared as if in the query's timezone.
    assert study_uids(search(qido, "/api/studies?StudyDate=20240102&TimezoneOffsetFromUTC=%2B0900")) == {A}
    assert study_uids(search(qido, "/api/studies?StudyDate=20240102&TimezoneOffsetFromUTC=+0900")) == {A}
    for bad in ("0100", "%2B25", "%2B0160", "UTC"):
        body = get(qido, f"/api/studies?StudyDate=20240102&TimezoneOffsetFromUTC={bad}", 400).get_json()
        assert "TimezoneOffsetFromUTC" in body["message"]


def test_sequence_matching_of_request_attributes(qido):
    (series,) = search(qido, "/api/series?RequestAttributesSequence.ScheduledProcedureStepID=SPS-1")
    assert first(series, "0020000E") == A_MR
    assert len(search(qido, "/api/series?00400275.00401001=RP-1")) == 1
    assert len(search(qido, "/api/series?00400275.00400009=SPS-1&00400275.00401001=RP-1")) == 1
    assert search(qido, "/api/series?00400275.00400009=SPS-1&00400275.00401001=RP-2") == []
    assert search(qido, "/api/series?RequestAttributesSequence.ScheduledProcedureStepID=SPS-9") == []
    assert len(search(qido, "/api/instances?RequestAttributesSequence.RequestedProcedureID=RP*")) == 1


def test_modalities_in_study_matches_any_series(qido):
    (study,) = search(qido, "/api/studies?ModalitiesInStudy=MR")
    assert first(study, "0020000D") == A and values(study, "00080061") == ["CT", "MR"]
    assert study_uids(search(qido, "/api/studies?ModalitiesInStudy=MR,US")) == {A, C}
    assert study_uids(search(qido, "/api/studies?00080061=US%5CMR")) == {A, C}


def test_relational_searches_across_studies(qido):
    assert {first(r, "0020000E") for r in search(qido, "/api/series?PatientID=PID-1")} == {A_CT, A_MR}
    instances = search(qido, "/api/instances?StudyDate=20240102")
    assert len(instances) == 3 and study_uids(instances) == {A}
    assert len(search(qido, "/api/instances?Modality=MR&PatientName=doe*")) == 1
    assert len(search(qido, f"/api/studies/{A}/instances?Modality=CT")) == 2
    assert search(qido, f"/api/studies/{B}/series?PatientID=PID-1") == []


def test_character_sets_match_and_come_back_as_unicode(qido):
    (japanese,) = search(qido, "/api/studies?PatientName=Yamada*")
    assert first(japanese, "00100010") == {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎",
                                           "Phonetic": "やまだ^たろう"}
    assert first(japanese, "00080005") == "ISO_IR 192"
    assert study_uids(search(qido, "/api/studies?PatientName=" + quote("山田*"))) == {H31_STUDY}
    assert study_uids(search(qido, "/api/studies?PatientName=yamada^tarou")) == {H31_STUDY}
    assert study_uids(search(qido, "/api/studies?PatientName=" + quote("たろう") + "&fuzzymatching=true")) \
        == {H31_STUDY}
    (chinese,) = search(qido, "/api/studies?PatientName=Wang^XiaoDong")
    assert first(chinese, "00100010")["Ideographic"] == "王^小東"
    (german,) = search(qido, "/api/studies?PatientName=" + quote("Äneas^Rüdiger"))
    assert first(german, "00100010") == {"Alphabetic": "Äneas^Rüdiger"}
    assert len(search(qido, "/api/studies?PatientName=aneas^rudiger")) == 1
    # Attributes from stored metadata are Unicode too, and the character set is the response's.
    (instance,) = search(qido, f"/api/studies/{H31_STUDY}/instances?includefield=all")
    assert first(instance, "00080005") == "ISO_IR 192"
    assert first(instance, "00100010")["Ideographic"] == "山田^太郎"
    assert "7FE00010" not in instance


# --- includefield ------------------------------------------------------------------------------------------

def test_includefield_by_keyword_tag_list_and_repeat(qido):
    (study,) = search(qido, f"/api/studies?StudyInstanceUID={A}&includefield=PatientAge,00280004"
                            "&includefield=00280010&includefield=SOPClassUID")
    assert first(study, "00101010") == "054Y"                  # from the representative instance
    assert first(study, "00280004") == "MONOCHROME2"
    assert first(study, "00280010") == 16
    assert "00080016" in study
    (series,) = search(qido, f"/api/studies/{A}/series?SeriesInstanceUID={A_CT}&includefield=BitsStored")
    assert first(series, "00280101") == 12
    (instance,) = search(qido, f"/api/instances?SOPInstanceUID={uid('instance', 'A', 'mr', '1')}"
                               "&includefield=PhotometricInterpretation,PatientAge")
    assert first(instance, "00280004") == "MONOCHROME2" and first(instance, "00101010") == "054Y"
    (instance,) = search(qido, f"/api/studies/{A}/series/{A_MR}/instances?includefield=RequestAttributesSequence")
    (item,) = values(instance, "00400275")
    assert first(item, "00400009") == "SPS-1"
    (study,) = search(qido, f"/api/studies?StudyInstanceUID={B}&includefield=PatientAge")
    assert study["00101010"] == {"vr": "AS"}                   # asked for, absent: present and empty


def test_includefield_all_returns_what_is_stored(qido):
    (study,) = search(qido, f"/api/studies?StudyInstanceUID={A}&includefield=all")
    assert first(study, "00101010") == "054Y"                  # PatientAge: study level
    assert "00280010" not in study and "00080018" not in study  # Rows, SOPInstanceUID: not study level
    assert first(study, "00201208") == 3
    (series,) = search(qido, f"/api/studies/{A}/series?SeriesInstanceUID={A_MR}&includefield=all")
    assert first(series, "00080060") == "MR" and values(series, "00400275")
    instance = search(qido, f"/api/studies/{A}/series/{A_CT}/instances?includefield=all")[0]
    assert first(instance, "00280101") == 12                   # BitsStored
    assert first(instance, "00280004") == "MONOCHROME2"
    assert "7FE00010" not in instance                           # no bulk data in search results


def test_includefield_rejects_unknown_names(qido):
    body = get(qido, "/api/studies?includefield=NoSuchKeyword", 400).get_json()
    assert "NoSuchKeyword" in body["message"] and body["status"] == 400


# --- paging ------------------------------------------------------------------------------------------------

def test_limit_and_offset_page_without_overlap_or_gaps(qido):
    everything = [first(r, "0020000D") for r in search(qido, "/api/studies")]
    pages = []
    for offset in range(0, 8, 3):
        pages += [first(r, "0020000D") for r in search(qido, f"/api/studies?limit=3&offset={offset}")]
    assert pages == everything and len(set(pages)) == 7
    assert search(qido, "/api/studies?offset=100") == []
    instances = [first(r, "00080018") for r in search(qido, "/api/instances")]
    assert [first(r, "00080018") for r in search(qido, "/api/instances?limit=4&offset=4")] == instances[4:8]


@pytest.mark.parametrize("parameter", ["limit=-1", "limit=abc", "limit=0", "offset=-3", "offset=1.5",
                                       "limit=", "limit=1&limit=2"])
def test_bad_limit_or_offset_is_400(qido, parameter):
    body = get(qido, f"/api/studies?{parameter}", 400).get_json()
    assert body["status"] == 400 and parameter.split("=")[0] in body["message"]


def test_maximum_results_cut_with_a_warning(make_app):
    client = make_app(**{"qido:maximumResultsLimit": "2"}).test_client()
    parts = [make_instance(f"M{n}", "s", "1") for n in range(3)]
    assert client.post("/api/studies", data=multipart(parts), headers=stow_headers()).status_code == 200
    response = get(client, "/api/studies")
    assert len(response.get_json()) == 2
    (warning,) = response.headers.get_all("Warning")
    assert warning.startswith('299 localhost: "') and "maximumResultsLimit" in warning
    response = get(client, "/api/studies?limit=50")
    assert len(response.get_json()) == 2 and response.headers.get_all("Warning")
    response = get(client, "/api/studies?limit=2&offset=1")       # the client's own limit: no warning
    assert len(response.get_json()) == 2 and not response.headers.get_all("Warning")
    assert not get(client, "/api/studies?offset=1").headers.get_all("Warning")   # all that is left fits


# --- warnings and errors -----------------------------------------------------------------------------------

def test_keys_the_server_does_not_match_on_are_ignored_with_a_warning(qido):
    response = get(qido, "/api/studies?PatientName=doe*&ImageType=ORIGINAL&00180015=HEAD")
    assert names(response.get_json()) == ["Doe^John", "Doe^Johnny"]
    assert all(w.startswith('299 localhost: "') and w.endswith('"')
               for w in response.headers.get_all("Warning"))
    warnings = " ".join(response.headers.get_all("Warning"))
    assert "ImageType" in warnings and "BodyPartExamined" in warnings
    response = get(qido, f"/api/studies?SOPInstanceUID={uid('instance', 'A', 'ct', '1')}")
    assert len(response.get_json()) == 7 and "SOPInstanceUID" in response.headers["Warning"]
    assert not get(qido, "/api/studies?PatientID=PID-1").headers.get_all("Warning")


@pytest.mark.parametrize("query, named", [
    ("StudyDate=2024-01-02", "StudyDate"),
    ("StudyDate=20241301", "StudyDate"),
    ("StudyDate=20240102-20240101", "StudyDate"),
    ("StudyDate=2024*", "StudyDate"),
    ("StudyTime=2500", "StudyTime"),
    ("StudyTime=10:15:00x", "StudyTime"),
    ("PatientBirthDate=-", "PatientBirthDate"),
    ("StudyInstanceUID=1.2.abc", "StudyInstanceUID"),
    ("StudyInstanceUID=1.2.*", "StudyInstanceUID"),
    ("SOPInstanceUID=1.02.3", "SOPInstanceUID"),
    ("SeriesNumber=two", "SeriesNumber"),
    ("NoSuchKeyword=1", "NoSuchKeyword"),
    ("0010001G=x", "0010001G"),
    ("patientname=x", "patientname"),
    ("PatientID=1&PatientID=2", "PatientID"),
    ("PatientID.CodeValue=1", "PatientID"),
    ("ModalitiesInStudy=CT,*", "ModalitiesInStudy"),
    ("PatientName=%ZZ", "%ZZ"),
])
def test_malformed_queries_are_400_naming_the_problem(qido, query, named):
    body = get(qido, f"/api/instances?{query}", 400).get_json()
    assert body["status"] == 400 and body["error"] == "Bad Request"
    assert named in body["message"]


@pytest.mark.parametrize("query", [
    "PatientName=%00", "PatientID=a%00b", "%00=1", "PatientName=%5E", "PatientName=%3D", "PatientName=%FF%FE",
    "PatientName=" + "x" * 5000, "PatientName=*%5B*", "AccessionNumber=%5B%5D", "PatientName=" + quote("名*"),
    "StudyDate=99991231-&TimezoneOffsetFromUTC=-1200", "StudyDate=-00010101&TimezoneOffsetFromUTC=%2B1400",
    "StudyDate=00010101-99991231&StudyTime=000000-235959.999999", "StudyTime=23.5", "SeriesNumber=-0",
    "limit=2147483647", "offset=2147483647", "includefield=00091001", "00091001=private", "=x", "&&&",
    "fuzzymatching=true&PatientName=%20%20", "InstanceNumber=1,,2", "PatientName=a&fuzzymatching=TRUE",
])
def test_odd_queries_are_answered_never_500(qido, query):
    response = qido.get(f"/api/instances?{query}")
    assert response.status_code in (200, 400), (query, response.data[:300])
    assert response.get_json() is not None


def test_bad_uid_in_the_path_is_400(qido):
    assert "StudyInstanceUID" in get(qido, "/api/studies/1.2.x/series", 400).get_json()["message"]
    body = get(qido, f"/api/studies/{A}/series/abc/instances", 400).get_json()
    assert "SeriesInstanceUID" in body["message"]


# --- media types -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("accept, expected", [
    (None, "application/dicom+json"),
    ("*/*", "application/dicom+json"),
    ("application/dicom+json", "application/dicom+json"),
    ("application/json", "application/json"),
    ("text/html, application/json;q=0.9, */*;q=0.1", "application/json"),
    ("application/dicom+json; q=0.5, multipart/related; type=\"application/dicom+xml\"", "multipart/related"),
    ("multipart/related; type=\"application/dicom+xml\"", "multipart/related"),
    ("multipart/related; type=application/dicom+xml", "multipart/related"),
    ("multipart/related;type=\"application/dicom+xml\";q=0.9, application/dicom+json;q=0.1",
     "multipart/related"),
    ("application/dicom+json;q=0, */*", "application/json"),
])
def test_accept_headers_as_clients_send_them(qido, accept, expected):
    headers = {"Accept": accept} if accept else {}
    response = get(qido, f"/api/studies?StudyInstanceUID={A}", **headers)
    assert response.mimetype == expected


def test_multipart_xml_has_one_native_dicom_model_per_result(qido):
    response = get(qido, "/api/studies?PatientName=doe*",
                   Accept='multipart/related; type="application/dicom+xml"')
    content_type = response.headers["Content-Type"]
    assert 'type="application/dicom+xml"' in content_type
    boundary = content_type.split("boundary=")[1].strip('"')
    chunks = response.data.split(b"--" + boundary.encode())
    parts = [c for c in chunks[1:] if not c.startswith(b"--")]
    assert len(parts) == 2
    found = []
    for part in parts:
        head, _, body = part.partition(b"\r\n\r\n")
        assert b"application/dicom+xml" in head
        root = etree.fromstring(body.rstrip(b"\r\n"))
        assert root.tag == NATIVE + "NativeDicomModel"
        name = root.find(f"{NATIVE}DicomAttribute[@keyword='PatientName']/{NATIVE}PersonName/"
                         f"{NATIVE}Alphabetic/{NATIVE}GivenName")
        found.append(name.text)
        charset = root.find(f"{NATIVE}DicomAttribute[@tag='00080005']/{NATIVE}Value")
        assert charset.text == "ISO_IR 192"
    assert sorted(found) == ["John", "Johnny"]
    empty = get(qido, "/api/studies?PatientID=nobody", Accept="multipart/related; type=application/dicom+xml")
    assert empty.status_code == 200 and b"<NativeDicomModel" not in empty.data


@pytest.mark.parametrize("accept", [
    "image/png", "application/dicom", "multipart/related; type=\"image/jpeg\"",
    "application/dicom+json;q=0, application/json;q=0, multipart/related;q=0"])
def test_unacceptable_accept_is_406_naming_what_can_be_had(qido, accept):
    body = get(qido, "/api/studies", 406, Accept=accept).get_json()
    assert "application/dicom+json" in body["message"] and "application/dicom+xml" in body["message"]


def test_empty_result_is_200_with_an_empty_array(qido):
    response = get(qido, "/api/studies?PatientID=nobody")
    assert response.get_json() == [] and response.mimetype == "application/dicom+json"


# --- speed: one SELECT per search, plus at most one batched metadata query ---------------------------------

def test_each_search_is_one_select_plus_at_most_one_batched_fragment_query(qido):
    engine = qido.application.extensions["dicomcloud"].engine
    statements = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        def selects(url):
            statements.clear()
            search(qido, url)
            return len(statements)
        assert selects("/api/studies") == 1
        assert selects("/api/studies?includefield=PatientAge") == 2          # + one batched fragment query
        assert selects("/api/series") == 2                                   # RequestAttributesSequence
        assert selects(f"/api/studies/{A}/series?SeriesInstanceUID={A_CT}") == 1   # nothing to fetch
        assert selects("/api/instances?includefield=all") == 1               # metadata in the same SELECT
        assert selects("/api/series?includefield=all&limit=100") == 2
    finally:
        event.remove(engine, "before_cursor_execute", count)
