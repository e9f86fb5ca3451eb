"""The bodies of the moon DAGs' tasks: read the trigger form, plan batches, build job commands, check a run.

The DAG files only wire these together; everything here is plain Python (no Airflow, no Ray), so the same
logic is tested without a scheduler. Planning needs only the core package (pyarrow, no torch): it runs in an
Airflow worker. XCom values built here are small: URIs, ids and counts, never rows.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import shlex
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# How a Ray job runs the moon CLI on the cluster. `python -m` works both where the package is installed and
# where it is on PYTHONPATH (a checkout on a local head); the cluster's image must provide it.
MOON_COMMAND = ("python", "-m", "augment.cli")
RUN_ID_PLACEHOLDER = "{run_id}"


class RunRequestError(ValueError):
    """The trigger form's values cannot start a run. The message names the field."""


class RunIncomplete(RuntimeError):
    """The manifest lacks shards of the plan, or a shard breaks rows in = rows out + rows quarantined."""


@dataclasses.dataclass
class RunRequest:
    """The moon_augment trigger form (DAG params), checked."""

    input_uri: str
    output_uri: str
    profile: str | None = None
    config_file: str | None = None
    stages: list[str] = dataclasses.field(default_factory=list)
    shards_per_task: int = 1
    ray_conn_id: str = "ray_default"
    limit: int | None = None
    env_vars: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any], dag_run_id: str = "") -> "RunRequest":
        input_uri = (params.get("input_uri") or "").strip()
        output_uri = (params.get("output_uri") or "").strip().replace(RUN_ID_PLACEHOLDER, safe_name(dag_run_id))
        if not input_uri:
            raise RunRequestError("input_uri: give the catalogue to process (a file or folder, local or s3://)")
        if not output_uri:
            raise RunRequestError("output_uri: give the run folder to write (local or s3://)")
        if not (output_uri.startswith("s3://") or output_uri.startswith("/")):
            raise RunRequestError(f"output_uri: {output_uri!r} must be absolute (or s3://): Ray jobs run in their own working directory")
        shards_per_task = int(1 if params.get("shards_per_task") is None else params["shards_per_task"])
        if shards_per_task < 1:
            raise RunRequestError("shards_per_task: must be at least 1")
        limit = params.get("limit")
        if limit is not None and int(limit) < 1:
            raise RunRequestError("limit: must be at least 1 (or empty for every row)")
        stages = params.get("stages") or []
        if isinstance(stages, str):
            stages = [s for s in stages.split(",")]
        env_vars = params.get("env_vars") or {}
        if not isinstance(env_vars, dict):
            raise RunRequestError("env_vars: must be an object of NAME: value")
        return cls(
            input_uri=input_uri,
            output_uri=output_uri,
            profile=(params.get("profile") or None),
            config_file=(params.get("config_file") or "").strip() or None,
            stages=[s.strip() for s in stages if s and s.strip()],
            shards_per_task=shards_per_task,
            ray_conn_id=(params.get("ray_conn_id") or "ray_default").strip(),
            limit=int(limit) if limit is not None else None,
            env_vars={str(k): str(v) for k, v in env_vars.items()},
        )

    def config(self):
        """The run config exactly as `moon run` will build it from the same options (the same config hash)."""
        from augment import config as C

        try:
            return C.load_for_run(self.config_file, self.profile, stages=",".join(self.stages) or None,
                                  progress=False)
        except C.ConfigError as exc:
            raise RunRequestError(f"config: {exc}") from exc

    def moon_run(self, shard_ids: list[str]) -> str:
        """The shell command of one batch's Ray job: `moon run` restricted to `shard_ids`."""
        args = [*MOON_COMMAND, "run", "--input", self.input_uri, "--output", self.output_uri]
        if self.config_file:
            args += ["--config", self.config_file]
        if self.profile:
            args += ["--profile", self.profile]
        if self.stages:
            args += ["--stages", ",".join(self.stages)]
        if self.limit is not None:
            args += ["--limit", str(self.limit)]
        args += ["--shards", ",".join(shard_ids), "--no-progress"]
        return shlex.join(args)

    def runtime_env(self) -> dict[str, Any]:
        return {"env_vars": dict(self.env_vars)} if self.env_vars else {}


