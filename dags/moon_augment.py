"""
### moon_augment: enrich a product catalogue into training shards, one Ray job per batch of shards

**Trigger** with the form (Trigger DAG ▸ the parameters below). The form's values are checked against their
JSON schema before the run is created; `plan` then checks what a schema cannot (the config loads, the input
exists, the output folder belongs to this input and config) before any Ray job starts.

| task | what it does |
|---|---|
| `plan` | plans the run once (`augment.plan.plan_run`) and saves the plan in the run folder (`_plan/`); cuts it into at most *max tasks* batches (or 4 per GPU when *GPUs* is given), and maps one task per batch that still has pending shards |
| `run_batch` | one mapped task per batch: a Ray job running `moon run ... --batch N`, which reads only its batch's entries of the saved plan; its log streams into the task log, the **Ray job** button opens it in the Ray dashboard |
| `validate` | every planned shard is committed, and rows in = rows out + rows quarantined for each; a run with no row out fails (no publish) |
| `publish` | writes the run report, emits an event of the Asset `moon_augment_shards` with the run folder in its extra; **Run report** opens `<output>/report/index.html` |

`moon_train` is scheduled on that Asset. Reruns are safe: committed shards are skipped, a failed batch is
retried (with backoff) under a new Ray job id and overwrites its partial shards, never duplicating them. A
batch that still fails logs its batch number, run folder and command; clear that task to rerun just its batch
(see docs/operations.md).
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta
from importlib.util import find_spec
from pathlib import Path

from airflow.sdk import Param, XComArg, dag, task

from augment.core.names import STAGE_ORDER
from augment.orchestrate import GPU_POOL
from augment.orchestrate.assets import MOON_SHARDS
from augment.orchestrate.operator import RayJobOperator
from augment.orchestrate.tasks import (DEFAULT_MAX_TASKS, DRIVER_RESOURCES_ENV, JOBS_PER_RUN_ENV, RUNS_ROOT_ENV,
                                       S3_SETTINGS, driver_resources, jobs_per_run, runs_root)

# Parse-time constants only: paths, names and numbers. No pyarrow, Ray or torch at this level.
_PACKAGE = Path(find_spec("augment").origin).parent
SAMPLE_INPUT = str(_PACKAGE / "sample" / "myntra_sample.parquet")
PROFILES = sorted(p.stem for p in (_PACKAGE / "profiles").glob("*.yaml")) or ["local"]
STAGES = list(STAGE_ORDER)
# Default run folders: absolute or s3://bucket (anything else fails the import, saying why); unset: /tmp/moon-runs.
RUNS_ROOT = runs_root(os.environ.get(RUNS_ROOT_ENV))
JOB_TIMEOUT = timedelta(hours=6)
# Ray jobs in flight per DAG run at most (the pool moon_gpu bounds them across runs): docs/operations.md. A value
# that is not a whole number of at least 1 falls back (with a warning) rather than hide the DAG or stall its runs.
JOBS_PER_RUN = jobs_per_run(os.environ.get(JOBS_PER_RUN_ENV))
# What each batch job's driver reserves on the Ray cluster, which places it (unset: on the head node): a JSON object
# such as {"CPU": 1, "moon_driver": 1}; docs/deploy.md. A value that is not one falls back, with a warning.
DRIVER_RESOURCES = driver_resources(os.environ.get(DRIVER_RESOURCES_ENV))
LOCATION = "^(/|s3://[^/])"  # an absolute path, or an s3:// URI naming a bucket: what every Ray job can find

PARAMS = {
    "input_uri": Param(
        SAMPLE_INPUT, type="string", minLength=1, pattern=LOCATION, title="Input catalogue",
        description="Parquet, JSONL or CSV file or folder: an absolute path or s3:// URI, readable by the Ray "
                    "cluster and the Airflow workers (default: the bundled 80-product sample).",
    ),
    "output_uri": Param(
        f"{RUNS_ROOT.rstrip('/')}/{{run_id}}", type="string", pattern=LOCATION, title="Output run folder",
        description="Absolute path or s3:// URI of the run folder. {run_id} becomes this DAG run's id as a folder "
                    "name; an existing folder of the same input and config is resumed.",
    ),
    "profile": Param(PROFILES[0] if "local" not in PROFILES else "local", type="string", enum=PROFILES,
                     title="Config profile", description="Named profile of augment/profiles."),
    "config_file": Param(
        None, type=["null", "string"], pattern=LOCATION, title="Config file (optional)",
        description="Absolute path or s3:// URI of a YAML config that the Ray cluster and the Airflow workers can "
                    "both read; overrides the profile (its `extends:`, when it has one, replaces the profile above).",
    ),
    "stages": Param(
        None, type=["null", "array"], items={"type": "string", "enum": STAGES}, uniqueItems=True, examples=STAGES,
        title="Stages", description="Stages to run (validate always runs). Empty: every stage enabled in the config.",
    ),
    "max_tasks": Param(
        DEFAULT_MAX_TASKS, type="integer", minimum=1, maximum=100_000, title="Max tasks",
        description="Mapped run_batch tasks (Ray jobs) at most: the plan is cut into this many batches or fewer. "
                    "Never more than Airflow's core.max_map_length (default 1024).",
    ),
    "gpus": Param(None, type=["null", "integer"], minimum=1, title="Cluster GPUs (optional)",
                  description="GPUs of the Ray cluster: the run is cut into 4 batches per GPU (within max tasks)."),
    "shards_per_task": Param(None, type=["null", "integer"], minimum=1, maximum=1_000_000,
                             title="Shards per task (optional)",
                             description="Shards each mapped task processes; grown if it would make more batches "
                                         "than max tasks. Empty: sized from the plan."),
    "limit": Param(None, type=["null", "integer"], minimum=1, title="Row limit (optional)",
                   description="Process only the first N rows of the input: smoke runs."),
    "ray_conn_id": Param("ray_default", type="string", minLength=1, title="Ray connection",
                         description="Airflow connection of the Ray cluster's job server (host, port, token)."),
    "env_vars": Param({}, type="object", additionalProperties={"type": "string"}, title="Job environment",
                      description="Extra environment variables of the Ray jobs (no secrets: they show in the UI; "
                                  "LD_*, PYTHON*, PATH and shell start-up names are refused). "
                                  "S3 settings among them ({}) also apply to plan, validate and publish."
                                  .format(", ".join(S3_SETTINGS))),
}

DEFAULT_ARGS = {
    "owner": "moon",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
}


@dag(
    dag_id="moon_augment",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=4,
    params=PARAMS,
    default_args=DEFAULT_ARGS,
    tags=["moon", "augment", "ray"],
    doc_md=__doc__,
)
def moon_augment():
    @task(retries=0, doc_md="Plans the run once and saves the plan in the run folder; returns one entry per "
          "mapped `run_batch` (a batch number, never a shard list); the run's URI, id and shard and batch counts "
          "are the XCom `run`. Fails at once (no retry) on a bad form value, config or input.")
    def plan(params=None, dag_run=None, ti=None) -> list[dict]:
        from augment.orchestrate import tasks

        planned = tasks.plan(tasks.RunRequest.from_params(dict(params), dag_run.run_id), _max_map_length())
        ti.xcom_push(key="run", value={k: planned[k] for k in ("run_uri", "run_id", "config_hash", "shards",
                                                              "batches", "shards_per_batch")})
        return planned["jobs"]

    planned = plan()
    run = XComArg(planned.operator, key="run")

    run_batch = RayJobOperator.partial(
        task_id="run_batch",
        ray_conn_id="{{ params.ray_conn_id }}",
        pool=GPU_POOL,
        job_timeout=JOB_TIMEOUT,
        poll_interval=3.0,
        max_active_tis_per_dagrun=JOBS_PER_RUN,
        **DRIVER_RESOURCES,
        on_failure_callback=_log_failed_batch,
        doc_md="One batch of shards as a Ray job (`moon run ... --batch N --shards-per-batch S`). The **Ray job** "
               "link opens it in the Ray dashboard; the job's log is in this task's log. A retry follows a job "
               "still running, or replaces a failed one under a new id; committed shards are never redone.",
    ).expand_kwargs(planned)

    @task(trigger_rule="none_failed", doc_md="Checks that every planned shard is committed and that rows in = "
          "rows out + rows quarantined for each. Runs when there was nothing left to do too. Fails at once (no "
          "retry, no publish, no training) when every row was quarantined.")
    def validate(run: dict, params=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from augment.orchestrate import tasks

        with tasks.s3_settings(params.get("env_vars")):
            try:
                return tasks.check_run(run["run_uri"])
            except tasks.RunEmpty as exc:
                raise AirflowFailException(str(exc)) from None

    @task(outlets=[MOON_SHARDS], doc_md="Emits the `moon_augment_shards` Asset event (extra: run_uri, run_id, "
          "rows) that schedules moon_train. **Run report** opens the run's HTML report.")
    def publish(run: dict, totals: dict, params=None, outlet_events=None, ti=None) -> str:
        from augment.orchestrate import tasks
        from augment.orchestrate.links import REPORT_XCOM_KEY

        run_uri, run_id = run["run_uri"], run["run_id"]
        with tasks.s3_settings(params.get("env_vars")):
            _write_run_report(run_uri)
        ti.xcom_push(key=REPORT_XCOM_KEY, value=tasks.report_url(run_uri))
        outlet_events[MOON_SHARDS].extra = {
            "run_uri": run_uri, "run_id": run_id, "shards": totals["shards"], "rows_in": totals["rows_in"],
            "rows_out": totals["rows_out"], "rows_quarantined": totals["rows_quarantined"],
            "report": tasks.report_uri(run_uri),
        }
        return run_uri

    checked = validate(run)
    run_batch >> checked
    published = publish(run, checked)
    _add_report_link(published.operator)


def _max_map_length() -> int | None:
    """Airflow's core.max_map_length: a plan task may not map more tasks than this."""
    try:
        from airflow.configuration import conf

        return conf.getint("core", "max_map_length")
    except Exception:  # noqa: BLE001 - an unreadable setting leaves max_tasks alone
        return None


def _write_run_report(run_uri: str) -> None:
    from augment.commands import write_run_report

    write_run_report(run_uri)


def _log_failed_batch(context) -> None:
    from augment.orchestrate.tasks import log_failed_batch

    log_failed_batch(context)


def _add_report_link(operator) -> None:
    from augment.orchestrate.links import RunReportLink

    operator.operator_extra_links = (RunReportLink(),)


moon_augment()
