"""`moon run`: the main job. Plans shards, runs the stages, commits shards, prints a summary."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from augment.core.names import PLAN_DEFAULT_BATCHES, Status
from augment.core.util import positive_int

SAMPLE = Path(__file__).parent / "sample" / "myntra_sample.parquet"
log = logging.getLogger("moon")


def add_commands(subparsers) -> None:
    run = subparsers.add_parser(
        "run",
        help="enrich a catalogue into training shards (default: the bundled sample)",
        description="Process a catalogue into enriched shards. Resumes by default when --output holds committed shards.",
    )
    run.add_argument("--input", help="Parquet/JSONL/CSV file or folder, local or s3:// (default: bundled sample; "
                     "with --batch or --shards, the input of the saved plan)")
    run.add_argument("--output", help="run folder, local or s3:// (default: a new folder under ./runs)")
    run.add_argument("--config", help="YAML config file (may `extends:` a profile)")
    run.add_argument("--profile", help="named profile: local (default), gpu or gpu-fast (augment/profiles/)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set stages.enrich_title.backend=openai (repeatable)")
    run.add_argument("--limit", type=positive_int, help="process only the first N rows of the input")
    run.add_argument("--shard-size", type=positive_int, help="rows per shard (overrides run.shard_size)")
    run.add_argument("--stages", help="comma-separated stages to run (default: all enabled in the config)")
    run.add_argument("--shards", help="comma-separated shard ids: process only these, read from the saved plan")
    run.add_argument("--batch", type=_batch_number,
                     help="process batch N of the saved plan (as the Airflow DAG's jobs do); reads only its entries")
    run.add_argument("--shards-per-batch", type=positive_int,
                     help="shards per batch: the layout --plan-only saves, or the one --batch reads (default: saved)")
    run.add_argument("--max-batches", type=positive_int, default=None,
                     help=f"--plan-only: at most N batches (default {PLAN_DEFAULT_BATCHES}); batches grow to fit")
    run.add_argument("--plan-only", action="store_true",
                     help="plan the run and save the plan in the run folder (_plan/); run no stage")
    run.add_argument("--dry-run", action="store_true", help="plan and validate only; write nothing")
    run.add_argument("--force", action="store_true", help="redo the run even if the output was made with another config or input")
    run.add_argument("--verify", action="store_true",
                     help="read every committed shard file whole and redo the shards whose bytes no longer match "
                          "their checksum (a resume otherwise compares sizes only)")
    run.add_argument("--no-ray", action="store_true", help="run the stages in this process instead of on Ray")
    run.add_argument("--ray-address", help="Ray cluster address (default: a local Ray)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print the plan or summary as JSON on stdout")
    run.set_defaults(func=cmd_run)

    check = subparsers.add_parser("config", help="print the resolved config and its hash")
    check.add_argument("--config", help="YAML config file (may `extends:` a profile)")
    check.add_argument("--profile", help="named profile: local (default), gpu or gpu-fast")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set stages.enrich_title.backend=openai (repeatable)")
    check.set_defaults(func=cmd_config)


def load_config(args) -> "Config":  # noqa: F821
    from augment import config as C

    return C.load_for_run(
        args.config, args.profile, stages=getattr(args, "stages", None), shard_size=getattr(args, "shard_size", None),
        ray_address=getattr(args, "ray_address", None), progress=False if getattr(args, "no_progress", False) else None,
        sets=args.set,
    )


def cmd_config(args) -> int:
    from augment import config as C

    try:
        cfg = load_config(args)
    except C.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"hash": cfg.hash(), "config": cfg.to_dict(), "effective_options": effective_options(cfg)},
                     indent=2, default=str))
    return 0


def effective_options(cfg) -> dict[str, dict]:
    """Every enabled stage's backend options with the defaults its options dataclass fills in (the `config` that
    `moon config` prints holds only what was written), but validate's, which are the `input:` section."""
    import dataclasses

    from augment import config as C, stages

    out = {}
    for name, stage in cfg.stages.items():
        if stage.enabled and name != "validate":  # validate's options are the `input:` section, printed whole
            options = C.stage_options(stages.resolve(name, stage.backend), stage.options, f"stages.{name}.options")
            out[name] = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else {}
    return out


