"""`make test` (testkit/tiers.py): three tiers in two lanes of processes, every test in exactly one, and one verdict."""
import os
import subprocess
import sys

import pytest

from testkit.tiers import ROOT, TIERS, verdict


@pytest.mark.parametrize("codes, expected", [
    ({"process": 0, "in-process": 0}, 0),
    ({"process": 5, "in-process": 0}, 0),  # a selection with no process test
    ({"process": 0, "in-process": 5}, 0),
    ({"process": 5, "in-process": 5}, 5),  # nothing ran: not a success
    ({"process": 1, "in-process": 0}, 1),
    ({"process": 0, "in-process": 2}, 2),  # interrupted
    ({"process": 5, "in-process": 1}, 1),
    ({"process": 0, "in-process": 0, "service": 1}, 1),
    ({"process": 5, "in-process": 5, "service": 0}, 0),
])
def test_the_verdict_fails_on_any_failure_and_on_no_test_at_all(codes, expected):
    assert verdict(codes) == expected


def collected(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "--collect-only", "-q", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {line for line in proc.stdout.splitlines() if line.startswith("tests/")}  # test ids


@pytest.mark.slow
def test_every_test_of_two_folders_is_in_exactly_one_tier():
    folders = ("tests/reliability", "tests/augment/ops/report")  # unmarked, slow and external tests side by side
    everything = collected(*folders)
    tiers = [collected(*folders, "-m", expression) for _, expression in TIERS]
    assert all(tiers)
    assert set().union(*tiers) == everything and sum(map(len, tiers)) == len(everything)


@pytest.mark.slow
def test_make_test_runs_every_tier_and_says_how_each_ended(tmp_path):
    # This file's verdict tests alone: the in-process tier runs them, the other two have nothing selected.
    env = {**os.environ, "MOON_TEST_OUTPUT": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "testkit.tiers", "tests/test_tiers.py", "-k", "verdict"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "9 passed" in (tmp_path / "in-process-tier.log").read_text() and not list(tmp_path.glob(".*-tier-*"))
    assert "\nin-process: passed in " in proc.stdout and "\n   process: no tests selected in " in proc.stdout
    assert "\n   service: no tests selected in " in proc.stdout
    assert "make test: passed in " in proc.stdout

    nothing = subprocess.run([sys.executable, "-m", "testkit.tiers", "tests/test_tiers.py", "-k", "no_such_test"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert nothing.returncode == 5 and "make test: FAILED" in nothing.stdout
