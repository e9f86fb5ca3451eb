"""
### moon_train: train the MoE bi-encoder on each new moon_augment run

Scheduled on the Asset `moon_augment_shards`: every run that moon_augment publishes starts one moon_train
run. `pick_run` takes the run folder from the triggering Asset event (or, when triggered by hand, from the
`run_uri` field, else the latest event); `train` submits `moon train --data <run> --config <config>
--output <checkpoints>` as a Ray job (log in the task log, **Ray job** link to the dashboard).

Checkpoints go to `<run>/checkpoints/<this DAG run's id>` unless *Checkpoint folder* is set; it must be a
local or shared filesystem path that the Ray cluster can write.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from augment.orchestrate import GPU_POOL
from augment.orchestrate.assets import MOON_SHARDS
from augment.orchestrate.operator import RayJobOperator

PARAMS = {
    "run_uri": Param(None, type=["null", "string"], title="Run folder (optional)",
                     description="A moon_augment run to train on. Empty: the run of the triggering Asset event."),
    "train_config": Param("tiny", type="string", minLength=1, title="Model config",
                          description="Named config (tiny, base, paper) or a JSON/YAML file the cluster can read."),
    "checkpoint_uri": Param(None, type=["null", "string"], title="Checkpoint folder (optional)",
                            description="Default: <run>/checkpoints/{run_id}."),
    "gpu": Param(False, type="boolean", title="Train on GPUs"),
    "ray_conn_id": Param("ray_default", type="string", minLength=1, title="Ray connection"),
    "env_vars": Param({}, type="object", additionalProperties={"type": "string"}, title="Job environment"),
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
    @task(multiple_outputs=True, inlets=[MOON_SHARDS], doc_md="Finds the run folder to train on and builds the job.")
    def pick_run(params=None, dag_run=None, triggering_asset_events=None, inlet_events=None) -> dict:
        from augment.orchestrate import tasks

        run_uri = params.get("run_uri") or _triggering_run_uri(triggering_asset_events)
        if not run_uri:
            events = inlet_events[MOON_SHARDS] if inlet_events is not None else []
            run_uri = events[-1].extra.get("run_uri") if len(events) else None
        if not run_uri:
            raise ValueError("no run to train on: set run_uri, or let a moon_augment run trigger this DAG")
        return tasks.train_request(run_uri, dict(params), dag_run.run_id)

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
