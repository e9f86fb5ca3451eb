"""Quarantine reason codes are defined once (`Reason`, augment/core/names.py): the README lists exactly those, and
no module of the data path spells one itself."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from augment.core.names import Reason
from augment.stages.base import Rejection

ROOT = Path(__file__).resolve().parents[2]
CODES = {reason.value for reason in Reason}
# Variant records have reasons of their own (`failed:<reason>` in `variants[].status`), not quarantine reasons.
NOT_QUARANTINE = ("augment/stages/image_variants/",)


def test_the_readme_lists_every_quarantine_reason_and_no_other():
    readme = " ".join((ROOT / "README.md").read_text().split())  # wherever the lines break
    paragraph = readme.split("Rows that cannot be processed go to `quarantine/`", 1)[1].split("rows in = rows out", 1)[0]
    listed = {code.split(":", 1)[0] for code in re.findall(r"`([a-z0-9_]+(?::<[^>]+>)?)`", paragraph)}
    assert listed == CODES, f"only in the README: {sorted(listed - CODES)}; only in Reason: {sorted(CODES - listed)}"


def spelled_reasons(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each string constant of `path` that is a reason code or starts one ('code (', 'code:')."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            head = re.split(r"[ :]", node.value, maxsplit=1)[0]
            if head in CODES and (node.value == head or node.value[len(head)] in " :"):
                found.append((node.lineno, node.value))
    return sorted(found)


def test_no_module_spells_a_quarantine_reason_itself():
    spelled = []
    for path in sorted((ROOT / "augment").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative == "augment/core/names.py" or relative.startswith(NOT_QUARANTINE):
            continue
        spelled += [f"{relative}:{line}: {text!r}" for line, text in spelled_reasons(path)]
    assert spelled == [], "use augment.core.names.Reason instead:\n" + "\n".join(spelled)


def test_the_scan_finds_a_spelled_reason(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('a = "missing_title"\nb = f"wrong_type:{x}"\nc = "image_empty (zero bytes)"\nd = "missing"\n')
    assert [line for line, _ in spelled_reasons(module)] == [1, 2, 3]


def test_a_rejection_holds_the_plain_text_of_its_reason():
    rejection = Rejection(Reason.TITLE_TOO_LONG, "2001 characters")
    assert type(rejection.reason) is str and rejection.reason == "title_too_long"
    assert json.dumps({"reason": rejection.reason}) == '{"reason": "title_too_long"}'
    assert f"{Reason.INVALID_JSON} (x)" == "invalid_json (x)" and Reason.STAGE_ERROR.of("KeyError") == "stage_error:KeyError"
