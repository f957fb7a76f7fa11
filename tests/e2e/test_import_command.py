"""``python -m app import``: files and folders stored through the STOW-RS code, without HTTP."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

from app import create_app
from tests.helpers import REPO, make_instance, sample_path, uid, write_web_config


def test_import_stores_folders_and_reports_failures(tmp_path):
    source = tmp_path / "incoming" / "nested"
    source.mkdir(parents=True)
    shutil.copy(sample_path("CT_small.dcm"), source / "ct.dcm")
    (source / "a.dcm").write_bytes(make_instance("IMP", "s", "1"))
    (source.parent / "b.dcm").write_bytes(make_instance("IMP", "s", "2"))
    (source / "notes.txt").write_text("not DICOM")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.parent.rglob("*") if p.is_file()}
    config = write_web_config(tmp_path, {})

    done = subprocess.run([sys.executable, "-m", "app", "import", "--config", str(config), str(source.parent)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1                               # one file failed
    assert "stored 3, failed 1" in done.stdout
    assert "notes.txt" in done.stderr and "not a readable DICOM" in done.stderr
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.parent.rglob("*") if p.is_file()}
    assert after == before                                    # the caller's files are left as they were

    client = create_app(str(config), environ={}).test_client()
    found = client.get(f"/api/studies/{uid('study', 'IMP')}/instances").get_json()
    assert len(found) == 2
    assert len(client.get("/api/studies").get_json()) == 2

    again = subprocess.run([sys.executable, "-m", "app", "import", "--config", str(config), str(source / "a.dcm")],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "already stored" in again.stderr
