"""The bundled sample's shards hold the content recorded in fixtures/sample_shards.json, and both session runs
of it (on Ray and in this process, tests/conftest.py: the default profile, the sample named relative to the
checkout, a fixed run id and code version) write the same bytes.

On one machine a rerun writes the same bytes. Across machines it need not: OpenCV, numpy and torch pick their
kernels by the CPU's instruction sets, so a blended background may differ by a grey level in a few pixels (and
its JPEG bytes with it), and a filter score, a share of matching pixels, by a pixel or two (5e-5 seen between an
AVX-512 and an AVX2 machine). The record is therefore the content, not the file checksums: every column except the
variants' pixels and scores exactly (a sha256 of the rows and the schema), the scores to 1e-3 (a few pixels of a
product's matte), and each variant image as the mean colour of a 4x4 grid of cells, to 2 grey levels; a changed
layout, crop, colour, prompt, seed or status fails. An intended change of the output (a stage that renders
differently, another schema version) records the content again, and says why in its commit:

    MOON_RECORD_SAMPLE_SHARDS=1 .venv/bin/python -m pytest \
        tests/augment/test_sample_identity.py::test_the_sample_runs_shards_hold_the_recorded_content

(about 20 to 50 s: the in-process run only; from a git worktree, the python of the checkout's venv).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from augment.imaging.codec import decode_rgb
from tests.conftest import FIXED_CODE_VERSION, FIXED_RUN_ID, SAMPLE

RECORDED = Path(__file__).parent / "fixtures" / "sample_shards.json"
GRID = 4  # cells per side of an image's thumbnail
PIXEL_TOLERANCE = 2  # grey levels a thumbnail cell may differ by
SCORE_TOLERANCE = 1e-3  # a score is a share of a matte's pixels; a few of them may differ


def shard_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("data/*.parquet")) + sorted(run_dir.glob("quarantine/*.parquet"))


def file_checksums(run_dir: Path) -> dict[str, str]:
    return {str(f.relative_to(run_dir)): hashlib.sha256(f.read_bytes()).hexdigest() for f in shard_files(run_dir)}


def thumbnail(data: bytes | None) -> str | None:
    """The mean colour of each cell of a GRID x GRID split of the image, as hex of rounded uint8 RGB."""
    if not data:
        return None
    rgb = decode_rgb(data).astype(np.float64)
    rows = np.array_split(np.arange(rgb.shape[0]), GRID)
    cols = np.array_split(np.arange(rgb.shape[1]), GRID)
    cells = [rgb[r[0]:r[-1] + 1, c[0]:c[-1] + 1].mean(axis=(0, 1)) for r in rows for c in cols]
    return bytes(np.rint(np.stack(cells)).astype(np.uint8).ravel()).hex()


def _json_default(value):
    if isinstance(value, bytes):  # the original image passes through: its digest stands for it
        return "sha256:" + hashlib.sha256(value).hexdigest()
    raise TypeError(f"{type(value).__name__} in a shard row")


def content(path: Path) -> dict:
    """One shard file as what it says: a sha256 over its schema and its rows with the variants' pixels and scores
    left out, and those pixels (thumbnails) and scores in row order."""
    table = pq.read_table(path)
    rows = table.to_pylist()
    thumbs, scores = [], []
    for row in rows:
        for variant in row.get("variants") or ():
            thumbs.append(thumbnail(variant["image"]))
            scores.append(variant["score"])
            variant["image"] = variant["score"] = None
    digest = hashlib.sha256(table.schema.to_string(show_schema_metadata=True).encode())
    digest.update(json.dumps(rows, sort_keys=True, default=_json_default).encode())
    return {"rows": len(rows), "sha256": digest.hexdigest(), "scores": scores, "thumbnails": thumbs}


def recorded() -> dict[str, dict]:
    data = json.loads(RECORDED.read_text())
    assert (data["sample"], data["run_id"], data["code_version"]) == (SAMPLE, FIXED_RUN_ID, FIXED_CODE_VERSION)
    return data["files"]


def differences(name: str, got: dict, want: dict) -> list[str]:
    if (got["rows"], got["sha256"]) != (want["rows"], want["sha256"]):
        return [f"{name}: rows or columns other than the variants' pixels and scores differ"]
    found = []
    for i, (a, b) in enumerate(zip(got["scores"], want["scores"])):
        if (a is None) != (b is None) or (a is not None and abs(a - b) > SCORE_TOLERANCE):
            found.append(f"{name}: variant {i} scores {a}, recorded {b}")
    for i, (a, b) in enumerate(zip(got["thumbnails"], want["thumbnails"])):
        if (a is None) != (b is None) or (a is not None and np.abs(
                np.frombuffer(bytes.fromhex(a), np.uint8).astype(int)
                - np.frombuffer(bytes.fromhex(b), np.uint8).astype(int)).max() > PIXEL_TOLERANCE):
            found.append(f"{name}: variant {i}'s image differs from the recorded one")
    return found


@pytest.mark.slow
def test_the_sample_runs_shards_hold_the_recorded_content(sample_run_in_process):
    run_dir = sample_run_in_process.out
    got = {str(f.relative_to(run_dir)): content(f) for f in shard_files(run_dir)}
    if os.environ.get("MOON_RECORD_SAMPLE_SHARDS"):
        data = json.loads(RECORDED.read_text()) | {"files": got}
        RECORDED.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    want = recorded()
    assert sorted(got) == sorted(want), "the sample run wrote other shard files than the recorded ones"
    found = [line for name in sorted(got) for line in differences(name, got[name], want[name])]
    assert not found, ("the sample run's shards differ from the recorded content; if the change of output is "
                       "intended, record it (see this module's docstring):\n" + "\n".join(found[:20]))


@pytest.mark.slow
def test_the_runs_on_ray_and_in_process_write_the_same_bytes(sample_run, sample_run_in_process):
    on_ray, in_process = file_checksums(sample_run.out), file_checksums(sample_run_in_process.out)
    assert on_ray == in_process
    for run in (sample_run, sample_run_in_process):  # and so says each run's manifest
        lines = (run.out / "_manifest.jsonl").read_text().splitlines()
        committed = {r["data_file"]: r["checksum"] for r in map(json.loads, lines) if r["data_file"]}
        assert committed == {k: v for k, v in in_process.items() if k.startswith("data/")}


def test_a_moved_grey_level_is_tolerated_and_a_changed_image_is_not():
    """The comparison itself: within tolerance passes, a different picture fails."""
    import cv2

    base = np.full((64, 64, 3), 120, np.uint8)
    base[:32] = 200
    nudged = base.copy()
    nudged[5, 5] = 124  # one pixel, as a kernel's rounding moves it
    moved = np.roll(base, 16, axis=0)  # the same picture shifted: another layout
    thumbs = [thumbnail(cv2.imencode(".png", image)[1].tobytes()) for image in (base, nudged, moved)]
    record = {"rows": 1, "sha256": "x", "scores": [0.5], "thumbnails": [thumbs[0]]}
    assert differences("f", record | {"thumbnails": [thumbs[1]], "scores": [0.5 + 5e-4]}, record) == []
    assert differences("f", record | {"thumbnails": [thumbs[2]]}, record) == ["f: variant 0's image differs from the "
                                                                                "recorded one"]
    assert differences("f", record | {"scores": [0.51]}, record) == ["f: variant 0 scores 0.51, recorded 0.5"]
    assert differences("f", record | {"sha256": "y"}, record) == [
        "f: rows or columns other than the variants' pixels and scores differ"]
