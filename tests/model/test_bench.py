"""The GPU training benchmark runs end to end on CPU at the tiny size."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_train_gpu_tiny_on_cpu(tmp_path):
    out = tmp_path / "result.json"
    subprocess.run(
        [sys.executable, "bench/bench_train_gpu.py", "--size", "tiny", "--batch-size", "4", "--steps", "1",
         "--warmup", "0", "--device", "cpu", "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    )
    result = json.loads(out.read_text())
    assert result["config"] == "tiny" and result["batch_triplets"] == 4
    assert result["samples_per_second"] > 0 and result["flops_per_step"] > 0
    assert result["mfu"] is None  # no peak known for a CPU
