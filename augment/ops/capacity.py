"""`moon plan`: GPU-hours per stage, wall time on a cluster, output size and object count, before a run starts.

Arithmetic only, from the run config and the bench result files (`augment.ops.benchjson`): for each enabled stage, the
figure measured for the same stage and backend, preferring the asked GPU type, then measured over quoted figures,
then the closest options. A stage's device time is products x units per product / (rate per device x
utilisation). Stages of a streaming run overlap, so the wall time is the larger of GPU time / GPUs and CPU time /
cores; the sum of the two is also given, for runs whose stages do not overlap. Nothing here starts Ray or
imports a backend's heavy dependencies.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from augment.ops import benchjson
from augment.config import Config
from augment.core.schema import VARIANT_KINDS
from augment.core.names import STAGE_ORDER

DEFAULT_BENCH_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"
CPUS_PER_GPU = 16
REPORT_SAMPLE, REPORT_PAGE = 240, 24  # augment.ops.report defaults; not imported, to keep planning free of PIL
# MOON2.0 supplementary, section 12.1: 5M products, ~6 days, of which 85 h of image generation on 256 A100.
PAPER = {"products": 5_000_000, "gpu": "a100", "gpus": 256, "image_generation_hours": 85.0, "days": 6}
PAPER_GPU_SECONDS_PER_PRODUCT = PAPER["gpus"] * PAPER["image_generation_hours"] * 3600 / PAPER["products"]


class PlanError(ValueError):
    """The plan cannot be made (bad arguments, no usable figures); the message says what to do."""


@dataclasses.dataclass
class StageEstimate:
    stage: str
    backend: str
    device: str  # gpu | cpu
    figure: str  # the bench file used
    hardware: str  # "1 x NVIDIA H100 80GB HBM3"
    source: str  # measured | paper
    unit: str
    units_per_product: float
    rate_per_device: float  # units per second per GPU or per CPU core
    device_hours: float
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Estimate:
    products: int
    gpus: int
    gpu_type: str
    cpus: int
    utilisation: float
    stages: list[StageEstimate]
    missing: list[str]  # "stage/backend" with no figure: the totals leave them out
    gpu_hours: float
    cpu_core_hours: float
    wall_hours: float  # stages overlapped (streaming)
    wall_hours_sequential: float  # one stage after another
    output_bytes: float
    output_bytes_from: list[str]  # stages whose figures gave output sizes
    objects: dict[str, int]
    paper_reference: dict[str, float]

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"complete": self.complete}


def load_figures(locations: list[str] | None = None) -> list[benchjson.BenchResult]:
    """Bench results from files and folders; default: the repository's bench/results/."""
    if not locations:
        if not DEFAULT_BENCH_DIR.is_dir():
            raise PlanError(f"no bench results at {DEFAULT_BENCH_DIR} (an installed package has none): pass --bench "
                            "with a folder of bench result files, e.g. a checkout's bench/results")
        locations = [str(DEFAULT_BENCH_DIR)]
    try:
        return benchjson.load_dir(*locations)
    except benchjson.BenchFormatError as exc:
        raise PlanError(str(exc)) from exc


