"""bench/bench_suite.py runs a selection serially, as `make test` does and in xdist workers, and accounts for the
machine's CPU time."""
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = pytest.mark.slow


def test_serial_tiers_and_two_workers_run_the_same_tests_and_report_the_cpu_floor(tmp_path, capsys, monkeypatch):
    import bench_suite

    monkeypatch.setenv("MOON_TEST_OUTPUT", str(tmp_path / "tiers"))  # not the tier logs of a `make test` around it
    out = tmp_path / "suite.json"
    assert bench_suite.main(["--ways", "serial", "tiers", "2", "--out", str(out), "tests/test_layers.py"]) == 0
    report = json.loads(out.read_text())
    serial, tiers, parallel = report["runs"]
    assert (serial["way"], tiers["way"], parallel["way"]) == ("serial", "tiers", "2")
    assert serial["passed"] == tiers["passed"] == parallel["passed"] > 0
    assert serial["failed"] == tiers["failed"] == parallel["failed"] == 0
    for run in report["runs"]:
        assert run["exit_code"] == 0 and run["wall_s"] > 0 and run["cpu_s"] > 0
        assert 0 < run["busy_share"] <= 1
        assert run["floor_s"] == pytest.approx(run["cpu_s"] / os.cpu_count(), abs=0.1)
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["way", "passed", "failed", "wall", "s", "CPU", "s", "busy",
                                               "floor", "s"]


def test_a_failing_selection_makes_the_bench_fail(tmp_path):
    import bench_suite

    failing = tmp_path / "test_fails.py"
    failing.write_text("def test_fails():\n    assert 1 == 2\n")
    assert bench_suite.main(["--ways", "serial", "--", str(failing), "--rootdir", str(tmp_path),
                             "-c", os.devnull]) == 1
