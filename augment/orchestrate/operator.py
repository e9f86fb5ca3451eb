"""`RayJobOperator`: run one shell entrypoint as a Ray job and succeed or fail with it.

Per try of a task instance:
1. Find the jobs of this task instance's earlier tries by their derived submission ids
   (`submission.base_id` + `-try<N>`). A job still pending or running is followed instead of submitting
   another; a job that already succeeded ends the task successfully; otherwise a new job is submitted under
   this try's id. So a retry never runs two jobs for the same batch at once, and a failed one is replaced.
2. Publish the job's dashboard address as the task's "Ray job" extra link.
3. Defer to `RayJobTrigger` (no worker slot held while the job runs; its log is streamed into the task log),
   or with `deferrable=False` run the same trigger loop in the worker.
4. Resume: SUCCEEDED returns the submission id (the XCom value); FAILED, STOPPED or TIMEOUT fail the try.
`on_kill` stops the job when the task is killed while running in a worker; the trigger's `on_kill` does the
same when it is killed while deferred.
"""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any, Sequence

from airflow.sdk import BaseOperator, BaseOperatorLink
from airflow.sdk.exceptions import AirflowException

from augment.orchestrate import submission
from augment.orchestrate.ray_jobs import DEFAULT_CONN_ID, RayJobHook
from augment.orchestrate.trigger import RayJobTrigger

LINK_XCOM_KEY = "ray_job_url"


class RayJobLink(BaseOperatorLink):
    """The Ray dashboard page of the task's job (pushed as an XCom when the job is submitted or found)."""

    name = "Ray job"

    @property
    def xcom_key(self) -> str:
        return LINK_XCOM_KEY

    def get_link(self, operator, *, ti_key) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=LINK_XCOM_KEY) or ""


class RayJobOperator(BaseOperator):
    """Submit `entrypoint` to the Ray cluster of connection `ray_conn_id` and wait for it (see module doc).

    :param entrypoint: shell command the job runs on the cluster (templated).
    :param runtime_env: Ray runtime_env (env_vars, pip, working_dir, ...) (templated).
    :param job_metadata: string key/values recorded with the job; Airflow's ids are added (templated).
    :param job_timeout: stop the job and fail the try after this long (seconds or timedelta; None: no limit).
    :param poll_interval: seconds between status polls.
    :param deferrable: wait in the triggerer (default) instead of holding a worker slot.
    :param entrypoint_num_cpus / entrypoint_num_gpus / entrypoint_memory / entrypoint_resources: resources (CPUs,
        GPUs, bytes of memory, custom Ray resources) reserved for the job's driver process; they also choose its
        node. With none, Ray runs the driver on the head node (`tasks.driver_resources`).
    """

    template_fields: Sequence[str] = ("entrypoint", "runtime_env", "job_metadata", "ray_conn_id")
    template_fields_renderers = {"runtime_env": "json", "job_metadata": "json", "entrypoint": "bash"}
    operator_extra_links = (RayJobLink(),)
    ui_color = "#e6f0fa"

    def __init__(
        self,
        *,
        entrypoint: str,
        runtime_env: dict | None = None,
        job_metadata: dict[str, str] | None = None,
        ray_conn_id: str = DEFAULT_CONN_ID,
        job_timeout: timedelta | float | None = None,
        poll_interval: float = 5.0,
        deferrable: bool = True,
        stream_logs: bool = True,
        entrypoint_num_cpus: float | None = None,
        entrypoint_num_gpus: float | None = None,
        entrypoint_memory: int | None = None,
        entrypoint_resources: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entrypoint = entrypoint
        self.runtime_env = runtime_env
        self.job_metadata = job_metadata
        self.ray_conn_id = ray_conn_id
        self.job_timeout = job_timeout.total_seconds() if isinstance(job_timeout, timedelta) else job_timeout
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.stream_logs = stream_logs
        self.entrypoint_num_cpus = entrypoint_num_cpus
        self.entrypoint_num_gpus = entrypoint_num_gpus
        self.entrypoint_memory = entrypoint_memory
        self.entrypoint_resources = dict(entrypoint_resources) if entrypoint_resources else None
        self.submission_id: str | None = None

    def execute(self, context) -> str:
        ti = context["ti"]
        hook = RayJobHook(self.ray_conn_id)
        # 1. This try's id and the jobs of every earlier try of this task instance.
        base = submission.base_id(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
        ids = [submission.attempt_id(base, n) for n in range(1, max(1, ti.try_number) + 1)]
        infos = {sid: hook.info(sid) for sid in ids}
        action, sid = submission.decide({k: (str(v.status) if v else None) for k, v in infos.items()}, ids[-1])
        self.submission_id = sid
        # 2. The dashboard link, available as soon as the job id is known.
        ti.xcom_push(key=LINK_XCOM_KEY, value=hook.job_url(sid))
        if action == "done":
            self.log.info("Ray job %s of an earlier try already succeeded; not running it again", sid)
            return sid
        if action == "attach":
            self.log.info("Ray job %s of an earlier try is still %s; following it instead of submitting another",
                          sid, infos[sid].status)
            started = (infos[sid].start_time or time.time() * 1000) / 1000.0
        else:
            metadata = {
                "airflow_dag_id": ti.dag_id, "airflow_run_id": ti.run_id, "airflow_task_id": ti.task_id,
                "airflow_map_index": str(ti.map_index), "airflow_try_number": str(ti.try_number),
            }
            metadata.update({str(k): str(v) for k, v in (self.job_metadata or {}).items()})
            hook.submit(self.entrypoint, sid, runtime_env=self.runtime_env, metadata=metadata,
                        entrypoint_num_cpus=self.entrypoint_num_cpus, entrypoint_num_gpus=self.entrypoint_num_gpus,
                        entrypoint_memory=self.entrypoint_memory, entrypoint_resources=self.entrypoint_resources)
            self.log.info("submitted Ray job %s: %s", sid, self.entrypoint)
            started = time.time()
        self.log.info("Ray dashboard: %s", hook.job_url(sid))
        # 3. Wait for it without a worker slot (or in this worker when not deferrable).
        trigger = RayJobTrigger(
            submission_id=sid, ray_conn_id=self.ray_conn_id, poll_interval=self.poll_interval,
            deadline=started + self.job_timeout if self.job_timeout else None, stream_logs=self.stream_logs,
        )
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete")
        return self.execute_complete(context, asyncio.run(_first_event(trigger)))

    def execute_complete(self, context, event: dict[str, Any]) -> str:
        sid, status = event["submission_id"], event["status"]
        self.submission_id = sid
        if status == submission.SUCCEEDED:
            self.log.info("Ray job %s succeeded", sid)
            return sid
        raise AirflowException(f"Ray job {sid} ended {status}: {event.get('message') or 'no message'}")

    def on_kill(self) -> None:
        if not self.submission_id:
            return
        try:
            stopped = RayJobHook(self.ray_conn_id).stop(self.submission_id)
            self.log.info("stopped Ray job %s: %s", self.submission_id, stopped)
        except Exception as exc:
            self.log.warning("could not stop Ray job %s: %s", self.submission_id, exc)


async def _first_event(trigger: RayJobTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AirflowException(f"the trigger of Ray job {trigger.submission_id} ended without an event")
