"""Released templates are never edited: each file matches the sha256 recorded when it was released."""
import hashlib
import json
from pathlib import Path

import prompts

RELEASED = json.loads((Path(prompts.__file__).parent / "released.json").read_text())["templates"]


def test_every_template_file_is_released():
    assert sorted(RELEASED) == prompts.available()


def test_released_templates_are_unchanged():
    changed = [
        pid for pid, digest in RELEASED.items()
        if hashlib.sha256((prompts.TEMPLATE_DIR / f"{pid}.txt").read_bytes()).hexdigest() != digest
    ]
    assert changed == [], f"released prompts were edited (add a new version instead): {changed}"


def test_fenced_fields_are_the_untrusted_ones():
    untrusted = {"title", "description", "entities", "required"}
    for pid in prompts.available():
        prompt = prompts.get(pid)
        assert prompt.fenced_fields == prompt.fields & untrusted, pid
