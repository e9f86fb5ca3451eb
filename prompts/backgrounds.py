"""The curated background descriptions (prompts/data/backgrounds.vN.json) and the category lookup over them.

The template `background_prompts` backend draws from this set; the MLLM backends fall back to it when a model's
list is rejected. A version, once released, is never edited: a new set is a new file.

Must not: choose prompts (that is the stage's job, seeded per product) or import anything heavy.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import unicodedata
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
LATEST = "backgrounds.v1"


@dataclasses.dataclass(frozen=True)
class BackgroundSet:
    version: str
    keywords: dict[str, tuple[str, ...]]  # group -> keywords, in priority order
    groups: dict[str, tuple[str, ...]]  # group -> descriptions
    generic: tuple[str, ...]  # descriptions that suit any product

    def __post_init__(self):
        folded = {g: tuple(w for w in map(_fold, words) if w) for g, words in self.keywords.items()}
        object.__setattr__(self, "_folded", folded)  # keywords in compare form, folded once per set

    def group_of(self, category_texts: list[str], title: str) -> str | None:
        """The first group whose keyword occurs in a CATEGORY entity, else in the title; None when none does."""
        for texts in (category_texts, [title]):
            folded = [_fold(text) for text in texts]
            for group, words in self._folded.items():
                if any(_contains(text, word) for text in folded for word in words):
                    return group
        return None


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text).split())


def _contains(text: str, word: str) -> bool:
    """Whole-word match for spaced scripts ("top" is not in "laptop"); substring match for CJK words. Both folded."""
    if word.isascii():
        return f" {word} " in f" {text} "
    return word in text


@functools.lru_cache(maxsize=4)
def load(version: str = LATEST) -> BackgroundSet:
    path = DATA_DIR / f"{version}.json"
    if not path.exists():
        known = sorted(p.stem for p in DATA_DIR.glob("backgrounds.v*.json"))
        raise KeyError(f"unknown background set {version!r}; available: {', '.join(known)}")
    data = json.loads(path.read_text(encoding="utf-8"))
    return BackgroundSet(
        version=data["version"],
        keywords={g: tuple(words) for g, words in data["keywords"].items()},
        groups={g: tuple(items) for g, items in data["groups"].items()},
        generic=tuple(data["generic"]),
    )