def estimate(config: Config, products: int, figures: list[benchjson.BenchResult], gpus: int = 1,
             gpu_type: str = "h100", cpus: int | None = None, utilisation: float = 1.0,
             image_kb: float | None = None) -> Estimate:
    """The estimate for `products` products with `config` on `gpus` GPUs of `gpu_type` and `cpus` CPU cores.

    `image_kb`: the catalogue's average product image in KB; it replaces the measured catalogue's source images in
    the row size (figures record `source_image_bytes_per_product` for that).
    """
    if products < 1:
        raise PlanError(f"--products must be at least 1, got {products}")
    if gpus < 0:
        raise PlanError(f"--gpus must be 0 or more, got {gpus}")
    if not 0 < utilisation <= 1:
        raise PlanError(f"--utilisation must be in (0, 1], got {utilisation}")
    cpus = cpus if cpus is not None else CPUS_PER_GPU * max(1, gpus)
    if cpus < 1:
        raise PlanError(f"--cpus must be at least 1, got {cpus}")
    gpu_type = gpu_type.lower()
    # 1. one figure per enabled stage
    stages: list[StageEstimate] = []
    missing: list[str] = []
    output_bytes, output_from = 0.0, []
    images = images_per_product(config)
    for name, stage in config.enabled_stages():
        options = stage.options
        candidates = [f for f in figures if f.stage == name and f.backend == stage.backend]
        if not candidates:
            missing.append(f"{name}/{stage.backend}")
            continue
        figure, warnings = choose(candidates, options, gpu_type)
        units = images if figure.unit == "image" else 1.0
        device_seconds = products * units / (figure.rate_per_device * utilisation)
        stages.append(StageEstimate(
            stage=name, backend=stage.backend, device=figure.hardware.kind, figure=figure.path,
            hardware=f"{figure.hardware.count} x {figure.hardware.name}", source=figure.source, unit=figure.unit,
            units_per_product=units, rate_per_device=figure.rate_per_device, device_hours=device_seconds / 3600,
            warnings=warnings))
        added = figure.output.get("bytes_per_product", 0.0) + units * figure.output.get("bytes_per_image", 0.0)
        if image_kb is not None and "source_image_bytes_per_product" in figure.output:
            added += image_kb * 1000 - figure.output["source_image_bytes_per_product"]
        if added:
            output_bytes += products * added
            output_from.append(name)
    # 2. devices and wall time
    gpu_hours = sum(s.device_hours for s in stages if s.device == "gpu")
    cpu_hours = sum(s.device_hours for s in stages if s.device == "cpu")
    if gpu_hours and gpus == 0:
        needing = ", ".join(s.stage for s in stages if s.device == "gpu")
        raise PlanError(f"{needing} run on GPUs in the figures used; pass --gpus")
    gpu_wall = gpu_hours / gpus if gpus else 0.0
    cpu_wall = cpu_hours / cpus
    # 3. objects the run writes
    shards = math.ceil(products / config.run.shard_size)
    sample = min(products, REPORT_SAMPLE)
    objects = {
        "data_shards": shards,
        "quarantine_shards_at_most": shards,
        "variant_images": products * int(images) if _images_as_objects(config) else 0,
        "run_files": 2,  # _manifest.jsonl, _run.json (plus _manifest.d/ records on S3, one per shard)
        "report_files_at_most": sample * (1 + int(images)) + math.ceil(sample / REPORT_PAGE) + 2,
    }
    paper = {
        "a100_seconds_per_product": round(PAPER_GPU_SECONDS_PER_PRODUCT, 2),
        "a100_hours_for_products": round(PAPER_GPU_SECONDS_PER_PRODUCT * products / 3600, 1),
        "hours_on_these_gpus_at_a100_speed": round(PAPER_GPU_SECONDS_PER_PRODUCT * products / 3600 / gpus, 2) if gpus else 0.0,
    }
    return Estimate(products=products, gpus=gpus, gpu_type=gpu_type, cpus=cpus, utilisation=utilisation, stages=stages,
                    missing=missing, gpu_hours=gpu_hours, cpu_core_hours=cpu_hours, wall_hours=max(gpu_wall, cpu_wall),
                    wall_hours_sequential=gpu_wall + cpu_wall, output_bytes=output_bytes, output_bytes_from=output_from,
                    objects=objects, paper_reference=paper)


def choose(candidates: list[benchjson.BenchResult], options: dict[str, Any], gpu_type: str
           ) -> tuple[benchjson.BenchResult, list[str]]:
    """The best figure for a stage, with warnings saying how it differs from what is planned."""
    def rank(f: benchjson.BenchResult) -> tuple:
        on_type = f.hardware.kind == "cpu" or f.hardware.family == gpu_type
        return (on_type, f.source == "measured", -len(differences(f.config, options)), f.measured_at)

    figure = max(candidates, key=rank)
    warnings = []
    if figure.hardware.kind == "gpu" and figure.hardware.family != gpu_type:
        warnings.append(f"measured on {figure.hardware.family}, not {gpu_type}")
    if figure.source != "measured":
        warnings.append(f"a {figure.source} figure, not a measurement")
    warnings += [f"measured with {k}={measured!r}, planned {k}={planned!r}"
                 for k, (measured, planned) in differences(figure.config, options).items()]
    return figure, warnings


