"""Running a plan: stages on Ray Data (or in this process), shards committed as they complete.

Stages are grouped into chains of consecutive stages with the same resources; each chain is one `map_batches`
actor pool whose actors load their models once (augment.core.models) and keep them for every shard of the job;
a pool never has more actors than the job has batches for it. The first chain also reads the shards (its input is one shard spec per
call), so CPU-only runs move each shard through every stage in one worker without extra copies. Model stages with
`num_gpus` get their own pools. Processed batches stream back to the driver, where `ShardWriter` commits each
shard once complete; nothing is collected in memory beyond the shards in flight.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import sys
import time
import warnings
from typing import Any, Callable

from augment.config import Config, Resources, stage_options
from augment.core import faults, manifest, storage
from augment.core import ray as core_ray
from augment.core.config import ConfigError
from augment.core.util import code_version
from augment.pipeline import StageChain, StageSpec, build_stage
from augment.plan import Plan
from augment.stages import RunContext, resolve
from augment.stages.validate.stage import ValidateOptions
from augment.writer import ShardWriter, write_shard

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunResult:
    plan: Plan
    records: list[manifest.ShardRecord]  # committed by this invocation
    wall_seconds: float
    run_totals: dict[str, Any]  # manifest.totals over the plan's shards committed so far, by any invocation


def build_context(plan: Plan, config: Config) -> RunContext:
    return RunContext(
        run_id=plan.run_id,
        config_hash=plan.config_hash,
        code_version=code_version(),
        output_uri=plan.run_uri,
        # Variant images go to object storage only when the run asks for it (output.image_storage: uri).
        object_store_uri=storage.join(plan.run_uri, "images") if config.output.image_storage == "uri" else None,
        artifacts=dict(plan.artifacts),
        image_format=config.output.image_format,
        image_quality=config.output.image_quality,
    )


def stage_specs(config: Config, input_uri: str) -> list[tuple[StageSpec, Resources]]:
    """Validated, picklable stage specs with their resources, in stage order; checks optional dependencies."""
    specs = []
    for name, stage_config in config.enabled_stages():
        cls = resolve(name, stage_config.backend)
        if name == "validate":
            options: Any = ValidateOptions.from_input_config(config.input, input_uri)
        else:
            options = stage_options(cls, stage_config.options, f"stages.{name}.options")
        missing = [module for module in cls.requires if not _importable(module)]
        if missing:
            raise ImportError(
                f"stage {name} backend {stage_config.backend!r} needs {', '.join(missing)}; "
                "install the matching extra, e.g. pip install 'moon-augment[gpu]'"
            )
        specs.append((StageSpec(name, stage_config.backend, options), stage_config.resources))
    return specs


def _is_dataset_stage(spec: StageSpec) -> bool:
    return resolve(spec.name, spec.backend).is_dataset_stage


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def group_stages(specs: list[tuple[StageSpec, Resources]]) -> list[tuple[list[StageSpec], Resources]]:
    """Consecutive stages with equal resources share one chain (one actor pool); a dataset stage is alone."""
    groups: list[tuple[list[StageSpec], Resources]] = []
    for spec, resources in specs:
        if _is_dataset_stage(spec) or (groups and _is_dataset_stage(groups[-1][0][-1])):
            groups.append(([spec], resources))
        elif groups and groups[-1][1] == resources:
            groups[-1][0].append(spec)
        else:
            groups.append(([spec], resources))
    return groups


# ---------------------------------------------------------------------------------------------------------------
# Single process: the same stages and writer, no Ray. For debugging, tests of stage logic and the benchmark baseline.
# ---------------------------------------------------------------------------------------------------------------
def run_in_process(plan: Plan, config: Config, on_rows: Callable[[int], None] | None = None) -> list[manifest.ShardRecord]:
    context = build_context(plan, config)
    specs_and_resources = stage_specs(config, plan.input_uri)
    _warn_gpu_stages_on_the_cpu([spec.name for spec, res in specs_and_resources if res.num_gpus > 0])
    specs = [spec for spec, _ in specs_and_resources]
    dataset_stages = [s.name for s in specs if _is_dataset_stage(s)]
    if dataset_stages:
        raise ValueError(f"stage {dataset_stages[0]} runs on Ray Data only; run without --no-ray")
    chain = StageChain(specs, context, read=(plan.input_schema, dict(config.input.columns)))
    records = []
    for shard in plan.pending:
        faults.point("driver_batch")
        table = chain(_spec_table([shard]))
        records.append(write_shard(shard, table, plan, context, config.output.compression))
        if on_rows:
            on_rows(shard.num_rows)
    return records


def _warn_gpu_stages_on_the_cpu(names: list[str]) -> None:
    """Stages that ask for GPUs, run in this process on a machine whose torch sees none: they run on the CPU (a
    `device: auto` model loads there), at a small fraction of their speed, which a warning says before the first
    shard instead of an hour later. Ray refuses them (no_gpus); here a tiny model on the CPU is a fair test."""
    if not names:
        return
    try:
        import torch
    except ImportError:
        return
    if not torch.cuda.is_available():
        keys = ", ".join(f"stages.{name}.resources.num_gpus" for name in names)
        log.warning("%s ask for a GPU and this machine has none: with --no-ray they run on the CPU, many times "
                    "slower (a diffusion editor takes minutes per product); choose CPU backends (--profile local) "
                    "unless the models are tiny", keys)


def _spec_table(shards):
    import pyarrow as pa

    return pa.Table.from_pylist([s.to_dict() for s in shards])


# ---------------------------------------------------------------------------------------------------------------
# Ray Data
# ---------------------------------------------------------------------------------------------------------------
def init_ray(config: Config) -> bool:
    """Ray for this run (augment.core.ray): `run.ray_address`, else a private local Ray with `run.num_cpus`. True
    when it started the private one."""
    return core_ray.init_ray(config.run.ray_address, config.run.num_cpus or os.cpu_count())


def _pool_sizes(groups, cluster: dict[str, float], shards: int | None = None,
                rows: int | None = None) -> list[tuple[int, int]]:
    """(min, max) actors per chain: the GPU chains share the GPUs, the CPU chains the CPUs left after GPU actors.

    The GPU chains run side by side, so they split the cluster between them: each gets the same number of actors,
    as many as fit when every chain holds that many at once (`stages.image_variants` at 0.75 GPU and `filter` at
    0.25: one of each per GPU), and no more than the CPUs left once every CPU chain has one actor can hold. A chain
    with `concurrency` gets that many. With `shards` and `rows` (the job's pending work), no chain gets more actors
    than it has batches to run: each actor loads its models once, so a job of a few shards on a large cluster
    starts a few model actors, not one per GPU of the cluster (the first chain runs one shard per batch; later
    chains `batch_size` rows per batch).
    """
    cpus = max(1.0, cluster.get("CPU", 1.0))
    gpus = cluster.get("GPU", 0.0)

    def work_cap(i: int, n: int) -> int:
        if shards is None or rows is None:
            return n
        batches = shards if i == 0 else math.ceil(rows / max(1, groups[i][1].batch_size))
        return max(1, min(n, batches))

    sizes: list[tuple[int, int] | None] = [None] * len(groups)
    gpu_groups = [i for i, (_, res) in enumerate(groups) if res.num_gpus > 0]
    cpu_groups = [i for i, (_, res) in enumerate(groups) if res.num_gpus == 0]
    fixed = [groups[i][1] for i in gpu_groups if groups[i][1].concurrency]
    shared = [groups[i][1] for i in gpu_groups if not groups[i][1].concurrency]
    each = 1
    if shared:
        gpus_left = gpus - sum(res.concurrency * res.num_gpus for res in fixed)
        cpus_left = (cpus - sum(groups[i][1].num_cpus for i in cpu_groups)
                     - sum(res.concurrency * res.num_cpus for res in fixed))
        fits = gpus_left / sum(res.num_gpus for res in shared)
        if any(res.num_cpus for res in shared):
            fits = min(fits, cpus_left / sum(res.num_cpus for res in shared))
        each = max(1, int(fits + 1e-9))
    reserved = 0.0
    for i in gpu_groups:
        res = groups[i][1]
        n = work_cap(i, res.concurrency or each)
        sizes[i] = (n, n)
        reserved += n * res.num_cpus
    left = max(1.0, cpus - reserved)
    for i in cpu_groups:
        res = groups[i][1]
        n = res.concurrency or max(1, int(left / max(res.num_cpus, 0.01) / max(1, len(cpu_groups))))
        sizes[i] = (1, work_cap(i, n))
    return sizes


def oversubscribed(groups, sizes: list[tuple[int, int]], cluster: dict[str, float]) -> str | None:
    """Why the chains' fewest actors cannot all hold their CPUs and GPUs at once on `cluster`, or None when they can.

    Every chain keeps at least its `min` actors. When they need more than the cluster has, the chains wait for one
    another's actors: a run may still finish as chains drain (on one GPU, a 1-GPU image_variants actor and a filter
    actor take turns), but an actor Ray restarts after a crash can wait for a CPU or GPU that the others never give
    back."""
    short = []
    for resource, field in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
        need = sum(low * getattr(res, field) for (_, res), (low, _) in zip(groups, sizes))
        have = cluster.get(resource, 0.0)
        if need > have + 1e-9 and (resource == "CPU" or have > 0):
            short.append((resource, field, need, have))
    if not short:
        return None
    needs = " and ".join(f"{need:g} {resource}s" for resource, _, need, _ in short)
    haves = " and ".join(f"{have:g}" for *_, have in short)
    chains = ", ".join(
        f"{'+'.join(s.name for s in specs)} {low} x " + " + ".join(
            f"{getattr(res, field):g}{'' if resource == 'CPU' else ' GPU'}" for resource, field, *_ in short)
        for (specs, res), (low, _) in zip(groups, sizes) if any(getattr(res, field) for _, field, *_ in short))
    fields = " / ".join(f"stages.<name>.resources.{field}" for _, field, *_ in short)
    return (f"the stage chains need {needs} to hold their fewest actors at once ({chains}) and the cluster has "
            f"{haves}: they will wait for one another, and an actor restarted after a crash may wait for ever; give "
            f"the stages less ({fields}) or the cluster more")


def no_node_fits(groups, nodes: list[dict[str, float]], private: bool) -> str | None:
    """What to say when a chain asks more per actor (CPUs, GPUs, custom resources) than any one node of the
    cluster has, else None: Ray places an actor on one node, and such an actor waits for a node that can hold it,
    without a word. A private local Ray never gets another node (a ConfigError); a cluster may still add one (a
    warning). `nodes`: each live node's resources. Chains that ask GPUs of a cluster without any are no_gpus'."""
    has_gpus = any(node.get("GPU", 0.0) > 0 for node in nodes)
    misfits = []
    for specs, res in groups:
        if res.num_gpus > 0 and not has_gpus:
            continue
        asked = {"CPU": res.num_cpus, "GPU": res.num_gpus, **res.custom}
        asked = {name: amount for name, amount in asked.items() if amount > 0}
        if nodes and not any(all(node.get(name, 0.0) + 1e-9 >= amount for name, amount in asked.items())
                             for node in nodes):
            largest = {name: max(node.get(name, 0.0) for node in nodes) for name in asked}
            misfits.append(
                f"stages {'+'.join(spec.name for spec in specs)} ask {_amounts(asked)} per actor, and no node has "
                f"that (the most any node has: {_amounts(largest)})")
    if not misfits:
        return None
    said = "; ".join(misfits)
    if private:
        raise ConfigError(f"{said}: this machine's local Ray has one node and never gets another; lower "
                          "stages.<name>.resources (num_cpus, num_gpus, custom), or run on a cluster that has such "
                          "a node (--ray-address)")
    return (f"{said}: those stages wait until a node that can hold one joins (an autoscaling cluster may add one; "
            "any other never runs them); lower stages.<name>.resources (num_cpus, num_gpus, custom), or add such a "
            "node")


def _amounts(resources: dict[str, float]) -> str:
    return ", ".join(f"{amount:g} {name}" for name, amount in resources.items())


def no_gpus(groups, cluster: dict[str, float], private: bool) -> str | None:
    """What to say when stages ask for GPUs and the cluster has none, else None. A private local Ray never gets
    any (a ConfigError: the run could only hang); a cluster may still be adding GPU nodes (a warning)."""
    asking = [(spec.name, res.num_gpus) for specs, res in groups if res.num_gpus > 0 for spec in specs]
    if not asking or cluster.get("GPU", 0.0) > 0:
        return None
    keys = ", ".join(f"stages.{name}.resources.num_gpus {gpus:g}" for name, gpus in asking)
    if private:
        raise ConfigError(f"{keys}, but this machine has no GPU (the local Ray started for the run found none): "
                          f"run where there are GPUs (--ray-address), or choose CPU backends (--profile local)")
    fixed = all(res.concurrency for specs, res in groups if res.num_gpus > 0)
    return (f"{keys}, and the cluster has no GPU yet: those stages wait until GPU nodes join (an autoscaling "
            f"cluster adds them; any other never runs them)"
            + ("" if fixed else "; their pools are sized now, at one actor each: set stages.<name>.resources."
               "concurrency to the GPU actors this job should use, and an autoscaling cluster adds nodes for them"))


def run_on_ray(plan: Plan, config: Config, on_rows: Callable[[int], None] | None = None) -> list[manifest.ShardRecord]:
    import ray
    import ray.data

    private = init_ray(config)
    data_context = ray.data.DataContext.get_current()
    data_context.enable_progress_bars = False
    data_context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if not log.isEnabledFor(logging.DEBUG):  # -v shows them
        _quiet_reported_ray_errors()
    context = build_context(plan, config)
    groups = group_stages(stage_specs(config, plan.input_uri))
    pending = plan.pending
    cluster = ray.cluster_resources()
    sizes = _pool_sizes(groups, cluster, shards=len(pending), rows=plan.rows_pending)
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    misfit = no_node_fits(groups, nodes, private)
    for problem in (misfit, no_gpus(groups, cluster, private), None if misfit else oversubscribed(groups, sizes,
                                                                                                   cluster)):
        if problem:
            log.warning("%s", problem)
    ds = ray.data.from_items([s.to_dict() for s in pending], override_num_blocks=len(pending))
    # Faults armed in this process fire in the actors too, wherever they run (augment.core.faults).
    armed = faults.armed()
    fault_env = {"runtime_env": {"env_vars": armed}} if armed else {}
    for index, ((specs, res), (low, high)) in enumerate(zip(groups, sizes)):
        first = index == 0
        if _is_dataset_stage(specs[0]):
            if first:
                raise ValueError(f"stage {specs[0].name} cannot be the first stage of a run")
            ds = build_stage(specs[0], context).transform_dataset(ds)
            continue
        with warnings.catch_warnings():
            # max_restarts / max_task_retries have no named parameter in Ray 2.60 and travel as remote args, which
            # Ray deprecates for 2.64 (the pinned 2.60.* is unaffected; revisit on upgrade).
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            ds = ds.map_batches(
                StageChain,
                fn_constructor_kwargs={
                    "specs": specs,
                    "context": context,
                    "read": (plan.input_schema, dict(config.input.columns)) if first else None,
                },
                batch_size=1 if first else res.batch_size,
                batch_format="pyarrow",
                zero_copy_batch=False,
                udf_modifying_row_count=False,  # stages never add or drop rows
                compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high, initial_size=high),
                num_cpus=res.num_cpus,
                num_gpus=res.num_gpus or None,
                resources=dict(res.custom) or None,
                # A dead actor is restarted (setup() runs again) and its batches are retried there, a bounded
                # number of times (Ray Data's default retries without limit).
                max_restarts=-1,
                max_task_retries=config.run.worker_retries,
                **fault_env,
            )
    writer = ShardWriter(plan, context, config.output.compression, threads=config.run.writer_threads)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1):
            faults.point("driver_batch")
            writer.add(batch)
            if on_rows:
                on_rows(batch.num_rows)
    except ray.exceptions.RayError as exc:
        _finish_writes(writer)
        raise RunFailed(ray_failure(exc)) from exc
    except BaseException:
        _finish_writes(writer)
        raise
    return writer.close()


class ReportedRayErrors(logging.Filter):
    """Drops Ray Data's console records about a Ray error that stops the stages, which moon run reports in one line
    of its own (ray_failure): a stage actor that died in its creation task (setup() raised: a model that does not
    load; 'actors died during initialization'), an actor lost with its node; each with a full stack trace, one of
    them under a plea to report a Ray bug. Ray Data's log file keeps them; -v shows them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "actors died during initialization" in record.getMessage():
            return False
        raised = record.exc_info[1] if record.exc_info else sys.exc_info()[1]  # Ray Data logs inside its except
        return not _reported(raised)


