"""Building the spaCy pipeline from its config file: `ner/configs/<lang>.cfg`, plus user lexicons.

The config names every component and data file; nothing here knows about labels or rules. User lexicons are
appended to the lexicon ruler's `extra_lexicons`, so they match like the bundled ones and keep their own ids.
"""
from __future__ import annotations

import re
import sys
import threading
from pathlib import Path
from typing import Any, Iterable

from ner.lexicon import LexiconError

CONFIG_DIR = Path(__file__).parent / "configs"


class _HideTorch:
    """An import hook that makes `import torch` fail, in one thread only: see import_spacy."""

    def __init__(self, thread: int):
        self.thread = thread

    def find_spec(self, name, path=None, target=None):
        if threading.get_ident() == self.thread and (name == "torch" or name.startswith("torch.")):
            raise ImportError("torch is not needed by the rule-based NER pipeline")
        return None


def import_spacy():
    """spaCy, imported so that thinc does not load torch when this process has not loaded it yet.

    thinc imports torch, if installed, only to offer PyTorch layers; the rule components here use none. Every
    process that extracts entities (a `moon run`, each Ray worker of the ner stage, `moon ner`) would otherwise
    spend 1.5 s of CPU loading torch for nothing. A process that loads torch later still gets it (the hook is gone
    by then); thinc then keeps treating torch as absent, which only matters to spaCy models built on PyTorch.
    """
    hook = None
    if "spacy" not in sys.modules and "torch" not in sys.modules:
        hook = _HideTorch(threading.get_ident())
        sys.meta_path.insert(0, hook)
    try:
        import spacy
    finally:
        if hook is not None:
            sys.meta_path.remove(hook)
    return spacy


def config_path(lang: str) -> Path:
    path = CONFIG_DIR / f"{lang}.cfg"
    if not path.exists():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.cfg"))
        raise ValueError(f"no NER configuration for language {lang!r}; configurations: {', '.join(names)}")
    return path


def build_pipeline(lang: str = "en", lexicon_files: Iterable[str] = (), config: str | Path | None = None,
                   overrides: dict[str, Any] | None = None):
    """A ready `spacy.Language`: the config for `lang` (or the file `config`), user lexicons added."""
    import ner.components  # noqa: F401  (registers the factories and the tokenizer; imports spaCy without torch)
    import spacy

    if config is None:
        return _build(spacy.util.load_config(config_path(lang), interpolate=False), lexicon_files, overrides)
    if Path(config).is_dir():
        raise ValueError(f"config {config}: is a directory")
    if not Path(config).exists():
        raise ValueError(f"config {config}: no such file")
    try:
        return _build(spacy.util.load_config(config, interpolate=False), lexicon_files, overrides)
    except LexiconError:
        raise
    except (ValueError, ImportError, OSError) as exc:  # spaCy's and confection's messages span many lines
        raise ValueError(f"config {config}: {_one_line(exc)}") from exc


def _build(cfg, lexicon_files: Iterable[str], overrides: dict[str, Any] | None):
    """The pipeline of a loaded config, user lexicons and `overrides` (dotted keys) added."""
    import spacy

    extra = [str(p) for p in lexicon_files]
    if extra:
        ruler = cfg.get("components", {}).get("moon_lexicon_ruler")
        if not isinstance(ruler, dict):
            raise ValueError("this NER configuration has no moon_lexicon_ruler to take user lexicons")
        if not isinstance(ruler.get("extra_lexicons", []), list):
            raise ValueError("moon_lexicon_ruler -> extra_lexicons must be a list of lexicon files")
        ruler["extra_lexicons"] = ruler.get("extra_lexicons", []) + extra
    for dotted, value in (overrides or {}).items():
        _set_dotted(cfg, dotted, value)
    return spacy.util.load_model_from_config(cfg, auto_fill=True, validate=True)


def _set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    node = cfg
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def _one_line(exc: BaseException) -> str:
    """What a spaCy or confection error says, in one line: the settings it names, or its first sentence."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 (at byte offset {exc.start})"
    errors = getattr(exc, "errors", None)  # confection's ConfigValidationError: [{"loc": [...], "msg": ...}]
    if errors:
        return "; ".join(f"{' -> '.join(map(str, e.get('loc', [])))}: {e.get('msg', '')}" for e in errors)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    title = getattr(exc, "title", None)
    if title is not None:  # confection: a title, advice, then what is wrong and where
        lines = [line for line in lines if line != title and not line.startswith("Make sure")] or [title]
        return " ".join(lines[:3]).replace("file: '<string>', ", "")
    return re.split(r"(?<=\.) ", lines[0], maxsplit=1)[0]  # spaCy: "[E002] What went wrong. Advice ..."
