"""``python -m app serve`` chooses its number of worker processes."""
from __future__ import annotations

import os

import subprocess
import sys

from app.__main__ import default_workers
from tests.helpers import REPO


def test_one_worker_per_usable_core_by_default(monkeypatch):
    monkeypatch.delenv("DICOMCLOUD_WORKERS", raising=False)
    expected = min(len(os.sched_getaffinity(0)), 8) if hasattr(os, "sched_getaffinity") else 1
    assert default_workers() == expected


def test_environment_variable_wins(monkeypatch):
    monkeypatch.setenv("DICOMCLOUD_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.setenv("DICOMCLOUD_WORKERS", "0")
    assert default_workers() == 1


def test_without_fork_one_process(monkeypatch):
    monkeypatch.delenv("DICOMCLOUD_WORKERS", raising=False)
    monkeypatch.delattr(os, "fork")
    assert default_workers() == 1


def test_a_malformed_environment_variable_is_a_clear_error(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DICOMCLOUD_WORKERS": "two"}
    done = subprocess.run([sys.executable, "-m", "app", "serve", "--port", "1"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "DICOMCLOUD_WORKERS" in done.stderr and "Traceback" not in done.stderr
