"""augment.core.storage without a server: what it retries, and what it does not."""
from __future__ import annotations

import io
import os
import re

import pytest

from augment.core import storage


class CutOffBodies:
    """A filesystem whose first `cuts` reads break off mid-body, as an S3 GetObject whose connection resets."""

    def __init__(self, cuts: int, missing: bool = False):
        self.cuts, self.missing, self.opens = cuts, missing, 0

    def open_input_stream(self, path):
        self.opens += 1
        if self.missing:
            raise FileNotFoundError(path)
        if self.opens <= self.cuts:
            raise OSError("AWS Error INTERNAL_FAILURE during GetObject operation: Failed to flush response stream")
        return io.BytesIO(b"body")


@pytest.mark.parametrize("cuts, read", [(0, 1), (1, 2), (storage.BODY_READ_ATTEMPTS - 1, storage.BODY_READ_ATTEMPTS)])
def test_an_s3_body_cut_off_is_read_again(monkeypatch, cuts, read):
    fs = CutOffBodies(cuts)
    monkeypatch.setattr(storage, "filesystem", lambda uri: (fs, "bucket/key"))
    monkeypatch.setattr(storage.time, "sleep", lambda s: None)
    assert storage.read_bytes("s3://bucket/key") == b"body" and fs.opens == read


def test_reads_give_up_after_the_last_attempt_and_never_retry_a_missing_object_or_a_local_file(monkeypatch):
    monkeypatch.setattr(storage.time, "sleep", lambda s: None)
    for uri, fs, opens in [("s3://bucket/key", CutOffBodies(storage.BODY_READ_ATTEMPTS), storage.BODY_READ_ATTEMPTS),
                           ("/data/key", CutOffBodies(1), 1)]:
        monkeypatch.setattr(storage, "filesystem", lambda uri, fs=fs: (fs, "key"))
        with pytest.raises(OSError, match="Failed to flush response stream"):
            storage.read_bytes(uri)
        assert fs.opens == opens
    missing = CutOffBodies(0, missing=True)
    monkeypatch.setattr(storage, "filesystem", lambda uri: (missing, "bucket/key"))
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("s3://bucket/key")
    assert missing.opens == 1


def test_an_append_waits_for_the_lock_of_a_writer_on_another_machine(tmp_path):
    """On NFS, appends from several machines stay whole lines only under the file's POSIX lock: an append waits
    while another process (here standing for another machine's writer) holds it, then writes after it."""
    import subprocess
    import sys
    import threading

    manifest = tmp_path / "_manifest.jsonl"
    storage.append_line(str(manifest), '{"shard_id": "a"}')
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_APPEND); "
                               "fcntl.lockf(fd, fcntl.LOCK_EX); os.write(fd, b'{\"shard_id\": \"b\"}\\n'); "
                               "print('locked', flush=True); sys.stdin.read()", str(manifest)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        appender = threading.Thread(target=storage.append_line, args=(str(manifest), '{"shard_id": "c"}'))
        appender.start()
        appender.join(timeout=1.0)
        assert appender.is_alive()  # waiting for the lock
        assert manifest.read_text().splitlines() == ['{"shard_id": "a"}', '{"shard_id": "b"}']
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    appender.join(timeout=30)
    assert not appender.is_alive()
    assert manifest.read_text().splitlines() == ['{"shard_id": "a"}', '{"shard_id": "b"}', '{"shard_id": "c"}']


def test_an_append_where_the_filesystem_has_no_locks_goes_on_with_one_warning(tmp_path, monkeypatch, caplog):
    import errno

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(storage.fcntl, "lockf", no_locks)
    manifest = str(tmp_path / "_manifest.jsonl")
    with caplog.at_level("WARNING", logger=storage.__name__):
        storage.append_line(manifest, "one")
        storage.append_line(manifest, "two")
    assert (tmp_path / "_manifest.jsonl").read_text() == "one\ntwo\n"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "refuses file locks (No locks available)" in warnings[0]


@pytest.mark.parametrize("write", ["bytes", "file", "publishing"])
def test_a_write_to_a_link_replaces_its_target_and_keeps_the_link(tmp_path, write):
    target, link = tmp_path / "real.jsonl", tmp_path / "out.jsonl"
    target.write_text("old")
    link.symlink_to(target.name)
    _write(write, str(link), b"new", tmp_path)
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "real.jsonl"]  # no temp file left


