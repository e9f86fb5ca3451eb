"""The output cannot be written: a read-only folder, a full disk, a file size limit. The run stops with a clear
error naming the path and a non-zero exit code; no partial shard is ever visible; once the cause is fixed, the
same command resumes and completes.

Read-only folders use chmod, or (as root, whom chmod does not stop) a read-only tmpfs; the full disk is a small
tmpfs (root only, skipped elsewhere); the file size limit (RLIMIT_FSIZE, `ulimit -f`) works for anyone.
"""
from __future__ import annotations

import contextlib
import os
import resource
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from augment.core import manifest
from tests.reliability.helpers import SAMPLE, assert_complete_and_clean, moon, temp_files

pytestmark = pytest.mark.slow
ARGS = ("run", "--input", str(SAMPLE), "--no-ray", "--no-progress")


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here: {result.stderr.strip()}")


@contextlib.contextmanager
def read_only(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    _mount("-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder))
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    if os.geteuid() != 0:
        pytest.skip("a small filesystem needs root (mount)")
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def assert_nothing_partial(run: Path) -> None:
    """No temp file; every visible shard file is a whole Parquet file; committed ones match their record."""
    assert temp_files(run) == []
    records = manifest.load(str(run))
    for path in list(run.glob("data/*.parquet")) + list(run.glob("quarantine/*.parquet")):
        rows = pq.read_metadata(path).num_rows  # raises on a truncated file
        record = records.get(path.stem)
        if record is not None:
            assert rows == (record.rows_out if path.parent.name == "data" else record.rows_quarantined)


def test_read_only_run_folder_fails_at_once_naming_it(tmp_path):
    with read_only(tmp_path / "ro"):
        proc = moon(*ARGS, "--limit", "8", "--output", str(tmp_path / "ro" / "run"))
    assert proc.returncode != 0
    assert str(tmp_path / "ro" / "run") in proc.stderr
    assert "Read-only file system" in proc.stderr or "Permission denied" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_read_only_data_folder_fails_at_the_first_shard_and_resumes_once_writable(tmp_path):
    run = tmp_path / "run"
    with read_only(run / "data"):
        proc = moon(*ARGS, "--limit", "8", "--shard-size", "4", "--output", str(run))
        assert proc.returncode == 1
        assert f"error: cannot write shard file {run / 'data'}/" in proc.stderr
        assert "Read-only file system" in proc.stderr or "Permission denied" in proc.stderr
        assert manifest.load(str(run)) == {}
    assert_nothing_partial(run)
    proc = moon(*ARGS, "--limit", "8", "--shard-size", "4", "--output", str(run))
    assert proc.returncode == 0, proc.stderr
    assert_complete_and_clean(run, 2, 8)


def test_disk_full_stops_with_the_path_and_resumes_after_space_is_freed(tmp_path):
    disk = tmp_path / "disk"
    run = disk / "run"
    args = (*ARGS, "--limit", "60", "--shard-size", "20", "--output", str(run))  # shards of about 2 MB
    with small_disk(disk, "3m"):
        proc = moon(*args)
        assert proc.returncode == 1
        assert f"error: cannot write shard file {run}/" in proc.stderr
        assert "No space left on device" in proc.stderr
        assert "Traceback" not in proc.stderr
        committed = manifest.load(str(run))
        assert len(committed) < 3
        assert_nothing_partial(run)
        _mount("-o", "remount,size=64m", str(disk))  # space freed
        proc = moon(*args)
        assert proc.returncode == 0, proc.stderr
        assert_complete_and_clean(run, 3, 60)


def test_file_size_limit_stops_with_the_path(tmp_path):
    run = tmp_path / "run"

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # ulimit -f 1024

    proc = moon(*ARGS, "--limit", "20", "--shard-size", "20", "--output", str(run), preexec_fn=limit_file_size)
    assert proc.returncode == 1
    assert f"error: cannot write shard file {run / 'data'}/" in proc.stderr
    assert "File too large" in proc.stderr
    assert manifest.load(str(run)) == {}
    assert_nothing_partial(run)
    assert list((run / "data").iterdir()) == []