def _reported(exc: BaseException | None) -> bool:
    from ray.data.exceptions import UserCodeException
    from ray.exceptions import RayError

    return isinstance(exc, (RayError, UserCodeException))


def _quiet_reported_ray_errors() -> None:
    """ReportedRayErrors on the console handlers of Ray Data's logger (once)."""
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler) and not any(isinstance(f, ReportedRayErrors)
                                                                  for f in handler.filters):
            handler.addFilter(ReportedRayErrors())


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"[A-Za-z_][\w.]*: \S")  # the last line of a traceback: "OSError: no file named ..."


def ray_failure(exc: BaseException) -> str:
    """One line for a Ray error that stopped the stages: its first line and, when its text carries the traceback
    of what was raised on a worker, that exception's line. An actor that died in its creation task is a stage
    that could not start (a model that does not load, a device it lacks): a rerun as it stands fails the same."""
    from ray.exceptions import ActorDiedError

    lines = [line.rstrip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    head = lines[0].strip()[:300] if lines else ""
    raised = [line[:300] for line in reversed(lines[1:]) if _RAISED.match(line)]
    # the worker's own exception, not Ray Data's wrapper of it ("ray.exceptions.UserCodeException: UDF failed ...")
    cause = next((line for line in raised if not line.startswith("ray.")), raised[0] if raised else None)
    if isinstance(exc, ActorDiedError) and "creation task" in head and cause:
        return (f"a stage could not start on the Ray workers: {cause}; the shards committed so far are kept: fix "
                "the stage's options (model paths, devices) and run the same command again")
    return (f"the stages failed on Ray ({type(exc).__name__}: {head}{'; raised: ' + cause if cause else ''}); the "
            "shards committed so far are kept: run the same command again to resume")


class RunFailed(RuntimeError):
    """The stages could not finish (e.g. a batch killed its worker more than run.worker_retries times)."""


def _finish_writes(writer: ShardWriter) -> None:
    """After a failure: let the shards already complete be committed, without masking the original error."""
    try:
        writer.close(require_all=False)
    except Exception as exc:  # noqa: BLE001 - the error that stopped the run is the one to report
        log.error("while stopping after a failure, a shard write failed too: %s", exc)


def remove_stale_temp_files(plan: Plan) -> int:
    """Delete temp files a killed writer left for the shards this invocation is about to (re)write. Only these
    (another job may be writing other shards of the same run right now), and only when their writer is gone
    (storage.temp_abandoned): a second driver of the same shards deleted the first one's file as it wrote it."""
    if storage.is_s3(plan.run_uri):
        return 0
    from pathlib import Path

    pending = {shard.shard_id for shard in plan.pending}
    removed = 0
    for folder in (manifest.DATA_DIR, manifest.QUARANTINE_DIR):
        directory = Path(plan.run_uri) / folder
        if not directory.is_dir():
            continue
        for stale in directory.glob(".*.parquet.tmp-*"):  # one listing per folder, whatever the number of shards
            if stale.name[1:].split(".parquet.tmp-", 1)[0] in pending and storage.temp_abandoned(stale):
                stale.unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("removed %d temp files left by an interrupted run", removed)
    return removed


# ---------------------------------------------------------------------------------------------------------------
# Entry point shared by the CLI, Ray jobs and Airflow tasks
# ---------------------------------------------------------------------------------------------------------------
def execute(plan: Plan, config: Config, use_ray: bool = True, progress: bool | None = None) -> RunResult:
    """Process every pending shard of `plan`; returns what this invocation committed.

    A whole run ends by consolidating the manifest (S3) and totalling it; a batch or shards of a run (an Airflow
    task's job) totals only its own shards, so that its cost stays the batch's whatever the size of the run."""
    started = time.perf_counter()
    pending_rows = plan.rows_pending
    if not plan.pending:
        log.info("nothing to do: all %d shards of %s are committed", len(plan.shards), plan.run_uri)
        if plan.scope == "run":  # a run ended after its last commit, before consolidating (S3): done now
            manifest.consolidate(plan.run_uri)
        return RunResult(plan, [], 0.0, manifest.totals(plan.committed.values()))
    remove_stale_temp_files(plan)
    show = config.run.progress if progress is None else progress
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=pending_rows, unit="product", desc="moon run", file=sys.stderr, dynamic_ncols=True)
    on_rows = bar.update if bar is not None else None
    try:
        runner = run_on_ray if use_ray else run_in_process
        records = runner(plan, config, on_rows=on_rows)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    planned = {s.shard_id for s in plan.shards}
    if plan.scope == "run":
        manifest.consolidate(plan.run_uri)
        done = (r for r in manifest.iter_records(plan.run_uri) if r.shard_id in planned)
    else:
        done = ({**plan.committed, **{r.shard_id: r for r in records}}).values()
    return RunResult(plan, records, wall, manifest.totals(done))
