"""Files a user keeps are written all or nothing: a failed write keeps the previous file."""
from __future__ import annotations

import errno
import os

import pytest

import tuner.files
from tuner.files import atomic_write_bytes, atomic_write_text


def _disk_full(*_):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_file_is_written_with_the_umasks_mode_and_replaced(tmp_path):
    path = tmp_path / "sub" / "best.json"
    old = os.umask(0o027)
    try:
        atomic_write_text(path, "first")
    finally:
        os.umask(old)
    assert path.read_text() == "first" and path.stat().st_mode & 0o777 == 0o640
    atomic_write_bytes(path, b"second", mode=0o600)
    assert path.read_bytes() == b"second" and path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.json"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_write_keeps_the_previous_file_and_leaves_no_partial_one(tmp_path, monkeypatch,
                                                                         failing):
    path = tmp_path / "report.html"
    atomic_write_text(path, "the previous report")
    monkeypatch.setattr(tuner.files.os, failing, _disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        atomic_write_text(path, "x" * 100_000)
    assert path.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
