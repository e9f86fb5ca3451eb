"""Title enrichment, CPU default: the source title followed by its extracted entities, labelled.

T+ = template(T, E): "Nike Men's Breakli Navy Blue Track Pants | Brand: Nike | Category: Track Pants | Color:
Navy Blue". Deterministic, instant, and it makes the entities explicit to the text encoder the way the paper's
MLLM rewrite does, without inventing anything. The result goes through the same guards as a model's output
(augment.stages.enrich_title.guards): a title carrying HTML, a URL or an injected instruction is kept as it is, with status
`rejected:<reason>`. The model backends (model.py) share `enrichment_record` and the guards.

Must not: call a model, read the image, or drop a row.
"""
from __future__ import annotations

import dataclasses

from augment.core.names import Status
from augment.stages.enrich_title import guards
from augment.stages.text import dominant_script, fold, normalise_space, strip_control
from augment.stages.base import Batch, Stage, StageResult

# Identity of the template format in `enrichment.prompt_id`; bump the version when the format changes.
TEMPLATE_ID = "enrich_title_template.v1"

# Labels in the order they are listed, with their names per script (a Chinese title gets Chinese labels, so the
# enriched title stays in the title's language).
LABEL_ORDER = ("BRAND", "CATEGORY", "MATERIAL", "COLOR", "PATTERN", "STYLE", "GENDER", "SIZE")
LABEL_NAMES = {
    "LATIN": {
        "BRAND": "Brand", "CATEGORY": "Category", "MATERIAL": "Material", "COLOR": "Color",
        "PATTERN": "Pattern", "STYLE": "Style", "GENDER": "For", "SIZE": "Size",
    },
    "CJK": {
        "BRAND": "品牌", "CATEGORY": "品类", "MATERIAL": "材质", "COLOR": "颜色",
        "PATTERN": "图案", "STYLE": "风格", "GENDER": "适用", "SIZE": "尺码",
    },
}


@dataclasses.dataclass(frozen=True)
class TemplateEnrichOptions:
    # Entity labels listed after the title, in this order; labels not named here are left out.
    labels: list[str] = dataclasses.field(default_factory=lambda: list(LABEL_ORDER))
    max_chars: int = 300  # guard: longest enriched title (longer sources may grow by 25 %)


def enrichment_record(backend: str, model: str | None, prompt_id: str, status: str, attempts: int) -> dict:
    """One `enrichment` struct value (augment.core.schema.ENRICHMENT)."""
    return {"backend": backend, "model": model, "prompt_id": prompt_id, "status": status, "attempts": attempts}


def template_title(
    title: str,
    entities: list[dict] | None,
    labels: list[str] | tuple[str, ...] = LABEL_ORDER,
    max_chars: int | None = None,
) -> str:
    """The source title (control characters removed, spacing folded) with its entities appended by label.

    Labels that would take the result past `max_chars` are left out (the title itself is never cut).
    """
    base = strip_control(title)
    names = LABEL_NAMES.get(dominant_script(base) or "LATIN", LABEL_NAMES["LATIN"])
    separator = "｜" if names is LABEL_NAMES["CJK"] else " | "
    colon = "：" if names is LABEL_NAMES["CJK"] else ": "
    parts = []
    for label in labels:
        values = _distinct(strip_control(e.get("text") or "") for e in entities or () if e.get("label") == label)
        if values:
            part = f"{names.get(label, label.title())}{colon}{', '.join(values)}"
            if max_chars is not None and len(separator.join([base, *parts, part])) > max_chars:
                break
            parts.append(part)
    return separator.join([base, *parts])


def _distinct(texts) -> list[str]:
    seen, out = set(), []
    for text in texts:
        key = fold(text)
        if key and key not in seen:
            seen.add(key)
            out.append(text)
    return out


class TemplateEnrichStage(Stage):
    name = "enrich_title"
    backend = "template"
    reads = ("title", "description", "entities")
    writes = ("enriched_title", "enrichment")
    options_cls = TemplateEnrichOptions

    def process(self, batch: Batch) -> StageResult:
        bounds = guards.TitleBounds(max_chars=self.options.max_chars)
        titles, records = [], []
        for title, entities in zip(batch["title"], batch["entities"]):
            title = title or ""
            _, high = bounds.limits(normalise_space(title))
            candidate = template_title(title, entities, self.options.labels, high)
            reason = guards.check_title(candidate, title, entities, bounds)
            if reason is None:
                titles.append(candidate)
                records.append(enrichment_record(self.backend, None, TEMPLATE_ID, Status.OK.value, 1))
            else:
                titles.append(title)
                records.append(enrichment_record(self.backend, None, TEMPLATE_ID, Status.REJECTED.because(reason), 1))
        return StageResult(columns={"enriched_title": titles, "enrichment": records})