@pytest.mark.parametrize("write", ["bytes", "file", "publishing"])
def test_a_write_to_a_pipe_goes_into_it_and_never_replaces_it(tmp_path, write):
    """The same holds for a device: `--output /dev/null` as root must not turn /dev/null into a plain file."""
    import stat
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    _write(write, str(pipe), b"through the pipe", tmp_path)
    reader.join(timeout=30)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(pipe.stat().st_mode)


def _write(how: str, uri: str, data: bytes, folder) -> None:
    if how == "bytes":
        storage.write_atomic(uri, data)
    elif how == "file":
        local = folder / "made-elsewhere.tmp"
        local.write_bytes(data)
        storage.write_file_atomic(uri, local)
        assert not local.exists()
    else:
        with storage.publishing(uri) as tmp:
            tmp.write_bytes(data)


def test_a_temp_file_is_taken_only_from_a_writer_that_is_gone(tmp_path):
    """A second driver of the same shards deleted the temp file the first was writing, which then failed with
    'No such file or directory'. A temp file names its writer; one of a process that has ended here, or one
    without change for an hour (a writer elsewhere), is abandoned."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from augment.core import storage

    mine = storage.temp_path_for(str(tmp_path / "shard.parquet"))
    mine.write_bytes(b"x")
    assert storage.temp_owner(mine) == (socket.gethostname(), os.getpid())
    assert not storage.temp_abandoned(mine)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = mine.with_name(f".shard.parquet.tmp-{socket.gethostname()}-{int(ended.stdout)}-0a1b2c3d")
    gone.write_bytes(b"x")
    assert storage.temp_abandoned(gone)
    elsewhere = mine.with_name(".shard.parquet.tmp-other-host.example-4242-0a1b2c3d")
    unnamed = mine.with_name(".shard.parquet.tmp-0a1b2c3d")  # as older versions named them
    for path in (elsewhere, unnamed):
        path.write_bytes(b"x")
        assert not storage.temp_abandoned(path)
        hour_ago = time.time() - 3601
        os.utime(path, (hour_ago, hour_ago))
        assert storage.temp_abandoned(path)
    assert storage.temp_owner(elsewhere) == ("other-host.example", 4242) and storage.temp_owner(unnamed) is None


def test_a_store_that_cannot_serve_now_is_told_from_an_object_that_is_not_there():
    import errno

    from augment.core import storage

    for unavailable in (OSError("AWS Error NETWORK_CONNECTION during HeadObject operation: curl code 7"),
                        OSError("AWS Error SLOW_DOWN during GetObject operation: Please reduce your request rate."),
                        OSError("AWS Error UNKNOWN (HTTP status 503) during GetObject operation"),
                        OSError(errno.ETIMEDOUT, "Connection timed out"), OSError(errno.ESTALE, "Stale file handle")):
        assert storage.unavailable(unavailable), unavailable
    for there_or_not in (FileNotFoundError(errno.ENOENT, "No such file"), PermissionError(errno.EACCES, "denied"),
                         OSError("AWS Error ACCESS_DENIED during GetObject operation"),
                         OSError("AWS Error UNKNOWN (HTTP status 404) during HeadObject operation"), ValueError("x")):
        assert not storage.unavailable(there_or_not), there_or_not


def test_an_s3_address_a_url_parser_would_cut_or_arrow_refuses_is_one_line():
    """s3://bkt/runs/p?x wrote every file of the run to the one object runs/p; runs//x was an ArrowInvalid
    traceback."""
    import pytest

    from augment.cli import main
    from augment.core import storage

    for uri, says in (("s3://bkt/runs/p?x", "a '?' or '#'"), ("s3://bkt/runs/p#x", "a '?' or '#'"),
                      ("s3://bkt/runs//double", "an empty path component")):
        with pytest.raises(storage.AddressError, match=f"^{re.escape(uri)}: {re.escape(says)}"):
            storage.split_s3(uri)
    assert storage.split_s3("s3://bkt/runs/x/") == ("bkt", "runs/x/")
    assert main(["verify", "s3://bkt/runs//double"]) == 2
    assert main(["run", "--output", "s3://bkt/runs/p?x", "--no-ray"]) == 2


def test_a_file_created_exclusively_is_made_once_and_kept(tmp_path):
    from augment.core import storage

    target = str(tmp_path / "run" / "_run.json")
    (tmp_path / "run").mkdir()
    assert storage.create_exclusive(target, b"first") is True
    assert storage.create_exclusive(target, b"second") is False
    assert (tmp_path / "run" / "_run.json").read_bytes() == b"first"
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["_run.json"]  # no temp file left
