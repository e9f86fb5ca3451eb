"""Lexicon files: reading patterns (JSONL) and plain phrase lists, and the word forms a phrase stands for.

A pattern line is the spaCy entity-ruler format plus nothing else:
    {"label": "MATERIAL", "pattern": "stainless steel", "id": "stainless_steel"}
    {"label": "MATERIAL", "pattern": [{"LIKE_NUM": true}, {"TEXT": "%"}, {"LOWER": "cotton"}], "id": "cotton"}
A string pattern is matched case-insensitively, token by token; a list pattern is a spaCy Matcher pattern. `id` is
the canonical form (several spellings, one id); without one, the id is the lower-cased phrase,
its words joined by `_`.

A plain list is one phrase per line (blank lines and lines starting with # are skipped); its label comes from
the caller, e.g. `BRAND=brands.txt` (one of `SPEC_LABELS`, in any case: `brand=brands.txt`). No spaCy here:
this module only reads and normalises data.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Iterable, Iterator

from augment.core.util import json_loads
from ner import LABELS

DATA_DIR = Path(__file__).parent / "data"
# the labels a `LABEL=path` spec may name: the entity labels, and NONE for phrases that are no entity
SPEC_LABELS = LABELS + ("NONE",)
_LABEL_WORD = re.compile(r"[A-Za-z_]+")


class LexiconError(ValueError):
    """A lexicon file is missing or malformed; the message names the file and line."""


def canonical_id(phrase: str) -> str:
    """The id of a phrase without an explicit one: lower case, words joined by '_'."""
    return "_".join(re.findall(r"\w+", phrase.casefold())) or phrase.casefold().strip()


# British spellings and their American forms, for `phrase_key`
_SPELLINGS = (("fibre", "fiber"), ("aluminium", "aluminum"), ("grey", "gray"), ("colour", "color"),
              ("jewellery", "jewelry"), ("tyre", "tire"))


def phrase_key(phrase: str) -> str:
    """What spellings of one phrase have in common: lower case without spaces, hyphens and apostrophes, in
    American spelling ("Track Suit", "tracksuit" and "track-suit" -> "tracksuit"; "Eye Colour" -> "eyecolor").
    Full stops stay: "A.P.C." is not "APC". Lexicons give phrases with one key one canonical id."""
    key = phrase.casefold()
    for british, american in _SPELLINGS:
        key = key.replace(british, american)
    return re.sub(r"[\s\-'’]+", "", key)


def resolve_path(name: str | Path) -> Path:
    """A lexicon path as given, or relative to the bundled data folder (`en/brands.jsonl`)."""
    if not str(name).strip():
        raise LexiconError("a lexicon spec names no file (an empty path)")
    path = Path(name)
    if not path.exists() and (DATA_DIR / path).exists():
        path = DATA_DIR / path
    if path.is_dir():
        raise LexiconError(f"lexicon file {name} is a directory")
    if not path.exists():
        raise LexiconError(f"lexicon file {name} not found (nor under {DATA_DIR})")
    return path


def split_spec(spec: str | Path) -> tuple[str | None, str]:
    """(label, path) of a lexicon spec: `LABEL=path`, the label in any case, or (None, path).

    A spec naming an existing file is a path even where its name holds `=`; a label that no component reads is an
    error, so that a mistyped label does not add a list that silently matches nothing.
    """
    spec = str(spec)
    head, sep, tail = spec.partition("=")
    if not sep or not _LABEL_WORD.fullmatch(head) or Path(spec).exists():
        return None, spec
    if head.upper() not in SPEC_LABELS:
        raise LexiconError(f"lexicon {spec}: unknown label {head}; labels: {', '.join(SPEC_LABELS)}")
    return head.upper(), tail


def read_lexicon(spec: str | Path, default_label: str | None = None) -> list[dict]:
    """Patterns from one lexicon spec: `path.jsonl`, or `LABEL=path` for a plain list (any suffix).

    A plain list without a label takes `default_label`; without one either, its file name decides
    (brands.txt -> BRAND, categories.txt -> CATEGORY, materials.txt -> MATERIAL, colors.txt -> COLOR).
    """
    label, spec = split_spec(spec)
    path = resolve_path(spec)
    if path.suffix == ".jsonl" and label is None:
        return list(_read_jsonl(path))
    label = label or default_label or _label_from_name(path)
    return [{"label": label, "pattern": p, "id": canonical_id(p)} for p in read_phrases(path)]


def read_phrases(path: str | Path) -> list[str]:
    """One phrase per line; blank lines and `#` comments skipped, white space collapsed, duplicates dropped."""
    seen: dict[str, None] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            phrase = " ".join(line.split())
            if phrase and not phrase.startswith("#"):
                seen.setdefault(phrase, None)
    return list(seen)


def read_words(path: str | Path) -> set[str]:
    """Lower-case words of a word list: any number of words per line, `#` comments skipped."""
    words: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.lstrip().startswith("#"):
                words.update(w.casefold() for w in line.split())
    return words


def _read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                item = json_loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise LexiconError(f"{path}:{number}: not UTF-8 (at byte offset {exc.start})") from None
            except json.JSONDecodeError as exc:
                raise LexiconError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(item, dict) or "label" not in item or "pattern" not in item:
                raise LexiconError(f"{path}:{number}: a pattern needs 'label' and 'pattern'")
            item["label"] = _pattern_label(item["label"], f"{path}:{number}")
            pattern = item["pattern"]
            if not isinstance(pattern, (str, list)):
                raise LexiconError(f"{path}:{number}: 'pattern' must be a string or a list of token specs")
            if isinstance(pattern, list):
                problem = token_pattern_problem(pattern)
                if problem:
                    raise LexiconError(f"{path}:{number}: {problem}")
            if isinstance(pattern, str):
                item.setdefault("id", canonical_id(pattern))
            yield item


def token_pattern_problem(pattern: list) -> str | None:
    """What spaCy's Matcher would refuse in a token pattern, found without spaCy (`moon config` checks lexicons):
    an empty list, a token spec that is not an object, a REGEX that does not compile. None when none of these."""
    if not pattern:
        return "a token pattern needs at least one token spec"
    for i, spec in enumerate(pattern):
        if not isinstance(spec, dict):
            return f"token spec {i + 1} of the pattern is not an object of attributes ({json.dumps(spec)[:60]})"
        stack = [spec]
        while stack:
            node = stack.pop()
            for key, value in node.items():
                if isinstance(value, dict):
                    stack.append(value)
                elif key == "REGEX":
                    try:
                        re.compile(value)
                    except (re.error, TypeError) as exc:
                        return f"token spec {i + 1}: REGEX {json.dumps(value)[:60]} does not compile ({exc})"
    return None


def _pattern_label(label, where: str) -> str:
    """A pattern line's label: one of `SPEC_LABELS` in any case (`brand` is BRAND), or another word of letters and
    `_`, which is kept as given (its entities go to the `entities` list); anything else is a LexiconError."""
    if not isinstance(label, str) or not _LABEL_WORD.fullmatch(label):
        raise LexiconError(f"{where}: 'label' must be a word of letters and _ (BRAND, CATEGORY, MATERIAL, COLOR, "
                           f"NONE or a label of your own), not {json.dumps(label, ensure_ascii=False)}")
    return label.upper() if label.upper() in SPEC_LABELS else label


def _label_from_name(path: Path) -> str:
    stem = path.stem.lower()
    for label in LABELS:
        if stem.startswith(label.lower()[:5]):
            return label
    raise LexiconError(
        f"cannot tell the label of plain list {path}; write it as LABEL=path (labels: {', '.join(LABELS)})"
    )


# ---------------------------------------------------------------------------------------------------------
# Word forms
# ---------------------------------------------------------------------------------------------------------
_ES_ENDINGS = ("s", "x", "z", "ch", "sh")
# Nouns whose plural is not a suffix away, as they appear in product titles.
_IRREGULAR = {"knife": "knives", "shelf": "shelves", "leaf": "leaves", "man": "men", "woman": "women",
              "foot": "feet", "tooth": "teeth", "mouse": "mice", "child": "children", "wife": "wives",
              "scarf": "scarves", "half": "halves", "loaf": "loaves", "wolf": "wolves"}
_IRREGULAR_SINGULAR = {v: k for k, v in _IRREGULAR.items()}
# Words that end in s but are not plurals (or are the same in both numbers).
_INVARIANT = {"jeans", "shorts", "trousers", "pants", "leggings", "tights", "briefs", "boxers", "glasses",
              "sunglasses", "goggles", "scissors", "pliers", "tongs", "overalls", "pajamas", "pyjamas",
              "series", "species", "chassis", "dress", "glass", "bass", "canvas", "lens", "bus", "gas",
              "compass", "harness", "mattress", "cutlass", "apparatus", "cactus", "brass", "grass",
              "swimwear", "footwear", "eyewear", "sportswear", "underwear", "headphones", "earphones",
              "jewellery", "jewelry", "clothing", "equipment", "furniture", "luggage", "cookware"}


# Garments named in the plural that catalogues also write in the singular ("Grey Trouser", "Black Track Pant",
# "Red Brief"): their phrases match in both forms. Not "shorts", "tights", "jeans" or "boxers", whose singular is
# another word ("Short Sleeve", "Tight Fit", "Boxer Shorts").
_SINGULAR_TOO = {"trousers": "trouser", "pants": "pant", "briefs": "brief", "capris": "capri", "pyjamas": "pyjama",
                 "pajamas": "pajama", "leggings": "legging", "sunglasses": "sunglass"}


def plural(word: str) -> str:
    """English plural of one lower-case noun, by the usual spelling rules."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word in _INVARIANT or not word.isalpha():
        return word
    if word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(_ES_ENDINGS):
        return word + "es"
    return word + "s"