def cmd_run(args) -> int:
    from augment import config as C
    from augment import io, plan as P, runner
    from augment.core import faults

    try:
        faults.check()  # a fault drill with a mistyped point would run without its fault
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args)
    except (C.ConfigError, ImportError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    output = _absolute(args.output or P.default_output_uri())
    one_job = args.batch is not None or bool(args.shards)
    problem = _option_clash(args, one_job) or _not_a_folder(output)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    log.debug("config %s: %s", cfg.hash(), json.dumps(cfg.to_dict(), sort_keys=True))
    if args.input:
        args.input = _input_as_recorded(args.input, output)
    input_uri = args.input or str(SAMPLE)
    try:
        fresh = not args.dry_run and not _exists(output)  # this invocation makes the run folder
    except ValueError as exc:  # an address storage cannot take (storage.AddressError)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.dry_run:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="moon-dry-run-") as scratch:
                plan = P.plan_run(input_uri, output if _exists(output) else scratch, cfg, limit=args.limit,
                                  force=args.force, write=False, work_uri=scratch)
                runner.stage_specs(cfg, input_uri)  # resolves every backend and checks its options
                summary = plan.summary() | {"run_uri": output, "dry_run": True}
            _print_plan(summary, args.json)
            return 0
        if one_job:
            plan = _job_plan(args, cfg, output)
        else:
            plan = P.plan_run(input_uri, output, cfg, limit=args.limit, force=args.force,
                              shards_per_batch=args.shards_per_batch, max_batches=args.max_batches, verify=args.verify)
        if args.plan_only:
            _print_plan(plan.summary() | {"plan_only": True}, args.json)
            return 0
        log.info("run %s: %d rows in %d shards, %d pending -> %s", plan.run_id, plan.rows_total, len(plan.shards),
                 len(plan.pending), output)
        for line in column_notes(plan.summary()):
            log.info("%s", line)
        from augment.core.raylog import quiet_ray

        with quiet_ray(getattr(args, "verbose", False) or args.no_ray,
                       resume="the shards committed so far are kept: run the same command again to resume"):
            result = runner.execute(plan, cfg, use_ray=not args.no_ray)
    except (io.InputError, P.RunMismatch, C.ConfigError, ValueError, ImportError) as exc:
        if fresh:
            _discard_unstarted(output)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except runner.RunFailed as exc:
        if fresh:  # e.g. a model that cannot load on the workers: the corrected rerun is no resume
            _discard_unstarted(output)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"error: cannot write {exc.filename or output}: {exc.strerror}", file=sys.stderr)
        return 2
    except OSError as exc:
        from augment.writer import ShardWriteError

        if fresh and not isinstance(exc, ShardWriteError):  # Ray unreachable, a model directory that does not load
            _discard_unstarted(output)  # (a shard that could not be written: the same command resumes the run)
        print(f"error: {_describe_os_error(exc)}", file=sys.stderr)
        return 1
    summary = run_summary(result)
    if not one_job:  # a batch's job leaves the report to whoever runs the whole run (the DAG's publish task)
        write_run_report(output)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(format_summary(summary))
    return 0


def _absolute(uri: str) -> str:
    """A local path made absolute: the shards record the input's path (lineage.source_uri, against which a relative
    image_uri is read) and the variant images' paths, which must name the same files from any working folder."""
    return uri if "://" in uri else os.path.abspath(uri)


def _input_as_recorded(input_uri: str, output: str) -> str:
    """`--input` made absolute, unless the run folder holds a run planned with this relative path (before inputs
    were made absolute): its shard ids and identity name the path as given, so it resumes only under it."""
    if "://" in input_uri or os.path.isabs(input_uri):
        return input_uri
    from augment.core import manifest

    try:
        record = manifest.read_run_file(output) if _exists(output) else None
    except (manifest.RunRecordError, OSError):
        record = None
    recorded = [i.get("uri") for i in (record or {}).get("inputs") or [] if isinstance(i, dict)]
    folder = input_uri.rstrip("/") + "/"
    if any(uri == input_uri or (isinstance(uri, str) and uri.startswith(folder)) for uri in recorded):
        return input_uri
    return _absolute(input_uri)


