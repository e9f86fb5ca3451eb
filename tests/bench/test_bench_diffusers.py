"""The diffusers benchmark script runs end to end on tiny architectures on the CPU and writes its figures."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_diffusers.py"


@pytest.mark.slow
def test_tiny_run_reports_every_configuration(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--tiny", "--arch", "instruct-pix2pix", "--resolutions", "32",
           "--steps", "2", "6", "--batch", "2", "--cap-s", "30", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = report["results"]
    assert [(r["resolution"], r["steps"]) for r in rows] == [(32, 2), (32, 6)]
    for r in rows:
        assert r["pipeline"] == "StableDiffusionInstructPix2PixPipeline" and r["batch"] == 2
        assert r["images_per_s"] > 0 and r["gpu_s_per_product"] == pytest.approx(6 / r["images_per_s"])
    assert "GPU-s/product" in done.stdout
