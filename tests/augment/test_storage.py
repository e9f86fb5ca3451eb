"""augment.core.storage without a server: what it retries, and what it does not."""
from __future__ import annotations

import io

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
