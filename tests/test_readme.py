"""The README stays true: its schema table is the schema in code, its two commands are the Makefile's."""
from pathlib import Path

from augment.core import schema

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_output_schema_table_matches_the_code():
    assert schema.describe() in README


def test_the_first_two_commands_are_run_and_test():
    block = README.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert "\nrun:" in makefile and "\ntest:" in makefile


def test_ci_calls_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_linked_doc_exists():
    import re

    for target in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (ROOT / target).exists(), target