def _batch_number(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a batch number (0 or more), got {text!r}")
    return value


def _not_a_folder(output: str) -> str | None:
    """A local --output that is a file, or under one: said before anything is planned."""
    from augment.core import storage

    where = storage.not_a_folder(output)
    if where is None:
        return None
    return f"--output {output} {where}; a run folder is a directory (give a new or existing folder)"


def _option_clash(args, one_job: bool) -> str | None:
    """Options that cannot go together, as one line; None when they can."""
    if args.shards is not None and not any(s.strip() for s in args.shards.split(",")):
        return f"--shards {args.shards!r} names no shard id: give the comma-separated ids of the saved plan"
    if args.batch is not None and args.shards:
        return "--batch and --shards pick a job's shards two ways: give one"
    if args.verify and (args.dry_run or args.force):
        return ("--verify checks the committed shards a run resumes from; " +
                ("--dry-run writes nothing" if args.dry_run else "--force redoes every shard anyway"))
    if one_job and (args.force or args.dry_run or args.plan_only):
        flag = "--force" if args.force else "--dry-run" if args.dry_run else "--plan-only"
        return f"{flag} applies to a whole run, not to one job's shards (--batch/--shards)"
    if args.plan_only and args.dry_run:
        return "--plan-only writes the plan, --dry-run writes nothing: give one"
    return None


def _job_plan(args, cfg, output: str):
    """The saved plan's entries of one job (--batch or --shards). A run folder without a saved plan is planned
    first (and the plan saved), as a plain `moon run` would."""
    from augment import plan as P

    shard_ids = [s.strip() for s in args.shards.split(",") if s.strip()] if args.shards else None
    limit = args.limit

    def load():
        return P.load_batch(output, cfg, input_uri=args.input, limit=limit, batch=args.batch,
                            shards_per_batch=args.shards_per_batch, shard_ids=shard_ids, verify=args.verify)

    # A job runs shards of the saved plan: --limit and --shard-size default to the plan's, as its input does.
    try:
        saved = P.read_header(output)["identity"]
    except (P.NoSavedPlan, ValueError, KeyError):
        saved = {}
    if limit is None and saved.get("limit") is not None:
        limit = saved["limit"]
    if args.shard_size is None and saved.get("shard_size"):
        cfg.run.shard_size = saved["shard_size"]

    try:
        return load()
    except P.NoSavedPlan:
        log.info("%s has no saved plan: planning the run first", output)
        P.plan_run(args.input or str(SAMPLE), output, cfg, limit=args.limit, shards_per_batch=args.shards_per_batch)
        return load()


def _describe_os_error(exc: OSError) -> str:
    from augment.writer import ShardWriteError

    if isinstance(exc, ShardWriteError):
        return str(exc)
    if getattr(exc, "filename", None):
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


def _discard_unstarted(output: str) -> None:
    """Remove the run folder this invocation made when no shard was committed in it: a run that stopped on its
    config or input (e.g. GPU stages on a machine without a GPU) leaves no plan behind that a corrected rerun
    into the same folder would have to --force away."""
    from augment.core import manifest, storage

    try:
        if _exists(output) and next(manifest.iter_records(output), None) is None:
            storage.delete_dir(output)
    except (OSError, ValueError) as exc:  # storage that failed the run may fail this too: the run's error stands
        log.warning("could not tell whether the run folder %s this run made holds a commit, to remove it if not: %s",
                    output, exc)


def _exists(uri: str) -> bool:
    from augment.core import storage

    return storage.exists(uri)


def _print_plan(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    what = "plan" if summary.get("plan_only") else "dry run"
    print(f"{what}: {summary['rows']} rows in {summary['shards']} shards "
          f"({summary['committed']} committed, {len(summary['pending'])} pending) from {', '.join(summary['sources'])}")
    if summary.get("batches"):
        print(f"batches: {summary['batches']} of {summary['shards_per_batch']} shards "
              f"(moon run --output {summary['run_uri']} --batch N runs one)")
    print(f"output: {summary['run_uri']}  config hash: {summary['config_hash']}")
    for line in column_notes(summary):
        print(line)


def column_notes(summary: dict) -> list[str]:
    """What happens to input columns that are not carried under their own name."""
    lines = []
    if summary.get("renamed_columns"):
        pairs = ", ".join(f"{k} -> {v}" for k, v in sorted(summary["renamed_columns"].items()))
        lines.append(f"input columns named like output columns are carried as: {pairs}")
    if summary.get("not_carried_columns"):
        lines.append(f"input columns not carried (names starting with _): {', '.join(summary['not_carried_columns'])}")
    return lines


def run_summary(result) -> dict:
    from augment.core import manifest

    totals = result.run_totals
    this = manifest.totals(result.records)
    return {
        "run_uri": result.plan.run_uri,
        "run_id": result.plan.run_id,
        "config_hash": result.plan.config_hash,
        "this_invocation": this | {"wall_seconds": round(result.wall_seconds, 3),
                                   "products_per_second": round(this["rows_in"] / result.wall_seconds, 2)
                                   if result.wall_seconds else None},
        "run_total": totals,
        "complete": totals["shards"] == len(result.plan.shards),
    }


def format_summary(summary: dict) -> str:
    this, total = summary["this_invocation"], summary["run_total"]
    lines = [
        f"run folder: {summary['run_uri']}",
        f"  rows in {total['rows_in']}  out {total['rows_out']}  quarantined {total['rows_quarantined']}"
        f"  ({total['shards']} shards{'' if summary['complete'] else ', INCOMPLETE'})",
    ]
    if total["quarantine_reasons"]:
        lines.append("  quarantined by reason:")
        for reason, count in sorted(total["quarantine_reasons"].items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {reason:<32} {count}")
    if this["rows_in"]:
        lines.append(f"  this invocation: {this['rows_in']} products in {this['wall_seconds']:.1f} s "
                     f"({this['products_per_second']} products/s)")
        lines.append("  stage seconds (summed over workers):")
        for stage, seconds in this["timings"].items():
            lines.append(f"    {stage:<20} {seconds:8.2f}")
    else:
        lines.append("  nothing to do: every shard was already committed")
    if total["variant_status"]:
        lines.append("  variants: " + variant_counts(total["variant_status"]))
    if total.get("enrichment_status"):
        lines.append("  titles enriched: " + enrichment_counts(total["enrichment_status"]))
    if total.get("background_status"):
        lines.append("  background prompts: " + background_counts(total["background_status"]))
    return "\n".join(lines)


def background_counts(counts: dict[str, int]) -> str:
    """The manifest's background prompt statuses on one line, the fallbacks with their reasons:
    `ok 20, fallback 4 (the curated set: http_404 3, wrong_count 1)`."""
    ok = counts.get(Status.OK.value, 0)
    fallbacks = {status.split(":", 1)[-1]: n for status, n in counts.items() if status != Status.OK.value}
    text = f"{Status.OK.value} {ok}"
    if fallbacks:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(fallbacks.items(), key=lambda kv: (-kv[1], kv[0])))
        text += f", {Status.FALLBACK.value} {sum(fallbacks.values())} (the curated set: {reasons})"
    return text


def enrichment_counts(counts: dict[str, int]) -> str:
    """The manifest's `enrichment.status` counts on one line, with what a status other than ok means:
    `ok 20, fallback 4 (the model could not be reached; the title is kept)`."""
    meaning = {Status.REJECTED.value: "the answer failed the guards; the title is kept",
               Status.FALLBACK.value: "the model could not be reached; the title is kept"}
    return ", ".join(f"{status} {n}" + (f" ({meaning[status]})" if status in meaning and n else "")
                     for status, n in sorted(counts.items(), key=lambda kv: (kv[0] != Status.OK.value, kv[0])))


def variant_counts(counts: dict[str, int]) -> str:
    """The manifest's variant counts on one line, the statuses other than ok by kind:
    `failed 5 (detail 5), filtered 7 (angle 3, background 4), ok 388`."""
    parts = []
    for status, n in sorted((k, v) for k, v in counts.items() if ":" not in k):
        kinds = sorted((k.split(":", 1)[0], v) for k, v in counts.items() if k.endswith(f":{status}") and v)
        by_kind = f" ({', '.join(f'{kind} {v}' for kind, v in kinds)})" if status != "ok" and kinds else ""
        parts.append(f"{status} {n}{by_kind}")
    return ", ".join(parts)


def write_run_report(run_uri: str) -> None:
    """Render report/index.html; a report failure (a broken install of the report module included) never fails
    the run, it is logged (the CLI after a whole run, the DAG's publish task once its batches are done)."""
    try:
        from augment.ops import report

        path = report.write_report(run_uri)
        log.info("report: %s", path)
    except Exception as exc:  # noqa: BLE001 - the shards are committed; the report can be regenerated
        log.warning("could not write the report (%s); regenerate it with `moon report %s`", exc, run_uri)