def differences(measured: dict[str, Any], planned: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Options set in both that differ; an option the plan does not set is not a difference."""
    return {k: (v, planned[k]) for k, v in sorted(measured.items()) if k in planned and planned[k] != v}


def images_per_product(config: Config) -> float:
    """Generated images per product: one per variant kind, `backgrounds` of the background kind. Unset options take
    the defaults every image backend shares: all kinds, one background."""
    stage = config.stages.get("image_variants")
    if stage is None or not stage.enabled:
        return 0.0
    kinds = stage.options.get("kinds") or list(VARIANT_KINDS)
    backgrounds = stage.options.get("backgrounds", 1)
    return float(sum(backgrounds if kind == "background" else 1 for kind in kinds))


def _images_as_objects(config: Config) -> bool:
    stage = config.stages.get("image_variants")
    if stage is None or not stage.enabled:
        return False
    mode = stage.options.get("image_storage", "auto")
    return mode == "uri" or (mode == "auto" and config.output.image_storage == "uri")


# ------------------------------------------------------------------------------------------------------------
# text output
# ------------------------------------------------------------------------------------------------------------
def format_estimate(e: Estimate) -> str:
    gpus = f"{e.gpus} {e.gpu_type.upper()} GPU{'s' if e.gpus != 1 else ''}" if e.gpus else "no GPU"
    lines = [f"moon plan: {e.products:,} products on {gpus} and {e.cpus:,} CPU cores"
             f" (utilisation {100 * e.utilisation:.0f} %)", ""]
    header = f"{'stage':<20} {'backend':<12} {'device':<6} {'rate per device':>20} {'device-hours':>14}  figure"
    lines += [header, "-" * len(header)]
    rows: list[tuple[str, list[str]]] = []  # (stage, its lines), printed in pipeline order
    for s in e.stages:
        rate = f"{_rate(s.rate_per_device)} {s.unit}s/s"
        rows.append((s.stage, [f"{s.stage:<20} {s.backend:<12} {s.device:<6} {rate:>20} {s.device_hours:>14,.2f}  "
                               f"{s.hardware} ({s.source})"] + [f"{'':<20} ! {w}" for w in s.warnings]))
    for m in e.missing:
        stage, backend = m.split("/", 1)
        rows.append((stage, [f"{stage:<20} {backend:<12} {'?':<6} {'no figure':>20} {'?':>14}  "
                             "measure it (docs/operations-planning.md)"]))
    for _, stage_lines in sorted(rows, key=lambda r: STAGE_ORDER.index(r[0]) if r[0] in STAGE_ORDER else len(STAGE_ORDER)):
        lines += stage_lines
    lines += [
        "",
        f"GPU-hours      {e.gpu_hours:,.1f}" + ("" if e.complete else "  (stages without figures not counted)"),
        f"CPU-core-hours {e.cpu_core_hours:,.1f}",
        f"wall time      {_hours(e.wall_hours)} with stages overlapping (streaming); "
        f"{_hours(e.wall_hours_sequential)} one stage after another",
        f"output         {_size(e.output_bytes)}" + (f" (from the figures of {', '.join(e.output_bytes_from)})"
                                                       if e.output_bytes_from else " (no figure records output sizes)"),
        "objects        " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in e.objects.items()),
        "",
        f"reference      MOON2.0: {PAPER['image_generation_hours']:.0f} h of image generation on {PAPER['gpus']} A100 "
        f"for {PAPER['products']:,} products = {e.paper_reference['a100_seconds_per_product']} A100-s per product; "
        f"{e.paper_reference['a100_hours_for_products']:,} A100-hours for {e.products:,}",
    ]
    return "\n".join(lines)


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value >= 1 else f"{value:.3g}"


def _hours(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.1f} s"
    if hours < 1:
        return f"{hours * 60:.1f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days ({hours:,.0f} h)"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"
