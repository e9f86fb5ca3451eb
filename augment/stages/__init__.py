"""The stages, one folder each, and the registry that finds a backend by (stage, backend) name.

Each stage folder holds its options, its CPU backend, its model backends, its guards or scoring side by side:
validate/, ner/, enrich_title/, background_prompts/, image_variants/, filter/. What stages share sits beside
them: `base` (the Stage class), `language_model` (the base of the model backends), `text` (text checks),
`variants` (the variant records). A stage module imports the core, the libraries (ner, prompts, augment.imaging,
augment.llm) and these shared modules, never another stage's folder nor the runner (tests/test_layers.py checks
this).

Backends are listed here as import paths so that naming one never imports another: the `classic` image backend
must not pull in torch, the `diffusers` one must not be imported on an Airflow worker. A new backend is one line
here and a class in its stage's folder (docs/architecture.md).
"""
from __future__ import annotations

import importlib

from augment.core.names import STAGE_ORDER
from augment.stages.base import Batch, NoOptions, Rejection, RunContext, Stage, StageResult

BACKENDS: dict[tuple[str, str], str] = {
    ("validate", "default"): "augment.stages.validate.stage:ValidateStage",
    ("ner", "spacy_rules"): "augment.stages.ner.spacy_rules:NerStage",
    ("enrich_title", "template"): "augment.stages.enrich_title.template:TemplateEnrichStage",
    ("enrich_title", "openai"): "augment.stages.enrich_title.model:OpenAIEnrichStage",
    ("enrich_title", "transformers"): "augment.stages.enrich_title.model:TransformersEnrichStage",
    ("enrich_title", "vllm"): "augment.stages.enrich_title.model:VllmEnrichStage",
    ("background_prompts", "template"): "augment.stages.background_prompts.template:TemplateBackgroundPrompts",
    ("background_prompts", "openai"): "augment.stages.background_prompts.model:OpenAIBackgroundPrompts",
    ("background_prompts", "transformers"): "augment.stages.background_prompts.model:TransformersBackgroundPrompts",
    ("background_prompts", "vllm"): "augment.stages.background_prompts.model:VllmBackgroundPrompts",
    ("image_variants", "classic"): "augment.stages.image_variants.classic:ClassicVariantsStage",
    ("image_variants", "diffusers"): "augment.stages.image_variants.diffusers:DiffusersVariantsStage",
    ("filter", "heuristic"): "augment.stages.filter.heuristic:HeuristicFilterStage",
    ("filter", "clip"): "augment.stages.filter.clip:ClipFilterStage",
}
_RESOLVED: dict[tuple[str, str], type[Stage]] = {}


class UnknownBackend(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want a sentence
        return self.args[0]


def available(stage: str) -> list[str]:
    return sorted(b for (s, b) in BACKENDS if s == stage)


def resolve(stage: str, backend: str) -> type[Stage]:
    """The Stage class for (stage, backend); a clear error naming the choices when there is none."""
    key = (stage, backend)
    if key in _RESOLVED:
        return _RESOLVED[key]
    path = BACKENDS.get(key)
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
    _RESOLVED[key] = cls
    return cls


__all__ = [
    "BACKENDS",
    "Batch",
    "NoOptions",
    "Rejection",
    "RunContext",
    "Stage",
    "StageResult",
    "UnknownBackend",
    "available",
    "resolve",
]
