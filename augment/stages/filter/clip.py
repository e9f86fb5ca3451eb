"""The `filter` stage, `clip` backend: variant scores from a CLIP model loaded from a local path.

A variant's score combines, with configurable weights:
- image consistency: cosine similarity of the variant's and the source image's CLIP image embeddings, mapped
  linearly from [image_floor, 1] to [0, 1] (two photos of one product sit high; another product lower);
- text consistency: cosine similarity of the variant's image embedding and the title's text embedding, mapped
  from [text_floor, text_ceiling] to [0, 1] (CLIP image-text cosines of matching pairs are ~0.25-0.35);
- the heuristic score of augment.stages.filter.scoring (mask IoU and colours), which catches what CLIP is blind to.
Status and contract are the heuristic filter's: `filtered` below `threshold`, nothing deleted, failed variants
untouched. The model is loaded once per process in setup() (augment.core.models); embeddings are computed in batches.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from augment.stages.filter import scoring
from augment.stages import variants
from augment.core import models
from augment.core.config import ConfigError
from augment.core.names import WORK_IMAGE, Status
from augment.stages.base import Batch, Stage, StageResult
from augment.stages.filter.heuristic import SCORED, mark

log = logging.getLogger(__name__)
KEY = "stages.filter.options"


@dataclasses.dataclass
class ClipFilterOptions:
    model_path: str = ""  # a local CLIP checkpoint directory (CLIPModel + its processor); nothing is downloaded
    threshold: float = 0.35
    image_weight: float = 0.6
    text_weight: float = 0.2
    heuristic_weight: float = 0.2
    image_floor: float = 0.5  # image-image cosine that maps to 0
    text_floor: float = 0.15  # image-text cosine that maps to 0
    text_ceiling: float = 0.35  # image-text cosine that maps to 1
    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 64  # images per forward pass

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ConfigError(f"{KEY}.model_path: a local CLIP model directory is required")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"{KEY}.threshold: expected 0..1, got {self.threshold}")
        weights = (self.image_weight, self.text_weight, self.heuristic_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(f"{KEY}: weights must be >= 0 with a positive sum, got {weights}")
        if not -1.0 <= self.image_floor < 1.0 or not self.text_floor < self.text_ceiling:
            raise ConfigError(f"{KEY}: need image_floor < 1 and text_floor < text_ceiling")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ConfigError(f"{KEY}.dtype: expected float32, float16 or bfloat16, got {self.dtype!r}")
        models.check_device(self.device, f"{KEY}.device")


def combine(image_cos: float, text_cos: float, heuristic: float, o: ClipFilterOptions) -> float:
    """The weighted score in [0, 1] from the two cosines and the heuristic score."""
    image = np.clip((image_cos - o.image_floor) / (1.0 - o.image_floor), 0.0, 1.0)
    text = np.clip((text_cos - o.text_floor) / (o.text_ceiling - o.text_floor), 0.0, 1.0)
    total = o.image_weight + o.text_weight + o.heuristic_weight
    return float((o.image_weight * image + o.text_weight * text + o.heuristic_weight * heuristic) / total)


class ClipFilterStage(Stage):
    name = "filter"
    backend = "clip"
    reads = ("variants", WORK_IMAGE, "title")
    writes = ("variants",)
    options_cls = ClipFilterOptions
    requires = ("torch", "transformers")

    def setup(self) -> None:
        import torch
        from transformers import AutoProcessor, CLIPModel

        self.device = models.resolve_device(self.options.device, f"{KEY}.device")
        # Weights from safetensors only (a pickled checkpoint can run code when loaded), from the local directory
        # only, and no code shipped with the model.
        local = {"local_files_only": True}
        path, dtype = self.options.model_path, self.options.dtype

        def load():
            model = CLIPModel.from_pretrained(path, dtype=getattr(torch, dtype), use_safetensors=True, **local)
            model.to(self.device).eval()
            return model, AutoProcessor.from_pretrained(path, trust_remote_code=False, **local)

        # Once per process (augment.core.models), whatever the number of shards and batches.
        key = ("clip", os.path.realpath(path), dtype, self.device)
        self.model, self.processor = models.shared(key, load, f"{self.name}[{self.backend}] {path}")
        self.input_side = _input_side(self.processor)

    def process(self, batch: Batch) -> StageResult:
        if not hasattr(self, "model"):
            self.setup()
        # 1. Decode what can be scored: sources and produced variants.
        images: list[np.ndarray] = []
        sources: dict[int, int] = {}  # row -> index into images
        jobs: list[tuple[int, int, int]] = []  # (row, variant index, index into images)
        out = [[dict(v) for v in (row or [])] for row in batch["variants"]]
        for r, (pid, image) in enumerate(zip(batch["product_id"], batch[WORK_IMAGE])):
            try:
                images.append(scoring.load(image or b"", keep=self.input_side))
                sources[r] = len(images) - 1
            except Exception as exc:  # noqa: BLE001 - without a source the row's variants stay unscored
                log.warning("clip filter: product %s has no usable source image (%s)", pid, exc)
                continue
            for i, v in enumerate(out[r]):
                if v.get("status") not in SCORED:
                    continue
                try:
                    data = variants.variant_bytes(v) or b""
                    images.append(scoring.load(data, max(v.get("width") or 0, v.get("height") or 0) or None,
                                               keep=self.input_side))
                    jobs.append((r, i, len(images) - 1))
                except Exception as exc:  # noqa: BLE001 - an unreadable variant is a failed one
                    v.update(status=Status.FAILED.because(f"unreadable_{variants.reason_code(exc)}"), score=None)
        if not jobs:
            return StageResult(columns={"variants": out})
        # 2. Embed every image and every title once.
        image_emb = self._embed_images(images)
        text_emb = self._embed_texts([batch["title"][r] or "" for r in range(len(out))])
        # 3. Score: CLIP image and text cosines plus the heuristic.
        signatures: dict[int, scoring.Signature] = {}
        for r, i, k in jobs:
            src = sources[r]
            v = out[r][i]
            heuristic = 0.0
            if self.options.heuristic_weight:
                if r not in signatures:
                    signatures[r] = scoring.signature(images[src])
                heuristic = scoring.consistency(v["kind"], signatures[r], images[k])
            image_cos = float(image_emb[k] @ image_emb[src])
            text_cos = float(image_emb[k] @ text_emb[r])
            out[r][i] = mark(v, combine(image_cos, text_cos, heuristic, self.options), self.options.threshold)
        return StageResult(columns={"variants": out})

    def _embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        import torch

        chunks = []
        for start in range(0, len(images), self.options.batch_size):
            inputs = self.processor(images=images[start : start + self.options.batch_size], return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(self.device, dtype=self.model.dtype)
            with torch.inference_mode():
                chunks.append(_pooled(self.model.get_image_features(pixel_values=pixel_values)))
        return _normalise(torch.cat(chunks))

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        tok = self.processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            emb = _pooled(self.model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]))
        return _normalise(emb)


def _pooled(output):
    """transformers 5 returns a model output whose pooler_output is the projected embedding; 4.x a tensor."""
    return output if hasattr(output, "shape") else output.pooler_output


def _normalise(emb) -> np.ndarray:
    emb = emb.float().cpu().numpy()
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)


def _input_side(processor) -> int:
    """The pixel size the model's image processor feeds it (CLIP ViT-L/14: 224), so decoding keeps that much."""
    ip = getattr(processor, "image_processor", processor)
    sides = []
    for attr in ("crop_size", "size"):
        value = getattr(ip, attr, None)
        if isinstance(value, dict):
            sides += [v for k, v in value.items() if k in ("height", "width", "shortest_edge") and isinstance(v, int)]
        elif isinstance(value, int):
            sides.append(value)
    return max(sides, default=224)
