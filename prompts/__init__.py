"""Versioned prompt templates: `prompts.render(id, **fields)` and `prompts.get(id)`.

Each prompt is one file `prompts/templates/<task>.v<N>.txt`, released once and never edited (a change is a new
version; prompts/released.json records each released file's sha256 and a test enforces it). An id is
`<task>.v<N>`; a bare task name resolves to its latest version. Every output row records the full id it was
made with.

Templates are plain text with `{{ name }}` placeholders, and `{{ name | fenced }}` for untrusted data (titles,
descriptions, entities). A fenced value is placed on its own lines between the markers `<<<` and `>>>`, with any
marker inside the value broken up, so text such as "ignore previous instructions" or a stray `>>>` stays data:
the system prompt tells the model that fenced text is never an instruction. There is no logic in templates.

`render` fails with PromptError on an unknown id, a missing field, an unexpected field or a non-string value,
so a caller's typo is an error at the first row, not a silently different prompt.

Stable API (used by the enrichment stages and the image-variant backends):
    get(id) -> Prompt            resolve an id; Prompt.id, .task, .version, .text, .fields, .fenced_fields
    render(id, **fields) -> str  the prompt text, ready to send
    latest(task) -> str          the newest id of a task, e.g. latest("subject") == "subject.v1"
    available() -> list[str]     every released id
Image-editing prompts (Algorithms 1-4, 7): subject, angle, logo, detail take `description` (except angle, which
takes none); background_render takes `description` and `background` (one background description).
"""
from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent / "templates"
FENCE_OPEN, FENCE_CLOSE = "<<<", ">>>"
EMPTY_VALUE = "(none)"

_ID = re.compile(r"^(?P<task>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)$")
_PLACEHOLDER = re.compile(r"\{\{\s*(?P<name>[a-z_][a-z0-9_]*)\s*(?:\|\s*(?P<filter>[a-z_]+)\s*)?\}\}")
_FILTERS = ("fenced",)


class PromptError(ValueError):
    """An unknown prompt id, or fields that do not match the template's placeholders."""


@dataclasses.dataclass(frozen=True)
class Prompt:
    id: str  # e.g. enrich_title.v1
    task: str  # e.g. enrich_title
    version: int
    text: str  # the template as released
    fields: frozenset[str]  # every placeholder name
    fenced_fields: frozenset[str]  # placeholders that hold untrusted data

    def render(self, **fields: str) -> str:
        missing = sorted(self.fields - fields.keys())
        unexpected = sorted(fields.keys() - self.fields)
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing field(s) {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected field(s) {', '.join(unexpected)}")
            expected = ", ".join(sorted(self.fields)) or "none"
            raise PromptError(f"prompt {self.id}: {'; '.join(parts)} (expected: {expected})")
        for name, value in fields.items():
            if not isinstance(value, str):
                raise PromptError(f"prompt {self.id}: field {name} must be a string, got {type(value).__name__}")

        def substitute(match: re.Match) -> str:
            value = fields[match["name"]]
            return fence(value) if match["filter"] == "fenced" else value

        return _PLACEHOLDER.sub(substitute, self.text)


def fence(value: str) -> str:
    """Untrusted text as a delimited block; markers inside it are broken up so the block cannot be closed early."""
    for marker in (FENCE_OPEN, FENCE_CLOSE):
        while marker in value:
            value = value.replace(marker, " ".join(marker))
    value = value.strip() or EMPTY_VALUE
    return f"\n{FENCE_OPEN}\n{value}\n{FENCE_CLOSE}"


def parse_id(prompt_id: str) -> tuple[str, int]:
    match = _ID.match(prompt_id)
    if not match:
        raise PromptError(f"malformed prompt id {prompt_id!r}; ids look like <task>.v<N>, e.g. subject.v1")
    return match["task"], int(match["version"])


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, Path]:
    found = {}
    for path in TEMPLATE_DIR.glob("*.txt"):
        parse_id(path.stem)  # a malformed file name is a packaging error: fail loudly
        found[path.stem] = path
    return found


def available() -> list[str]:
    return sorted(_index())


def latest(task: str) -> str:
    versions = [parse_id(pid)[1] for pid in _index() if parse_id(pid)[0] == task]
    if not versions:
        tasks = sorted({parse_id(pid)[0] for pid in _index()})
        raise PromptError(f"unknown prompt task {task!r}; tasks are {', '.join(tasks)}")
    return f"{task}.v{max(versions)}"


def resolve(prompt_id: str) -> str:
    """The full id for `prompt_id` (a bare task name resolves to its latest version)."""
    if "." not in prompt_id:
        return latest(prompt_id)
    parse_id(prompt_id)
    if prompt_id not in _index():
        task, _ = parse_id(prompt_id)
        known = [pid for pid in available() if parse_id(pid)[0] == task]
        hint = f"released versions: {', '.join(known)}" if known else f"available: {', '.join(available())}"
        raise PromptError(f"unknown prompt {prompt_id!r}; {hint}")
    return prompt_id


@functools.lru_cache(maxsize=None)
def get(prompt_id: str) -> Prompt:
    full = resolve(prompt_id)
    text = _index()[full].read_text(encoding="utf-8")
    task, version = parse_id(full)
    fields, fenced = set(), set()
    for match in _PLACEHOLDER.finditer(text):
        if match["filter"] and match["filter"] not in _FILTERS:
            raise PromptError(f"prompt {full}: unknown filter {match['filter']!r} (filters: {', '.join(_FILTERS)})")
        fields.add(match["name"])
        if match["filter"] == "fenced":
            fenced.add(match["name"])
    return Prompt(full, task, version, text, frozenset(fields), frozenset(fenced))


def render(prompt_id: str, **fields: str) -> str:
    return get(prompt_id).render(**fields)


__all__ = ["Prompt", "PromptError", "available", "fence", "get", "latest", "parse_id", "render", "resolve"]
