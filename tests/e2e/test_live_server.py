"""The server as other tooling starts it (``python -m app serve``), driven by real HTTP clients."""
from __future__ import annotations

import subprocess
import sys

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from tests.helpers import REPO, LiveServer, huge_instance_stream, make_dataset, make_instance, multipart, \
    stow_headers, uid, write_web_config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    config = write_web_config(folder, {"app:PacsStorageConnection": "|DataDirectory|/Storage",
                                       "app:PacsDataArchieve": "sqlite:///|DataDirectory|/pacs.sqlite3"})
    live = LiveServer(config)
    live.folder = folder
    yield live
    live.stop()


def test_health_and_embedded_default_layout(server):
    response = requests.get(server.url + "/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["database"]["backend"] == "sqlite"
    assert (server.folder / "App_Data" / "pacs.sqlite3").is_file()
    assert (server.folder / "App_Data" / "Storage").is_dir()


def test_dicomweb_client_store_instances(server):
    client = DICOMwebClient(url=server.url + "/api")
    datasets = [make_dataset("DWC", "s", f"i{n}") for n in range(3)]
    result = client.store_instances(datasets=datasets)
    assert isinstance(result, Dataset)
    stored = sorted(item.ReferencedSOPInstanceUID for item in result.ReferencedSOPSequence)
    assert stored == sorted(ds.SOPInstanceUID for ds in datasets)
    for item in result.ReferencedSOPSequence:
        # dicomweb-client sends "Host: 127.0.0.1" without the port; the URL follows the Host header.
        assert item.RetrieveURL.startswith("http://127.0.0.1")
        assert f"/api/studies/{uid('study', 'DWC')}/series/" in item.RetrieveURL
    # again, into the study resource: duplicates are refused with the standard reason
    with pytest.raises(requests.HTTPError) as refused:
        client.store_instances(datasets=datasets[:1], study_instance_uid=uid("study", "DWC"))
    assert refused.value.response.status_code == 409


def test_dicomcloud_alias_over_http(server):
    response = requests.post(server.url + "/stowrs/studies", data=multipart([make_instance("ALIAS", "s", "1")]),
                             headers=stow_headers(), timeout=30)
    assert response.status_code == 200, response.text


def test_large_upload_streams_without_growing_memory(server):
    """A 512 MB instance: the server's peak RSS may grow by a few tens of MB at most."""
    before = server.peak_rss_bytes()
    frames = 1024                                   # 1024 x 512 x 512 x 2 bytes = 512 MiB
    response = requests.post(server.url + "/api/studies", data=huge_instance_stream("BIG", frames),
                             headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=big'},
                             timeout=600)
    assert response.status_code == 200, response.text
    growth = server.peak_rss_bytes() - before
    print(f"peak RSS growth for a 512 MiB upload: {growth / 2**20:.1f} MiB")
    assert growth < 48 * 2**20
    stored = list((server.folder / "App_Data" / "Storage").rglob("*.dcm"))
    assert max(p.stat().st_size for p in stored) > frames * 512 * 512 * 2
    big = max(stored, key=lambda p: p.stat().st_size)
    ds = pydicom.dcmread(big, stop_before_pixels=True)
    assert ds.NumberOfFrames == frames


def test_environment_overrides_web_config(tmp_path):
    config = write_web_config(tmp_path, {"app:PacsStorageConnection": "|DataDirectory|/Storage"})
    live = LiveServer(config, env={"app__PacsStorageConnection": str(tmp_path / "from-env"),
                                   "app__storecommand_validateDuplicateInstance": "false"})
    try:
        data = multipart([make_instance("ENV", "s", "1")])
        for _ in range(2):   # the second store replaces: validateDuplicateInstance=false came from env
            assert requests.post(live.url + "/api/studies", data=data, headers=stow_headers(),
                                 timeout=30).status_code == 200
        assert len(list((tmp_path / "from-env").rglob("*.dcm"))) == 1
        assert not (tmp_path / "App_Data" / "Storage").exists()
    finally:
        live.stop()


def test_bad_configuration_is_reported_at_start_all_at_once(tmp_path):
    config = write_web_config(tmp_path, {"qido:maximumResultsLimit": "lots",
                                         "app:storecommand.validateDuplicateInstance": "perhaps",
                                         "app:WadoRsUrl": "ftp://x"})
    done = subprocess.run([sys.executable, "-m", "app", "serve", "--config", str(config), "--port", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    for key in ("qido:maximumResultsLimit", "app:storecommand.validateDuplicateInstance", "app:WadoRsUrl"):
        assert key in done.stderr
    assert "Traceback" not in done.stderr


def test_several_worker_processes_share_the_port(tmp_path):
    """--workers 2: two waitress processes on one socket, one index; concurrent stores converge."""
    import threading
    config = write_web_config(tmp_path, {})
    live = LiveServer(config, extra_args=["--workers", "2"])
    try:
        children = subprocess.run(["pgrep", "-P", str(live.process.pid)], capture_output=True, text=True)
        assert len(children.stdout.split()) == 2
        statuses = []

        def upload(worker):
            for batch in range(3):
                body = multipart([make_instance("WK", "s", f"w{worker}b{batch}n{n}") for n in range(4)])
                statuses.append(requests.post(live.url + "/api/studies", data=body, headers=stow_headers(),
                                              timeout=60).status_code)

        threads = [threading.Thread(target=upload, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 12
        found = requests.get(live.url + f"/api/studies?StudyInstanceUID={uid('study', 'WK')}", timeout=30).json()
        assert found[0]["00201208"]["Value"] == [48]          # NumberOfStudyRelatedInstances
    finally:
        live.stop()
    assert subprocess.run(["pgrep", "-f", "--", f"--port {live.port}"], capture_output=True).returncode == 1


def test_request_bodies_are_spooled_in_the_configured_temp_directory(tmp_path):
    """waitress buffers a whole upload before the app runs; that buffer must not land in the system /tmp."""
    import os
    import threading
    import time
    config = write_web_config(tmp_path, {})
    live = LiveServer(config)
    spool = (tmp_path / "App_Data" / "tmp").resolve()
    seen = []

    def watch():
        deadline = time.time() + 60
        while time.time() < deadline and not seen:
            for fd in os.listdir(f"/proc/{live.process.pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{live.process.pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith(str(spool)) and "(deleted)" in target:
                    seen.append(target)
            time.sleep(0.005)

    try:
        watcher = threading.Thread(target=watch)
        watcher.start()
        response = requests.post(live.url + "/api/studies", data=huge_instance_stream("SPOOL", 256),
                                 headers={"Content-Type": 'multipart/related; type="application/dicom"; '
                                                          'boundary=big'}, timeout=120)
        watcher.join()
        assert response.status_code == 200, response.text
        assert seen, "no request buffer found in app:tempDirectory"
    finally:
        live.stop()
