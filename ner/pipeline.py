"""Building the spaCy pipeline from its config file: `ner/configs/<lang>.cfg`, plus user lexicons.

The config names every component and data file; nothing here knows about labels or rules. User lexicons are
appended to the lexicon ruler's `extra_lexicons`, so they match like the bundled ones and keep their own ids.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, Iterable

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

    cfg = spacy.util.load_config(config or config_path(lang), interpolate=False)
    extra = [str(p) for p in lexicon_files]
    if extra:
        ruler = cfg["components"].get("moon_lexicon_ruler")
        if ruler is None:
            raise ValueError("this NER configuration has no moon_lexicon_ruler to take user lexicons")
        ruler["extra_lexicons"] = list(ruler.get("extra_lexicons", [])) + extra
    for dotted, value in (overrides or {}).items():
        _set_dotted(cfg, dotted, value)
    return spacy.util.load_model_from_config(cfg, auto_fill=True, validate=True)


def _set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    node = cfg
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
