"""The bundled sample's shards are the bytes recorded in fixtures/sample_shards.json.

A change of layout or of code paths must not change what a run writes: both session runs of the sample (on Ray
and in this process, tests/conftest.py: the default profile, the sample named relative to the checkout, a fixed
run id and code version) must give every shard file with the recorded sha256. An intended change of the output
(a stage that renders differently, another schema version) records new checksums, and says why in its commit:

    MOON_RECORD_SAMPLE_SHARDS=1 .venv/bin/python -m pytest tests/augment/test_sample_identity.py
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import FIXED_CODE_VERSION, FIXED_RUN_ID, SAMPLE

pytestmark = pytest.mark.slow
RECORDED = Path(__file__).parent / "fixtures" / "sample_shards.json"


def shard_checksums(run_dir: Path) -> dict[str, str]:
    files = sorted(run_dir.glob("data/*.parquet")) + sorted(run_dir.glob("quarantine/*.parquet"))
    return {str(f.relative_to(run_dir)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def recorded() -> dict[str, str]:
    data = json.loads(RECORDED.read_text())
    assert (data["sample"], data["run_id"], data["code_version"]) == (SAMPLE, FIXED_RUN_ID, FIXED_CODE_VERSION)
    return data["sha256"]


@pytest.mark.parametrize("run", ["sample_run_in_process", "sample_run"])
def test_the_sample_runs_shards_are_the_recorded_bytes(run, request):
    got = shard_checksums(request.getfixturevalue(run).out)
    if os.environ.get("MOON_RECORD_SAMPLE_SHARDS") and run == "sample_run_in_process":
        data = json.loads(RECORDED.read_text()) | {"sha256": got}
        RECORDED.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    assert got == recorded(), (
        "the sample run's shard files differ from the recorded bytes; if the change of output is intended, record "
        "it (see this module's docstring)")
    lines = (request.getfixturevalue(run).out / "_manifest.jsonl").read_text().splitlines()
    committed = {r["data_file"]: r["checksum"] for r in map(json.loads, lines) if r["data_file"]}
    assert committed == {k: v for k, v in got.items() if k.startswith("data/")}  # and so says the manifest
