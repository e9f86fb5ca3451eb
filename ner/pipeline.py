"""Building the spaCy pipeline from its config file: `ner/configs/<lang>.cfg`, plus user lexicons.

The config names every component and data file; nothing here knows about labels or rules. User lexicons are
appended to the lexicon ruler's `extra_lexicons`, so they match like the bundled ones and keep their own ids.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

CONFIG_DIR = Path(__file__).parent / "configs"


def config_path(lang: str) -> Path:
    path = CONFIG_DIR / f"{lang}.cfg"
    if not path.exists():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.cfg"))
        raise ValueError(f"no NER configuration for language {lang!r}; configurations: {', '.join(names)}")
    return path


def build_pipeline(lang: str = "en", lexicon_files: Iterable[str] = (), config: str | Path | None = None,
                   overrides: dict[str, Any] | None = None):
    """A ready `spacy.Language`: the config for `lang` (or the file `config`), user lexicons added."""
    import spacy

    import ner.components  # noqa: F401  (registers the factories and the tokenizer)

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
