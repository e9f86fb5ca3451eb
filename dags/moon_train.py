"""
### moon_train: train the MoE bi-encoder on each new moon_augment run

Scheduled on the Asset `moon_augment_shards`: every run that moon_augment publishes starts one moon_train
run. `pick_run` takes the run folder from the triggering Asset event (or, when triggered by hand, from the
`run_uri` field, else the latest event); `train` submits `moon train --data <run> --config <config>
--output <checkpoints>` as a Ray job (log in the task log, **Ray job** link to the dashboard). The config is
*Model config*, or when that is empty (as in every Asset-triggered run) `$MOON_TRAIN_CONFIG` from Airflow's
environment, else `tiny`.

Checkpoints go to a folder of this DAG run's own on the Ray cluster's filesystem (`moon train` writes no s3://):
*Checkpoint folder* when set (an absolute path; its `{run_id}` becomes this DAG run's id, and without `{run_id}`
that id is appended as a subfolder); else `<run>/checkpoints/<run id>` for a local run, and
`$MOON_CHECKPOINTS_ROOT/<run folder name>/<run id>` (default root `/tmp/moon-checkpoints`, set in Airflow's
environment) for an s3:// run.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from augment.orchestrate import GPU_POOL
from augment.orchestrate.assets import MOON_SHARDS
from augment.orchestrate.operator import RayJobOperator
from augment.orchestrate.tasks import (CHECKPOINTS_ROOT_ENV, DEFAULT_CHECKPOINTS_ROOT, DEFAULT_TRAIN_CONFIG,
                                      DRIVER_RESOURCES_ENV, TRAIN_CONFIG_ENV, driver_resources)

PARAMS = {
    "run_uri": Param(None, type=["null", "string"], title="Run folder (optional)",
                     description="A moon_augment run to train on. Empty: the run of the triggering Asset event."),
    "train_config": Param(None, type=["null", "string"], title="Model config (optional)",
                          description="A named config (a file of model/configs/: tiny, base, paper, ...) or the "
                                      "absolute path of a JSON/YAML file the cluster can read. Empty: "
                                      f"${TRAIN_CONFIG_ENV} in Airflow's environment, else {DEFAULT_TRAIN_CONFIG}."),
    "checkpoint_uri": Param(
        None, type=["null", "string"], pattern="^/", title="Checkpoint folder (optional)",
        description="Absolute path on the Ray cluster (moon train writes no s3://); {run_id} becomes this DAG run's "
                    "id, appended as a subfolder when absent. Default: <run>/checkpoints/{run_id} for a local run; "
                    f"for an s3:// run ${CHECKPOINTS_ROOT_ENV}/<run folder name>/{{run_id}} (default root "
                    f"{DEFAULT_CHECKPOINTS_ROOT})."),
    "gpu": Param(False, type="boolean", title="Train on GPUs",
                 description="Passes --gpu. Unticked, the model config decides: base and paper train on GPUs, "
                             "tiny on CPUs."),
    "ray_conn_id": Param("ray_default", type="string", minLength=1, title="Ray connection"),
    "env_vars": Param({}, type="object", additionalProperties={"type": "string"}, title="Job environment",
                      description="Extra environment variables of the training job (no secrets: they show in the UI; "
                                  "LD_*, PYTHON*, PATH and shell start-up names are refused)."),
}


@dag(
    dag_id="moon_train",
    schedule=[MOON_SHARDS],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    default_args={"owner": "moon", "retries": 1, "retry_delay": timedelta(minutes=1),
                  "retry_exponential_backoff": 2.0},
    tags=["moon", "train", "ray"],
    doc_md=__doc__,
)
def moon_train():
    @task(multiple_outputs=True, inlets=[MOON_SHARDS], retries=0,
          doc_md="Finds the run folder to train on and builds the job. Fails at once (no retry) on a bad form value.")
    def pick_run(params=None, dag_run=None, triggering_asset_events=None, inlet_events=None) -> dict:
        from augment.orchestrate import tasks
        from model.config import named_configs

        run_uri = params.get("run_uri") or _triggering_run_uri(triggering_asset_events)
        if not run_uri:
            events = inlet_events[MOON_SHARDS] if inlet_events is not None else []
            run_uri = events[-1].extra.get("run_uri") if len(events) else None
        if not run_uri:
            raise ValueError("no run to train on: set run_uri, or let a moon_augment run trigger this DAG")
        return tasks.train_request(run_uri, dict(params), dag_run.run_id, named_configs())

    job = pick_run()
    RayJobOperator(
        task_id="train",
        entrypoint=job["entrypoint"],
        runtime_env=job["runtime_env"],
        job_metadata=job["job_metadata"],
        ray_conn_id="{{ params.ray_conn_id }}",
        pool=GPU_POOL,
        job_timeout=timedelta(hours=24),
        poll_interval=10.0,
        # Where the driver runs, as moon_augment's (unset: the head node); it starts Ray Train's controller there.
        **driver_resources(os.environ.get(DRIVER_RESOURCES_ENV)),
        doc_md="`moon train` as a Ray job on the picked run.",
    )


def _triggering_run_uri(events) -> str | None:
    """The run folder of the newest triggering event (several can queue up between two runs of this DAG)."""
    if not events:
        return None
    newest = None
    for asset_events in events.values():
        for event in asset_events:
            if (event.extra or {}).get("run_uri") and (newest is None or event.timestamp > newest.timestamp):
                newest = event
    return newest.extra["run_uri"] if newest else None


moon_train()