@functools.lru_cache(maxsize=1 << 16)
def singular(word: str) -> str:
    """English singular of one lower-case noun (the inverse of `plural` for regular nouns); cached, as the
    category rules ask for the same title words again and again."""
    if word in _IRREGULAR_SINGULAR:
        return _IRREGULAR_SINGULAR[word]
    if word in _INVARIANT or not word.isalpha() or len(word) < 4:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y" if len(word) > 4 else word[:-1]  # batteries -> battery; ties, pies -> tie, pie
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if plural_form(word):
        return word[:-1]
    return word


def plural_form(word: str) -> bool:
    """Whether a lower-case word is written as a plural ("goggles", "lures"; not "glass", "bus", "bikini"), whether
    or not it has a singular."""
    return word.endswith("s") and not word.endswith(("ss", "us", "is"))


def number_forms(phrase: str) -> list[str]:
    """The phrase with its last word in singular and plural (`Track Pants`, `Sneaker` -> `sneakers`). In a word
    glued by "-" or "/" the part after the last mark takes the number (`t-shirt` -> `t-shirts`)."""
    words = phrase.split(" ")
    cut = max(words[-1].rfind("-"), words[-1].rfind("/")) + 1
    glued, last = words[-1][:cut], words[-1][cut:]
    low = last.lower()
    forms = {phrase}
    one = singular(low)
    for other in (one, plural(one), _SINGULAR_TOO.get(low, low)):
        if other != low:
            form = other if last.islower() else (other.upper() if last.isupper() else other.capitalize())
            forms.add(" ".join(words[:-1] + [glued + form]))
    return sorted(forms)


def expand_numbers(patterns: Iterable[dict], labels: tuple[str, ...] = ("CATEGORY",)) -> list[dict]:
    """Add singular/plural forms of string patterns of the given labels, keeping each pattern's id."""
    out: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for item in patterns:
        pattern = item["pattern"]
        forms = number_forms(pattern) if isinstance(pattern, str) and item["label"] in labels else [pattern]
        for form in forms:
            key = (item["label"], form.lower()) if isinstance(form, str) else None
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            out.append({**item, "pattern": form})
    return out
