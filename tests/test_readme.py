"""The README stays true: its schema table is the schema in code, its two commands are the Makefile's."""
import os
import subprocess
from pathlib import Path

import pytest

from augment.core import schema

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_output_schema_table_matches_the_code():
    table = schema.describe()
    assert table in README, (
        "README.md's output schema table differs from augment/core/schema.py: replace it with the output of\n"
        "  python -c 'from augment.core import schema; print(schema.describe())'\n" + table)


def test_the_first_two_commands_are_run_and_test():
    block = README.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert "\nrun:" in makefile and "\ntest:" in makefile


def test_ci_calls_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_tiers_are_chosen_by_markers_and_documented():
    makefile = (ROOT / "Makefile").read_text()
    fast = makefile.split("\ntest-fast:", 1)[1].split("\n\n", 1)[0]
    assert '-m "not slow and not external and not gpu"' in fast and "tests/" not in fast
    from testkit.tiers import IN_PROCESS

    assert f'-m "{IN_PROCESS}"' in fast  # make test-fast is make test's in-process tier
    assert "make test-fast" in README and "\nmake test        # every test" in README


@pytest.mark.slow
def test_a_selection_without_tests_fails_make():
    # pytest exits 5 when nothing is selected; make must pass that on as a failure, never as success (one file is
    # collected, not the whole suite: the selection is empty either way)
    selection = "tests/test_readme.py -k no_test_has_this_name_anywhere"
    env = {**os.environ, "PYTEST_ARGS": selection, "MAKEFLAGS": ""}
    done = subprocess.run(["make", "--no-print-directory", "test-fast"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode != 0 and "Error 5" in done.stderr, done.stdout[-2000:] + done.stderr[-2000:]
    dry = subprocess.run(["make", "-n", "test"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    # the recipe runs the tiers (tests/test_tiers.py: no test in either tier fails) with the selection, plainly
    assert f"-m testkit.tiers {selection}" in dry.stdout
    assert "|| true" not in dry.stdout and "|| [" not in dry.stdout


def test_every_linked_doc_exists():
    import re

    for target in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (ROOT / target).exists(), target