def safe_name(text: str) -> str:
    """A run id as a folder name: `manual__2026-01-01T00:00:00+00:00` -> `manual__2026-01-01T00-00-00-00-00`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def batches(shard_ids: list[str], size: int) -> list[list[str]]:
    return [shard_ids[i:i + size] for i in range(0, len(shard_ids), size)]


def plan(request: RunRequest) -> dict[str, Any]:
    """Plan the run (initialising its folder) and split the pending shards into one job per batch.

    Returns what the plan task passes on: the run's URI and id, every shard id of the plan, and under `jobs`
    the keyword arguments of each mapped Ray job task (its command and the shard ids it owns).
    """
    from augment import io, plan as P

    config = request.config()
    try:
        the_plan = P.plan_run(request.input_uri, request.output_uri, config, limit=request.limit)
    except (io.InputError, P.RunMismatch, FileNotFoundError) as exc:
        raise RunRequestError(f"plan: {exc}") from exc
    pending = [s.shard_id for s in the_plan.pending]
    jobs = [
        {
            "entrypoint": request.moon_run(batch),
            "runtime_env": request.runtime_env(),
            "job_metadata": {"moon_run_uri": request.output_uri, "moon_shards": ",".join(batch)},
        }
        for batch in batches(pending, request.shards_per_task)
    ]
    summary = the_plan.summary()
    log.info("run %s: %d rows in %d shards, %d committed, %d pending in %d batches -> %s", the_plan.run_id,
             summary["rows"], summary["shards"], summary["committed"], len(pending), len(jobs), request.output_uri)
    return {
        "run_uri": request.output_uri,
        "run_id": the_plan.run_id,
        "config_hash": the_plan.config_hash,
        "shards": [s.shard_id for s in the_plan.shards],
        "jobs": jobs,
    }


def check_run(run_uri: str, shard_ids: list[str]) -> dict[str, Any]:
    """Every planned shard is committed and keeps rows in = out + quarantined; returns the run's totals."""
    from augment.core import manifest, storage

    records = manifest.load(run_uri)
    missing = [s for s in shard_ids if s not in records]
    if missing:
        raise RunIncomplete(f"{len(missing)} of {len(shard_ids)} shards are not committed in {run_uri}: "
                            f"{', '.join(missing)}")
    planned_ids = set(shard_ids)
    broken = [r.shard_id for r in records.values()
              if r.shard_id in planned_ids and r.rows_in != r.rows_out + r.rows_quarantined]
    if broken:
        raise RunIncomplete(f"shards breaking rows in = rows out + rows quarantined: {', '.join(broken)}")
    planned = [records[s] for s in shard_ids]
    absent = [r.data_file for r in planned if r.data_file and not storage.exists(storage.join(run_uri, r.data_file))]
    if absent:
        raise RunIncomplete(f"committed data files missing from {run_uri}: {', '.join(absent)}")
    totals = manifest.totals(planned)
    return {k: totals[k] for k in ("shards", "rows_in", "rows_out", "rows_quarantined", "bytes")} | {
        "quarantine_reasons": totals["quarantine_reasons"],
    }


def report_uri(run_uri: str) -> str:
    """Where `moon run` writes the run's HTML report."""
    from augment.core import manifest, storage

    return storage.join(run_uri, manifest.REPORT_DIR, "index.html")


def report_url(run_uri: str) -> str:
    """A browser address for the report: file:// for local runs, the S3 console for s3:// runs."""
    uri = report_uri(run_uri)
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://"):].partition("/")
        return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={key}"
    return Path(uri).absolute().as_uri()


def train_request(run_uri: str, params: dict[str, Any], dag_run_id: str) -> dict[str, Any]:
    """Command and metadata of the training job on a finished run."""
    output = (params.get("checkpoint_uri") or "").strip()
    if not output:
        output = f"{run_uri.rstrip('/')}/checkpoints/{safe_name(dag_run_id)}"
    output = output.replace(RUN_ID_PLACEHOLDER, safe_name(dag_run_id))
    args = [*MOON_COMMAND, "train", "--data", run_uri, "--config", params.get("train_config") or "tiny",
            "--output", output]
    if params.get("gpu"):
        args.append("--gpu")
    env_vars = {str(k): str(v) for k, v in (params.get("env_vars") or {}).items()}
    return {
        "entrypoint": shlex.join(args),
        "runtime_env": {"env_vars": env_vars} if env_vars else {},
        "job_metadata": {"moon_run_uri": run_uri, "moon_checkpoint_uri": output},
        "checkpoint_uri": output,
    }


def log_failed_batch(context: dict[str, Any]) -> None:
    """on_failure_callback of a batch task: say which shards failed, so ops can find and rerun them."""
    task = context.get("task")
    ti = context.get("ti") or context.get("task_instance")
    metadata = getattr(task, "job_metadata", None) or {}
    shards = metadata.get("moon_shards", "?")
    log.error(
        "moon batch failed: dag %s run %s task %s map index %s try %s; shards: %s; run folder: %s",
        getattr(ti, "dag_id", "?"), getattr(ti, "run_id", "?"), getattr(ti, "task_id", "?"),
        getattr(ti, "map_index", "?"), getattr(ti, "try_number", "?"), shards, metadata.get("moon_run_uri", "?"),
    )
