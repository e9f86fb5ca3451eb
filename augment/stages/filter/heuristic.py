"""The `filter` stage, `heuristic` backend: score every variant against its product image; mark, never drop.

Each produced variant (status `ok`, or `filtered` on a rerun) gets `score` in [0, 1] from
augment.stages.filter.scoring (aligned foreground-mask IoU and colour statistics against the subject of `_image`)
and status `filtered` when the score is below `threshold`. Failed variants keep their status and a null score. Rows
are never dropped and variants never deleted: the shard keeps every score; the trainer uses `ok` variants only
(model/data.py). The title is read for the contract shared with model-based scorers; the heuristic does not use it.
"""
from __future__ import annotations

import dataclasses
import logging

from augment.stages.filter import scoring
from augment.stages import variants
from augment.core.config import ConfigError
from augment.core.names import WORK_IMAGE, Status
from augment.stages.base import Batch, Stage, StageResult

log = logging.getLogger(__name__)

SCORED = (Status.OK.value, Status.FILTERED.value)


@dataclasses.dataclass
class HeuristicFilterOptions:
    threshold: float = 0.5  # variants scoring below are marked `filtered` (the midpoint of every check's ramp)

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"stages.filter.options.threshold: expected 0..1, got {self.threshold}")


def mark(variant: dict, score: float | None, threshold: float) -> dict:
    """A copy of `variant` with its score and the status that score implies."""
    out = dict(variant)
    out["score"] = None if score is None else float(score)
    if score is not None:
        out["status"] = (Status.FILTERED if score < threshold else Status.OK).value
    return out


class HeuristicFilterStage(Stage):
    name = "filter"
    backend = "heuristic"
    reads = ("variants", WORK_IMAGE, "title")
    writes = ("variants",)
    options_cls = HeuristicFilterOptions

    def process(self, batch: Batch) -> StageResult:
        out = []
        for pid, row_variants, image in zip(batch["product_id"], batch["variants"], batch[WORK_IMAGE]):
            out.append(self.score_product(pid, row_variants or [], image))
        return StageResult(columns={"variants": out})

    def score_product(self, product_id: str, row_variants: list[dict], image: bytes | None) -> list[dict]:
        try:
            source = scoring.signature(scoring.load(image or b""))
        except Exception as exc:  # noqa: BLE001 - without a source nothing can be scored; keep the variants as they are
            log.warning("filter: product %s has no usable source image (%s); variants left unscored", product_id, exc)
            return [dict(v) for v in row_variants]
        scored = []
        for v in row_variants:
            if v.get("status") not in SCORED:
                scored.append(dict(v))
                continue
            try:
                data = variants.variant_bytes(v) or b""
                rgb = scoring.load(data, max(v.get("width") or 0, v.get("height") or 0) or None)
                score = scoring.consistency(v["kind"], source, rgb)
            except Exception as exc:  # noqa: BLE001 - an unreadable variant is a failed one
                log.warning("filter: %s variant of product %s unreadable: %s", v.get("kind"), product_id, exc)
                failed = dict(v)
                failed["status"] = Status.FAILED.because(f"unreadable_{variants.reason_code(exc)}")
                failed["score"] = None
                scored.append(failed)
                continue
            scored.append(mark(v, score, self.options.threshold))
        return scored
