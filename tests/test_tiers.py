"""`make test` (testkit/tiers.py): three tiers side by side, every test in exactly one, and one verdict."""
import json
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


# One process collects the folders once per selection (pytest's own -m), with the test modules imported once; the
# test ids of each selection go to a JSON file, one list per selection.
COLLECT = """
import json, sys
import pytest

class Ids:
    def pytest_collection_finish(self, session):
        self.ids = sorted(item.nodeid for item in session.items)

found = []
for args in json.loads(sys.argv[1]):
    ids = Ids()
    code = pytest.main(["-p", "no:xdist", "--collect-only", "-q", *args], plugins=[ids])
    if code != 0:
        sys.exit(f"pytest exited {code} collecting {args}")
    found.append(ids.ids)
with open(sys.argv[2], "w") as f:
    json.dump(found, f)
"""


def collected(tmp_path, *selections: list[str]) -> list[set[str]]:
    out = tmp_path / "collected.json"
    proc = subprocess.run([sys.executable, "-c", COLLECT, json.dumps(selections), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [set(ids) for ids in json.loads(out.read_text())]


@pytest.mark.slow
def test_every_test_of_two_folders_is_in_exactly_one_tier(tmp_path):
    folders = ["tests/reliability", "tests/augment/ops/report"]  # unmarked, slow and external tests side by side
    everything, *tiers = collected(tmp_path, folders, *([*folders, "-m", expression] for _, expression in TIERS))
    assert len(tiers) == len(TIERS) and all(tiers)
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
