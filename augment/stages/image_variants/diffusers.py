"""The `diffusers` image_variants backend: the paper's visual expansion with an instruction-based image editor.

Per product, in two phases over the whole batch:
1. subject (Algorithm 1, prompt `subject.v1`): the source image -> the standardised main-subject image;
2. from the subject image: angle (2, `angle.v1`), logo (3, `logo.v1`), detail (4, `detail.v1`), and one or
   more backgrounds (7, `background_render.v1`), each rendering one of the row's `background_prompts` (written
   by the background_prompts stage, Algorithm 6) chosen deterministically by seed.
Items are edited in pipeline batches of `max_batch`; each item has its own seed from
context.seed(product_id, kind), so a rerun, or the same item in another batch, gives the same image. A batch that
fails is retried item by item, so one bad item costs only its own variant (`failed:<reason>`). When the subject
of a product fails, its other variants fail with `failed:no_subject` (they are edits of the subject). The model is
loaded once per process in setup() (augment.core.models): once per Ray actor, for every shard it runs.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import cv2
import numpy as np

import prompts
from augment.stages import variants
from augment.stages.image_variants import diffusers_pipelines as pipelines
from augment.core import models
from augment.core.config import ConfigError
from augment.core.names import WORK_IMAGE
from augment.imaging import codec
from augment.imaging.compose import pad_square
from augment.core.schema import VARIANT_KINDS
from augment.stages.base import Batch, Stage, StageResult

log = logging.getLogger(__name__)

# The prompt of each kind (Algorithms 1-4 and 7), by released id: a rerun renders exactly the same text.
PROMPT_IDS = {
    "subject": "subject.v1",
    "angle": "angle.v1",
    "logo": "logo.v1",
    "detail": "detail.v1",
    "background": "background_render.v1",
}
KEY = "stages.image_variants.options"
# The fields `instruction` renders each kind's prompt with.
PROMPT_FIELDS = {"angle": frozenset(), "background": frozenset({"description", "background"})}
DEFAULT_PROMPT_FIELDS = frozenset({"description"})


def check_prompt(kind: str, prompt_id: str) -> None:
    """A ValueError unless `prompt_id` is a version of the kind's own prompt task, with the fields the stage
    renders it with: another task's prompt (background_prompts.v1 for background_render) would fail every
    product of the run, each quarantined with a stage error."""
    prompt, task = prompts.get(prompt_id), prompts.parse_id(PROMPT_IDS[kind])[0]
    if prompt.task != task:
        raise ValueError(f"{KEY}.prompt_ids.{kind}: {prompt_id} is a prompt of the {prompt.task} task; the {kind} "
                         f"variant takes a version of {task} (e.g. {PROMPT_IDS[kind]})")
    wanted = PROMPT_FIELDS.get(kind, DEFAULT_PROMPT_FIELDS)
    if prompt.fields != wanted:
        raise ValueError(f"{KEY}.prompt_ids.{kind}: {prompt_id} has the fields "
                         f"{', '.join(sorted(prompt.fields)) or 'none'}; the {kind} variant fills "
                         f"{', '.join(sorted(wanted)) or 'none'}")


@dataclasses.dataclass
class DiffusersVariantsOptions:
    model_path: str = ""  # a local diffusers pipeline directory (model_index.json); nothing is downloaded
    pipeline: str = "FluxKontextPipeline"  # one of pipelines.SUPPORTED
    dtype: str = "bfloat16"  # float32 | float16 | bfloat16
    device: str = "auto"  # auto (cuda when available) | cuda | cuda:N | cpu
    cpu_offload: str = "none"  # none | model | sequential: trade speed for GPU memory
    resolution: int = 512  # output side in pixels; the conditioning image is letterboxed to it
    steps: int = 28
    guidance_scale: float = 2.5
    image_guidance_scale: float = 1.5  # InstructPix2Pix only
    max_sequence_length: int = 512  # FLUX T5 prompt tokens
    backgrounds: int = 1  # background variants per product
    kinds: list[str] = dataclasses.field(default_factory=lambda: list(VARIANT_KINDS))
    max_batch: int = 8  # images per pipeline call (GPU memory bound); the Ray batch may hold more rows
    prompt_ids: dict[str, str] = dataclasses.field(default_factory=dict)  # override PROMPT_IDS per kind
    image_storage: str = "auto"  # inline | uri | auto (uri when the run has an object store)

    def __post_init__(self) -> None:
        checks = [
            (bool(self.model_path), "model_path", "a local pipeline directory is required"),
            (self.dtype in pipelines.DTYPES, "dtype", f"expected one of {', '.join(pipelines.DTYPES)}"),
            (self.cpu_offload in pipelines.OFFLOAD, "cpu_offload", f"expected one of {', '.join(pipelines.OFFLOAD)}"),
            (16 <= self.resolution <= 4096 and self.resolution % 16 == 0, "resolution", "expected a multiple of 16 in 16..4096"),
            (1 <= self.steps <= 1000, "steps", "expected 1..1000"),
            (0 <= self.backgrounds <= 10, "backgrounds", "expected 0..10"),
            (1 <= self.max_batch <= 256, "max_batch", "expected 1..256"),
            (1 <= self.max_sequence_length <= 512, "max_sequence_length", "expected 1..512 (FLUX's T5 takes 512 tokens)"),
            (0 <= self.guidance_scale <= 100, "guidance_scale", "expected a number in 0..100"),
            (0 <= self.image_guidance_scale <= 100, "image_guidance_scale", "expected a number in 0..100"),
            (self.image_storage in variants.STORAGE_MODES, "image_storage", f"expected one of {', '.join(variants.STORAGE_MODES)}"),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ConfigError(f"{KEY}.{name}: {why}, got {getattr(self, name)!r}")
        models.check_device(self.device, f"{KEY}.device")
        try:
            pipelines.check_class(self.pipeline, f"{KEY}.pipeline")
            variants.check_kinds(self.kinds, f"{KEY}.kinds")
            for kind, prompt_id in self.prompt_ids.items():
                if kind not in PROMPT_IDS:
                    raise ValueError(f"{KEY}.prompt_ids.{kind}: not a variant kind")
                check_prompt(kind, prompts.resolve(prompt_id))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


@dataclasses.dataclass
class Item:
    """One variant to generate."""

    row: int
    kind: str
    index: int  # 0.. for repeated kinds (backgrounds)
    seed: int
    instruction: str = ""
    background: str | None = None  # the chosen background description (background kind only)


class DiffusersVariantsStage(Stage):
    name = "image_variants"
    backend = "diffusers"
    reads = ("product_id", "title", WORK_IMAGE, "brand", "background_prompts")
    writes = ("variants",)
    options_cls = DiffusersVariantsOptions
    requires = ("torch", "diffusers", "transformers")

    def setup(self) -> None:
        opts = self.options
        self.sink = variants.ImageSink(opts.image_storage, self.context.object_store_uri)
        self.device = models.resolve_device(opts.device, f"{KEY}.device")
        # Once per process (augment.core.models): every shard this worker runs uses the same pipeline.
        key = ("diffusers", opts.pipeline, os.path.realpath(opts.model_path), opts.dtype, self.device, opts.cpu_offload)
        self.pipe = models.shared(
            key, lambda: pipelines.load(opts.pipeline, opts.model_path, opts.dtype, self.device, opts.cpu_offload),
            f"{self.name}[{self.backend}] {opts.model_path}")
        self.settings = pipelines.CallSettings(
            opts.resolution, opts.steps, opts.guidance_scale, opts.image_guidance_scale, opts.max_sequence_length
        )
        self.prompt_ids = {**PROMPT_IDS, **{k: prompts.resolve(v) for k, v in opts.prompt_ids.items()}}

    def process(self, batch: Batch) -> StageResult:
        if not hasattr(self, "pipe"):
            self.setup()
        opts = self.options
        n = len(batch["product_id"])
        plan = variants.plan(opts.kinds, opts.backgrounds)
        records: list[dict[tuple[str, int], dict]] = [{} for _ in range(n)]
        sources: list[np.ndarray | None] = []
        later: list[Item] = []
        first: list[Item] = []
        for row in range(n):
            pid, title = batch["product_id"][row], batch["title"][row] or ""
            seeds = {(k, i): self.context.seed(pid, variants.seed_key(k, i)) for k, i in plan}
            try:
                sources.append(letterbox(codec.decode_rgb(batch[WORK_IMAGE][row] or b""), opts.resolution))
            except ValueError:
                sources.append(None)
                for k, i in plan:
                    records[row][(k, i)] = self._failed(k, "image_undecodable", seeds[(k, i)])
                continue
            chosen = variants.backgrounds_to_render(
                batch["background_prompts"][row], opts.backgrounds, self.context.seed(pid, "background_prompt")
            )
            for k, i in plan:
                item = Item(row, k, i, seeds[(k, i)])
                item.background = chosen[i] if k == "background" else None
                item.instruction = self.instruction(k, title, item.background)
                (first if k == "subject" else later).append(item)

        # Phase 1: the main-subject images, which every other kind edits.
        subjects = self._run(first, {it.row: sources[it.row] for it in first}, batch, records)
        # Phase 2: the other kinds, from the subject image (or the source when `subject` is not generated).
        condition: dict[int, np.ndarray] = {}
        runnable = []
        for it in later:
            if "subject" in opts.kinds:
                if it.row not in subjects:
                    records[it.row][(it.kind, it.index)] = self._failed(it.kind, "no_subject", it.seed, it)
                    continue
                condition[it.row] = subjects[it.row]
            else:
                condition[it.row] = sources[it.row]
            runnable.append(it)
        self._run(runnable, condition, batch, records)
        out = [[records[row][key] for key in plan] for row in range(n)]
        return StageResult(columns={"variants": out})

    def instruction(self, kind: str, title: str, background: str | None) -> str:
        prompt_id = self.prompt_ids[kind]
        if kind == "angle":
            return prompts.render(prompt_id)
        if kind == "background":
            # Without background prompts from the MLLM stage, Algorithm 7 gets the standard studio setting.
            return prompts.render(prompt_id, description=title, background=background or DEFAULT_BACKGROUND)
        return prompts.render(prompt_id, description=title)

    # -----------------------------------------------------------------------------------------------------------
    def _run(self, items: list[Item], condition: dict[int, np.ndarray], batch: Batch, records: list[dict]) -> dict[int, np.ndarray]:
        """Generate `items` in pipeline batches; store their records; return the generated pixels by row."""
        pixels: dict[int, np.ndarray] = {}
        size = self.options.max_batch
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            try:
                outputs = self._edit(chunk, condition)
            except Exception as exc:  # noqa: BLE001 - retried one by one so a bad item fails alone
                log.warning("diffusers batch of %d failed (%s); retrying item by item", len(chunk), exc)
                outputs = []
                for it in chunk:
                    try:
                        outputs.append(self._edit([it], condition)[0])
                    except Exception as one:  # noqa: BLE001 - recorded on the variant
                        log.warning("diffusers %s variant of %s failed: %s", it.kind, batch["product_id"][it.row], one)
                        outputs.append(one)
            for it, out in zip(chunk, outputs):
                if isinstance(out, BaseException):
                    records[it.row][(it.kind, it.index)] = self._failed(it.kind, variants.reason_code(out), it.seed, it)
                    continue
                records[it.row][(it.kind, it.index)] = self._store(batch["product_id"][it.row], it, out)
                if it.kind == "subject":
                    pixels[it.row] = out
        return pixels

    def _edit(self, chunk: list[Item], condition: dict[int, np.ndarray]) -> list[np.ndarray]:
        from PIL import Image

        images = [Image.fromarray(condition[it.row]) for it in chunk]
        result = pipelines.edit(
            self.pipe, self.options.pipeline, images, [it.instruction for it in chunk], [it.seed for it in chunk], self.settings
        )
        return list(result)

    def _store(self, product_id: str, it: Item, rgb: np.ndarray) -> dict:
        fmt = self.context.image_format
        prompt_id = self.prompt_ids[it.kind]
        try:
            data = codec.encode(rgb, fmt, self.context.image_quality)
            where = self.sink.put(
                data, product_id=product_id, kind=it.kind, seed=it.seed, model=self.options.model_path,
                version=prompt_id, fmt=fmt,
            )
        except Exception as exc:  # noqa: BLE001 - a storage or encoding error fails this variant only
            return self._failed(it.kind, variants.reason_code(exc), it.seed, it)
        return variants.record(
            it.kind, **where, fmt=fmt, width=rgb.shape[1], height=rgb.shape[0], prompt_id=prompt_id,
            prompt=it.background, model=self.options.model_path, seed=it.seed,
        )

    def _failed(self, kind: str, reason: str, seed: int, item: Item | None = None) -> dict:
        return variants.failed(
            kind, reason, model=self.options.model_path, seed=seed, prompt_id=self.prompt_ids.get(kind, PROMPT_IDS[kind]),
            prompt=item.background if item else None,
        )


DEFAULT_BACKGROUND = "a clean, bright studio backdrop in soft neutral tones with gentle natural lighting"


def letterbox(rgb: np.ndarray, side: int) -> np.ndarray:
    """Pad to a square on white (the catalogue standard) and resize to side x side."""
    canvas = pad_square(rgb, 255)
    n = canvas.shape[0]
    interp = cv2.INTER_AREA if n > side else cv2.INTER_CUBIC
    return cv2.resize(canvas, (side, side), interpolation=interp)
