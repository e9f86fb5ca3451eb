"""`moon plan`: GPU-hours per stage, wall time on a cluster, output size and object count, before a run starts.

Arithmetic only, from the run config and the bench result files (`augment.ops.benchjson`). For each enabled stage,
the figure measured for the same stage and backend: one of the same pipeline first (another editor costs another
order of magnitude), then the asked GPU type, then measured over quoted figures, then the closest options. A figure
of another step count is scaled to the planned one (a step's cost is nearly constant). A stage's device time is
products x units per product / (rate per device x utilisation). Stages of a streaming run overlap, so the wall
time is the larger of GPU time / GPUs and CPU time / cores; the sum of the two is also given, for runs whose stages
do not overlap. GPU time also counts what every Ray job spends before its first batch, job start and model load
per GPU actor (`job_overhead`), with its share. Nothing here starts Ray or imports a backend's heavy dependencies.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from augment.ops import benchjson
from augment.config import Config
from augment.plan import batch_layout
from augment.core.config import ConfigError
from augment.core.schema import VARIANT_KINDS
from augment.core.names import BATCHES_PER_GPU, DEFAULT_MAX_TASKS, STAGE_ORDER

DEFAULT_BENCH_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"
CPUS_PER_GPU = 16
REPORT_SAMPLE, REPORT_PAGE = 240, 24  # augment.ops.report defaults; not imported, to keep planning free of PIL
# MOON2.0 supplementary, section 12.1: 5M products, ~6 days, of which 85 h of image generation on 256 A100.
PAPER = {"products": 5_000_000, "gpu": "a100", "gpus": 256, "image_generation_hours": 85.0, "days": 6}
PAPER_GPU_SECONDS_PER_PRODUCT = PAPER["gpus"] * PAPER["image_generation_hours"] * 3600 / PAPER["products"]
# What a job costs its GPUs before the first batch, per GPU actor (docs/operations-planning.md, "Job start and model
# load"). Model load: the cold load of FLUX.1 Kontext-sized weights (33.7 GB safetensors) from local disk to an H200,
# 26.9 s, plus CLIP ViT-L/14, 1.9 s (bench/results/raw/model-load-h200.json). Job start: driver start and ray.init
# (~2 s), the job's plan, actor processes importing torch and diffusers (6.6 s on the H200 host), rounded up.
JOB_START_S = 30.0
MODEL_LOAD_S = 30.0
OVERHEAD_TARGET = 0.05
# Options that name what is measured, not how: a figure of another pipeline is a figure of another model.
IDENTITY_OPTIONS = frozenset({"pipeline"})


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
    overhead: dict[str, Any] = dataclasses.field(default_factory=dict)  # job start and model load (job_overhead)

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
        found = benchjson.load_dir(*locations)
    except benchjson.BenchFormatError as exc:
        raise PlanError(str(exc)) from exc
    if not found:  # every estimate would be 0 s
        raise PlanError(f"no bench result files in {', '.join(locations)}: pass --bench with a folder of bench result "
                        "files, e.g. a checkout's bench/results")
    return found


def estimate(config: Config, products: int, figures: list[benchjson.BenchResult], gpus: int = 1,
             gpu_type: str = "h100", cpus: int | None = None, utilisation: float = 1.0,
             image_kb: float | None = None, jobs: dict[str, Any] | None = None) -> Estimate:
    """The estimate for `products` products with `config` on `gpus` GPUs of `gpu_type` and `cpus` CPU cores.

    `image_kb`: the catalogue's average product image in KB; it replaces the measured catalogue's source images in
    the row size (figures record `source_image_bytes_per_product` for that). `jobs`: keyword arguments of
    `job_overhead` (shards_per_job, concurrent_jobs, job_start_s, model_load_s; `{}` for the defaults): with it, the
    estimate counts job start and model load, and the wall time includes them (`moon plan` always asks for it).
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
    if image_kb is not None and not (math.isfinite(image_kb) and image_kb > 0):
        raise PlanError(f"--image-kb must be more than 0, got {image_kb:g}")
    if jobs is not None:
        check_jobs(**jobs)  # here, not only in job_overhead: a run without GPU stages never gets there
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
        rate = figure.rate_per_device * step_scale(figure.config, options)
        device_seconds = products * units / (rate * utilisation)
        stages.append(StageEstimate(
            stage=name, backend=stage.backend, device=figure.hardware.kind, figure=figure.path,
            hardware=f"{figure.hardware.count} x {figure.hardware.name}", source=figure.source, unit=figure.unit,
            units_per_product=units, rate_per_device=rate, device_hours=device_seconds / 3600,
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
    overhead = job_overhead(config, products, gpus, gpu_hours, **jobs) if gpu_hours and jobs is not None else {}
    gpu_wall = _gpu_wall_hours(gpu_hours, gpus, overhead) if gpus else 0.0
    return Estimate(products=products, gpus=gpus, gpu_type=gpu_type, cpus=cpus, utilisation=utilisation, stages=stages,
                    missing=missing, gpu_hours=gpu_hours, cpu_core_hours=cpu_hours, wall_hours=max(gpu_wall, cpu_wall),
                    wall_hours_sequential=gpu_wall + cpu_wall, output_bytes=output_bytes, output_bytes_from=output_from,
                    objects=objects, paper_reference=paper, overhead=overhead)


def _gpu_wall_hours(work_gpu_hours: float, gpus: int, overhead: dict[str, Any]) -> float:
    """Hours the GPU stages take on the cluster. Without a job layout: the work spread over every GPU. With one
    (`job_overhead`): the jobs run `concurrent_jobs` at a time, each on its `gpus_per_job` GPUs, each starting and
    loading its models, then doing its share of the work; so jobs too small to use the cluster leave GPUs idle,
    and no run takes less than one job's start and load."""
    if not overhead:
        return work_gpu_hours / gpus
    jobs, per_job = overhead["jobs"], overhead["gpus_per_job"]
    waves = math.ceil(jobs / overhead["concurrent_jobs"])
    job_seconds = overhead["job_start_s"] + overhead["model_load_s"] + work_gpu_hours * 3600 / jobs / per_job
    return waves * job_seconds / 3600


def job_overhead(config: Config, products: int, gpus: int, work_gpu_hours: float, shards_per_job: int | None = None,
                 concurrent_jobs: int = 1, job_start_s: float = JOB_START_S, model_load_s: float = MODEL_LOAD_S
                 ) -> dict[str, Any]:
    """GPU time spent starting jobs and loading models, and its share of all GPU time.

    A run is `jobs` Ray jobs of `shards_per_job` shards (default: as moon_augment cuts a run given the cluster's GPU
    count, `BATCHES_PER_GPU` jobs per GPU and `DEFAULT_MAX_TASKS` in all). Each
    job's GPU actors (the cluster's GPUs shared by `concurrent_jobs`, never more than the job has GPU batches) wait
    for the job to start and load their models once, then keep them for every shard of the job. So the cost is
    jobs x GPUs per job x (job start + model load), whatever the shard size; it shrinks with bigger jobs.
    """
    check_jobs(shards_per_job, concurrent_jobs, job_start_s, model_load_s)
    shard_size = config.run.shard_size
    shards = math.ceil(products / shard_size)
    gpu_batch = min((s.resources.batch_size for _, s in config.enabled_stages() if s.resources.num_gpus > 0), default=1)

    def at(per_job: int) -> dict[str, Any]:
        jobs = math.ceil(shards / per_job)
        gpu_batches = math.ceil(min(products, per_job * shard_size) / max(1, gpu_batch))
        per_job_gpus = max(1, min(gpus // concurrent_jobs or 1, gpu_batches))
        hours = jobs * per_job_gpus * (job_start_s + model_load_s) / 3600
        return {"shards_per_job": per_job, "jobs": jobs, "gpus_per_job": per_job_gpus, "gpu_hours": hours,
                "share": hours / (hours + work_gpu_hours)}

    most_jobs = min(DEFAULT_MAX_TASKS, gpus * BATCHES_PER_GPU) if gpus > 0 else DEFAULT_MAX_TASKS
    chosen = at(shards_per_job or batch_layout(shards, most_jobs))
    # the smallest batch of shards per job that keeps the share under the target (None: even one job misses it)
    low, high = 1, shards
    if at(high)["share"] >= OVERHEAD_TARGET:
        needed = None
    else:
        while low < high:
            mid = (low + high) // 2
            low, high = (mid + 1, high) if at(mid)["share"] >= OVERHEAD_TARGET else (low, mid)
        needed = low
    return chosen | {"shards": shards, "shard_size": shard_size, "concurrent_jobs": concurrent_jobs,
                     "job_start_s": job_start_s, "model_load_s": model_load_s, "target": OVERHEAD_TARGET,
                     "shards_per_job_for_target": needed}


def check_jobs(shards_per_job: int | None = None, concurrent_jobs: int = 1, job_start_s: float = JOB_START_S,
               model_load_s: float = MODEL_LOAD_S) -> None:
    """The arguments of `job_overhead`, each named by its `moon plan` flag when out of range."""
    if concurrent_jobs < 1:
        raise PlanError(f"--concurrent-jobs must be at least 1, got {concurrent_jobs}")
    if shards_per_job is not None and shards_per_job < 1:
        raise PlanError(f"--shards-per-job must be at least 1, got {shards_per_job}")
    for flag, seconds in (("--job-start-s", job_start_s), ("--model-load-s", model_load_s)):
        if not (math.isfinite(seconds) and seconds >= 0):
            raise PlanError(f"{flag} must be 0 or more, got {seconds:g}")


def choose(candidates: list[benchjson.BenchResult], options: dict[str, Any], gpu_type: str
           ) -> tuple[benchjson.BenchResult, list[str]]:
    """The best figure for a stage, with warnings saying how it differs from what is planned."""
    def rank(f: benchjson.BenchResult) -> tuple:
        differ = differences(f.config, options)
        on_type = f.hardware.kind == "cpu" or f.hardware.family == gpu_type
        steps = abs(math.log(step_scale(f.config, options)))  # the fewer steps to scale over, the better
        return (not IDENTITY_OPTIONS & differ.keys(), on_type, f.source == "measured", -len(differ), -steps,
                f.measured_at)

    figure = max(candidates, key=rank)
    scale = step_scale(figure.config, options)
    warnings = []
    if figure.hardware.kind == "gpu" and figure.hardware.family != gpu_type:
        warnings.append(f"measured on {figure.hardware.family}, not {gpu_type}")
    if figure.source != "measured":
        warnings.append(f"a {figure.source} figure, not a measurement")
    warnings += [f"measured with {k}={measured!r}, planned {k}={planned!r}"
                 + (f" (rate scaled by {measured}/{planned})" if k == "steps" and scale != 1 else "")
                 for k, (measured, planned) in differences(figure.config, options).items()]
    return figure, warnings


def step_scale(measured: dict[str, Any], planned: dict[str, Any]) -> float:
    """The factor from a figure's rate to the planned one when the two differ in denoising steps: measured / planned.
    A step's cost is nearly constant (FLUX.1 Kontext at 512 px on an H200: 4 steps 2.55 s, 8 steps 4.78 s, 28 steps
    15.8 s for six edits), so scaling by the step count slightly overstates the cost of more steps and understates
    the cost of fewer. 1 when either does not say."""
    m, p = measured.get("steps"), planned.get("steps")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (m, p)):
        return 1.0
    return m / p


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
    if backgrounds < 0:  # `moon plan` checks option types, not ranges; this one would make the estimate negative
        raise ConfigError(f"stages.image_variants.options.backgrounds: must be at least 0, got {backgrounds}")
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
        *_overhead_lines(e.overhead),
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


def _overhead_lines(o: dict[str, Any]) -> list[str]:
    if not o:
        return []
    verdict = "under" if o["share"] < o["target"] else "OVER"
    lines = [f"job overhead   {o['gpu_hours']:,.1f} GPU-hours = {100 * o['share']:.1f} % of GPU time ({verdict} the "
             f"{100 * o['target']:.0f} % target): {o['jobs']:,} jobs of {o['shards_per_job']:,} shards x "
             f"{o['gpus_per_job']:,} GPUs x ({o['job_start_s']:.0f} s job start + {o['model_load_s']:.0f} s model load)"]
    if o["shards_per_job_for_target"] is None:
        lines.append(f"{'':<15}even one job for the whole run spends {100 * o['target']:.0f} % or more on start and load")
    elif o["share"] >= o["target"]:
        lines.append(f"{'':<15}use at least {o['shards_per_job_for_target']:,} shards per job (or fewer GPUs per job: "
                     "--concurrent-jobs) to stay under it")
    return lines


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
