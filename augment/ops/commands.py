"""`moon report`, `moon verify` and `moon plan`: looking at a run after it finished, and sizing one before it
starts.

Argument declarations only; the work is in `augment.ops.report` and `augment.ops.capacity`, imported by the handlers.
"""
from __future__ import annotations

import json
import shlex
import sys

from augment.core.util import int_at_least, positive_int


def add_commands(subparsers) -> None:
    report = subparsers.add_parser(
        "report", help="(re)write a run's HTML report under RUN_DIR/report/",
        description="Write report/index.html and gallery pages for a run folder (local or s3://).")
    report.add_argument("run_dir", metavar="RUN_DIR", help="run folder, local or s3://")
    report.add_argument("--sample", type=int_at_least(0), default=None,
                        help="products in the gallery (default 240; 0: no gallery)")
    report.add_argument("--page-size", type=positive_int, default=None, help="products per gallery page (default 24)")
    report.set_defaults(func=cmd_report)

    verify = subparsers.add_parser(
        "verify", help="check that a run's committed shard files are those its manifest recorded",
        description="Read every committed shard file of a run folder (local or s3://) and compare it with its commit "
                    "record: missing files, changed sizes, and bytes whose sha256 differs from the recorded checksum. "
                    "Exit status 0 when every shard matches, 1 when any does not (`moon run ... --verify` redoes "
                    "those shards).")
    verify.add_argument("run_dir", metavar="RUN_DIR", help="run folder, local or s3://")
    verify.add_argument("--json", action="store_true", help="print the outcome as JSON")
    verify.set_defaults(func=cmd_verify)

    plan = subparsers.add_parser(
        "plan", help="estimate GPU-hours, wall time and output size of a run before launching it",
        description="Estimate a run from the per-stage throughput figures recorded under bench/results/.")
    plan.add_argument("--products", type=int, required=True, help="number of products in the catalogue")
    plan.add_argument("--config", help="YAML run config (default: the local profile)")
    plan.add_argument("--profile", help="named profile the config starts from")
    plan.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config key, e.g. --set stages.enrich_title.backend=openai (repeatable)")
    plan.add_argument("--gpus", type=int, default=1, help="GPUs in the cluster (default 1; 0 plans CPU-only)")
    plan.add_argument("--gpu-type", default="h100", help="GPU model the figures should come from (default h100)")
    plan.add_argument("--cpus", type=int, default=None, help="CPU cores for CPU stages (default: 16 per GPU)")
    plan.add_argument("--utilisation", type=float, default=1.0,
                      help="share of the measured throughput the cluster sustains, 0-1 (default 1: an ideal lower bound)")
    plan.add_argument("--image-kb", type=float, default=None,
                      help="average size of the catalogue's product images in KB (default: as in the measured catalogue)")
    plan.add_argument("--shards-per-job", type=int, default=None,
                      help="shards per Ray job (one moon_augment task); default: as moon_augment cuts the run when its "
                           "form gives --gpus GPUs: 4 jobs per GPU, 1024 at most")
    plan.add_argument("--concurrent-jobs", type=int, default=1,
                      help="Ray jobs sharing the cluster at once (the moon_gpu pool size; default 1); each gets GPUs / N, "
                           "as when the GPU stages' resources.concurrency is set to that share")
    plan.add_argument("--job-start-s", type=float, default=None,
                      help="seconds from job submission to its first batch (default 30, docs/operations-planning.md)")
    plan.add_argument("--model-load-s", type=float, default=None,
                      help="seconds a GPU worker loads its models, once per job (default 30: FLUX.1 Kontext + CLIP "
                           "from local disk, measured on an H200)")
    plan.add_argument("--bench", action="append", metavar="DIR_OR_FILE",
                      help="bench result JSON file or folder (repeatable; default: the project's bench/results)")
    plan.add_argument("--json", action="store_true", help="print the estimate as JSON")
    plan.set_defaults(func=cmd_plan)


def cmd_report(args) -> int:
    from augment.ops.report import build

    kwargs = {}
    if args.sample is not None:
        kwargs["sample_size"] = args.sample
    if args.page_size is not None:
        kwargs["page_size"] = args.page_size
    try:
        path = build.write_report(args.run_dir, **kwargs)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def cmd_verify(args) -> int:
    from augment.core import manifest, storage

    run = args.run_dir
    if not storage.exists(run):
        print(f"error: {run} not found", file=sys.stderr)
        return 2
    records = manifest.load(run)
    if not records:
        print(f"error: {run} holds no committed shards (nothing to verify)", file=sys.stderr)
        return 2
    changed = manifest.lost_files(run, records.values(), verify=True)
    files = [(checksum, size) for r in records.values() for _, checksum, size in manifest.checked_files(r)]
    summed = [size for checksum, size in files if checksum]
    outcome = {"run_uri": run, "shards": len(records), "files": len(summed), "bytes": sum(summed),
               "unchecksummed": len(files) - len(summed), "changed": dict(sorted(changed.items()))}
    if args.json:
        print(json.dumps(outcome, indent=2))
    elif not changed:
        print(f"ok: the {len(records)} committed shards of {run} ({len(summed)} files, {outcome['bytes'] / 1e6:.1f} "
              "MB checksummed) are as committed"
              + (f"; {outcome['unchecksummed']} files whose records keep no checksum (quarantine files committed "
                 "by an older release beside a data file) are there" if outcome["unchecksummed"] else ""))
    else:
        print(f"{len(changed)} of the {len(records)} committed shards of {run} are not as committed:")
        for shard, what in outcome["changed"].items():
            print(f"  {shard}: {what}")
        print(f"redo them: moon run {_run_inputs(run)}--output {shlex.quote(run)} --verify (with the run's config)")
    return 1 if changed else 0


def _run_inputs(run: str) -> str:
    """`--input URI ` of the run's saved plan, or '' when it has none that can be read."""
    from augment import plan as P

    try:
        return f"--input {shlex.quote(P.read_header(run)['input_uri'])} "
    except (P.NoSavedPlan, ValueError, KeyError, OSError):
        return ""


def cmd_plan(args) -> int:
    from augment.ops import capacity
    from augment import config as C
    from augment.core.config import overrides_from

    try:
        cfg = C.load(args.config, args.profile, overrides_from(args.set), check_stages=False)
        C.validate_stages(cfg, values=False)  # backends and option types; a plan needs no model or data file
    except (C.ConfigError, ImportError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    jobs = {"shards_per_job": args.shards_per_job, "concurrent_jobs": args.concurrent_jobs,
            "job_start_s": capacity.JOB_START_S if args.job_start_s is None else args.job_start_s,
            "model_load_s": capacity.MODEL_LOAD_S if args.model_load_s is None else args.model_load_s}
    try:
        figures = capacity.load_figures(args.bench)
        estimate = capacity.estimate(cfg, args.products, figures, gpus=args.gpus, gpu_type=args.gpu_type,
                                     cpus=args.cpus, utilisation=args.utilisation, image_kb=args.image_kb, jobs=jobs)
    except capacity.PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except C.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(estimate.to_dict(), indent=2) if args.json else capacity.format_estimate(estimate))
    return 0
