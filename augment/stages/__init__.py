"""Stages and the registry that finds a backend by (stage, backend) name.

Built-in backends are listed here as import paths so that naming one never imports another: the `classic`
image backend must not pull in torch, the `diffusers` one must not be imported on an Airflow worker. Third-party
backends register through the `moon.backends` entry-point group (`name = "package.module:Class"`, where the
class sets `name` and `backend`) or by calling `register()` before the run starts.
"""
from __future__ import annotations

import importlib
from importlib import metadata

from augment.stages.base import Batch, NoOptions, Rejection, RunContext, Stage, StageResult

# The order in which stages run. A config may leave stages out; it cannot reorder them.
STAGE_ORDER = ("validate", "ner", "enrich_title", "background_prompts", "image_variants", "filter")

_BUILTIN: dict[tuple[str, str], str] = {
    ("validate", "default"): "augment.stages.validate.stage:ValidateStage",
    ("ner", "spacy_rules"): "augment.stages.ner.spacy_rules:NerStage",
    ("enrich_title", "template"): "augment.stages.enrich_title.template:TemplateEnrichStage",
    ("background_prompts", "template"): "augment.stages.background_prompts.template:TemplateBackgroundPrompts",
    ("enrich_title", "openai"): "augment.stages.enrich_title.model:OpenAIEnrichStage",
    ("background_prompts", "openai"): "augment.stages.background_prompts.model:OpenAIBackgroundPrompts",
    ("enrich_title", "transformers"): "augment.stages.enrich_title.model:TransformersEnrichStage",
    ("background_prompts", "transformers"): "augment.stages.background_prompts.model:TransformersBackgroundPrompts",
    ("enrich_title", "vllm"): "augment.stages.enrich_title.model:VllmEnrichStage",
    ("background_prompts", "vllm"): "augment.stages.background_prompts.model:VllmBackgroundPrompts",
    ("image_variants", "classic"): "augment.stages.image_variants.classic:ClassicVariantsStage",
    ("image_variants", "diffusers"): "augment.stages.image_variants.diffusers:DiffusersVariantsStage",
    ("filter", "heuristic"): "augment.stages.filter.heuristic:HeuristicFilterStage",
    ("filter", "clip"): "augment.stages.filter.clip:ClipFilterStage",
}
_REGISTERED: dict[tuple[str, str], type[Stage]] = {}


class UnknownBackend(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want a sentence
        return self.args[0]


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make `cls` available as (cls.name, cls.backend)."""
    if cls.name not in STAGE_ORDER:
        raise ValueError(f"unknown stage {cls.name!r}; stages are {', '.join(STAGE_ORDER)}")
    _REGISTERED[(cls.name, cls.backend)] = cls
    return cls


def add_builtin(stage: str, backend: str, path: str) -> None:
    """Declare a backend by import path without importing it (used by optional backend packages)."""
    _BUILTIN[(stage, backend)] = path


def available(stage: str) -> list[str]:
    names = {b for (s, b) in _BUILTIN if s == stage} | {b for (s, b) in _REGISTERED if s == stage}
    names |= {b for (s, b) in _entry_points() if s == stage}
    return sorted(names)


def _entry_points() -> dict[tuple[str, str], str]:
    found = {}
    for ep in metadata.entry_points(group="moon.backends"):
        stage, _, backend = ep.name.partition(".")
        found[(stage, backend)] = ep.value
    return found


def resolve(stage: str, backend: str) -> type[Stage]:
    """The Stage class for (stage, backend); a clear error naming the choices when there is none."""
    key = (stage, backend)
    if key in _REGISTERED:
        return _REGISTERED[key]
    path = _BUILTIN.get(key) or _entry_points().get(key)
    if path is None:
        if stage not in STAGE_ORDER:
            raise UnknownBackend(f"unknown stage {stage!r}; stages are {', '.join(STAGE_ORDER)}")
        raise UnknownBackend(
            f"stage {stage!r} has no backend {backend!r}; available: {', '.join(available(stage)) or 'none'}"
        )
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"backend {backend!r} of stage {stage!r} needs a package that is not installed ({exc.name}); "
            f"install the matching extra, e.g. pip install 'moon-augment[gpu]'"
        ) from exc
    cls = getattr(module, attr)
    _REGISTERED[key] = cls
    return cls


__all__ = [
    "Batch",
    "NoOptions",
    "Rejection",
    "RunContext",
    "STAGE_ORDER",
    "Stage",
    "StageResult",
    "UnknownBackend",
    "add_builtin",
    "available",
    "register",
    "resolve",
]
