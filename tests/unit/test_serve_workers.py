"""``python -m app serve`` chooses its number of worker processes."""
from __future__ import annotations

import os

from app.__main__ import default_workers


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
