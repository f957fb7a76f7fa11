"""QIDO-RS over real HTTP: dicomweb-client searching a server started by `python -m app serve`."""
from __future__ import annotations

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.helpers import LiveServer, make_dataset, uid, write_web_config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qido-live")
    config = write_web_config(folder, {"app:PacsStorageConnection": "|DataDirectory|/Storage",
                                       "app:PacsDataArchieve": "sqlite:///|DataDirectory|/pacs.sqlite3"})
    live = LiveServer(config)
    client = DICOMwebClient(url=live.url + "/api")
    client.store_instances(datasets=[
        make_dataset("LQ1", "ct", f"i{n}", InstanceNumber=n + 1) for n in range(3)] + [
        make_dataset("LQ1", "mr", "i0", modality="MR", SeriesNumber=2),
        make_dataset("LQ2", "ct", "i0", patient_name="Müller^Anna", patient_id="PID-LQ2",
                     study_date="20190607"),
    ])
    yield live
    live.stop()


@pytest.fixture
def client(server):
    return DICOMwebClient(url=server.url + "/api")


def test_search_for_studies_with_filters_fuzzy_and_paging(client):
    studies = client.search_for_studies()
    assert {s["0020000D"]["Value"][0] for s in studies} == {uid("study", "LQ1"), uid("study", "LQ2")}
    (study,) = client.search_for_studies(search_filters={"PatientName": "müller*"})
    assert study["00100010"]["Value"][0]["Alphabetic"] == "Müller^Anna"
    (study,) = client.search_for_studies(search_filters={"PatientName": "ann"}, fuzzymatching=True)
    assert study["00100020"]["Value"][0] == "PID-LQ2"
    assert client.search_for_studies(search_filters={"StudyDate": "20190101-20191231"})[0]["0020000D"][
        "Value"][0] == uid("study", "LQ2")
    assert len(client.search_for_studies(limit=1)) == 1
    assert len(client.search_for_studies(limit=1, offset=1)) == 1
    assert client.search_for_studies(search_filters={"PatientID": "nobody"}) == []
    (study,) = client.search_for_studies(search_filters={"ModalitiesInStudy": "MR"},
                                         fields=["PatientAge", "00280010"])
    assert study["00280010"]["Value"] == [16]


def test_search_for_series_in_a_study_and_across_studies(client):
    series = client.search_for_series(study_instance_uid=uid("study", "LQ1"))
    assert {s["00080060"]["Value"][0] for s in series} == {"CT", "MR"}
    (mr,) = client.search_for_series(search_filters={"Modality": "MR"})
    assert mr["0020000D"]["Value"][0] == uid("study", "LQ1")
    assert mr["00201209"]["Value"] == [1]


def test_search_for_instances_at_every_level(client):
    assert len(client.search_for_instances()) == 5
    assert len(client.search_for_instances(study_instance_uid=uid("study", "LQ1"))) == 4
    instances = client.search_for_instances(study_instance_uid=uid("study", "LQ1"),
                                            series_instance_uid=uid("series", "LQ1", "ct"))
    assert [i["00200013"]["Value"][0] for i in instances] == [1, 2, 3]
    sop = uid("instance", "LQ1", "ct", "i1")
    (instance,) = client.search_for_instances(search_filters={"SOPInstanceUID": sop}, get_remaining=True)
    assert instance["00081190"]["Value"][0].endswith(f"/instances/{uid('instance', 'LQ1', 'ct', 'i1')}")


def test_warning_header_and_400_over_http(server):
    response = requests.get(server.url + "/api/studies?ImageType=ORIGINAL", timeout=10)
    assert response.status_code == 200
    assert response.headers["Warning"].startswith("299 ") and "ImageType" in response.headers["Warning"]
    response = requests.get(server.url + "/qidors/studies?limit=-5", timeout=10)
    assert response.status_code == 400 and response.json()["status"] == 400
